"""Other packages' admins with fedgov's inflected titles (fedgov.admin_titles): Django's
users and groups and axes' access attempts read "Dodaj użytkownika", not "Dodaj użytkownik".

``fedgov`` comes after ``django.contrib.auth`` and ``axes`` in INSTALLED_APPS, so their
admins are registered when this module runs; each is registered again as a subclass with
the titles mixed in, its behaviour otherwise unchanged.
"""

from __future__ import annotations

from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.utils.translation import gettext_noop

from fedgov.admin_titles import InflectedTitles

for _model in (User, Group, AccessAttempt):
    if admin.site.is_registered(_model):
        _current = type(admin.site.get_model_admin(_model))
        admin.site.unregister(_model)
        admin.site.register(_model, type(_current.__name__, (InflectedTitles, _current), {}))

# axes marks these but ships no Polish or Spanish for them: fedgov's catalogue, which
# Django reads first, carries them in every language (issue 19, third-party labels).
THIRD_PARTY_LABELS = (
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("Access lock out"),
)
