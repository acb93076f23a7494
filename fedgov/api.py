"""Building blocks the apps' APIs share: response-only serializers and bounded id filters."""

from __future__ import annotations

import django_filters
from django import forms
from django.utils.translation import gettext_noop
from rest_framework import serializers

from fedgov.validation import INT64_MAX

# drf-spectacular marks these for translation but ships no catalogue: fedgov's, which
# Django reads first, carries them, so the OpenAPI schema reads in every language.
THIRD_PARTY_TEXTS = (
    gettext_noop("No response body"),
    gettext_noop('Token-based authentication with required prefix "%s"'),
)


class OutputSerializer(serializers.Serializer):
    """A serializer that only describes a response: every field is read-only.

    Saying so keeps the OpenAPI schema honest, and lets a test check that every field a
    client *can* send is bounded (tests/test_hostile_input.py).
    """

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.read_only = True
        return fields


class IdFilter(django_filters.NumberFilter):
    """A filter on a row id: a whole number within a 64-bit key, else a 400.

    django-filter's NumberFilter takes any decimal, and an id past 64 bits compared with a
    related key reaches the database driver, which refuses it with an OverflowError.
    """

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", INT64_MAX)
        super().__init__(*args, **kwargs)
