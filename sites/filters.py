"""django-filter filter sets for the sites API."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from fedgov import clock
from fedgov.api import IdFilter
from sites.choices import LawfulBasis, PolicyStatus, SiteStatus
from sites.models import Consent, ConsentEvent, Dataset, ResidencyPolicy, Site


class SiteFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SiteStatus.choices)

    class Meta:
        model = Site
        fields = ["slug", "country", "compute_country", "status", "agreement_type"]


class DatasetFilter(django_filters.FilterSet):
    site_slug = django_filters.CharFilter(field_name="site__slug")
    purpose = django_filters.CharFilter(field_name="purposes__code", distinct=True)
    lawful_basis = django_filters.ChoiceFilter(choices=LawfulBasis.choices)
    withdrawn = django_filters.BooleanFilter(
        field_name="withdrawn_at", lookup_expr="isnull", exclude=True
    )

    class Meta:
        model = Dataset
        fields = ["site", "site_slug", "purpose", "lawful_basis", "special_category", "withdrawn"]


class PolicyFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PolicyStatus.choices)

    class Meta:
        model = ResidencyPolicy
        fields = ["name", "version", "status"]


# Shown in the OpenAPI schema beside the ?state= filter.
CONSENT_STATES = (
    ("active", _("Granted, not expired, not withdrawn")),
    ("withdrawn", _("Withdrawn")),
    ("expired", _("Expired (and not withdrawn)")),
)


class ConsentFilter(django_filters.FilterSet):
    subject = django_filters.CharFilter(field_name="subject_pseudonym")
    purpose = django_filters.CharFilter(field_name="purpose__code")
    site = IdFilter(field_name="dataset__site")
    state = django_filters.ChoiceFilter(choices=CONSENT_STATES, method="filter_state")

    class Meta:
        model = Consent
        fields = ["dataset", "site", "subject", "purpose", "state"]

    def filter_state(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        now = clock.now()
        not_expired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if value == "withdrawn":
            return queryset.filter(withdrawn_at__isnull=False)
        if value == "expired":
            return queryset.filter(withdrawn_at__isnull=True, expires_at__lte=now)
        return queryset.filter(not_expired, withdrawn_at__isnull=True, granted_at__lte=now)


class ConsentEventFilter(django_filters.FilterSet):
    subject = django_filters.CharFilter(field_name="subject_pseudonym")
    purpose = django_filters.CharFilter(field_name="purpose__code")
    site = IdFilter(field_name="dataset__site")
    batch = django_filters.CharFilter(field_name="batch_id")

    class Meta:
        model = ConsentEvent
        fields = ["dataset", "site", "subject", "purpose", "kind", "batch"]
