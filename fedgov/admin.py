"""Other packages' admins in the reader's language: Django's users and groups, axes' access
attempts and logs, django-otp's TOTP devices.

``fedgov`` comes after ``django.contrib.auth``, ``axes`` and ``django_otp`` in
INSTALLED_APPS, so their admins are registered when this module runs; each is registered
again as a subclass with fedgov's inflected titles (fedgov.admin_titles: "Dodaj
użytkownika", not "Dodaj użytkownik") and, where the package writes English that no
catalogue can reach, with those few texts replaced; its behaviour otherwise unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from axes.conf import settings as axes_settings
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext

from fedgov.admin_titles import InflectedTitles

if TYPE_CHECKING:
    _Base = admin.ModelAdmin[Any]
else:
    _Base = object


class AxesAttemptTexts(_Base):
    """ModelAdmin mixin for axes' access attempts: the texts its admin builds in English
    (an f-string inside gettext, a count glued to a word, columns without a label)."""

    @admin.display(description=_("status"))
    def status(self, obj: AccessAttempt) -> str:
        limit = axes_settings.AXES_FAILURE_LIMIT
        left = limit - obj.failures_since_start
        if left <= 0:
            return str(_("Locked Out"))
        return ngettext("%(count)s attempt remaining", "%(count)s attempts remaining", left) % {
            "count": left
        }

    @admin.display(description=_("Expires At"))
    def expiration(self, obj: AccessAttempt) -> Any:
        return obj.expiration.expires_at if hasattr(obj, "expiration") else _("Not set")

    @admin.action(description=_("Clean up expired attempts"))
    def cleanup_expired_attempts(self, request, queryset) -> None:
        # axes measures the cool-off from the attempt time its login handler stamps on a
        # request; an admin request has none, and axes' own action failed with a 500.
        # None is axes' word for "now".
        if not hasattr(request, "axes_attempt_time"):
            request.axes_attempt_time = None
        count = self.handler.clean_expired_user_attempts(request=request)  # type: ignore[attr-defined]
        self.message_user(
            request,
            ngettext(
                "Cleaned up %(count)s expired access attempt.",
                "Cleaned up %(count)s expired access attempts.",
                count,
            )
            % {"count": count},
        )


class TranslatedDeviceSections(_Base):
    """ModelAdmin mixin for django-otp's TOTP device admin: its section titles, which it
    writes in English only, in the reader's language. The field labels and help texts are
    the model's (fedgov.apps.name_third_party_models). Its QR code column and pages are
    off (``OTP_ADMIN_HIDE_SENSITIVE_DATA``), so they need no translation."""

    SECTIONS = {
        "Identity": _("Identity"),
        "Timestamps": _("Timestamps"),
        "Configuration": _("Configuration"),
        "State": _("State"),
        "Throttling": _("Throttling"),
    }

    def get_fieldsets(self, request, obj=None):
        return [
            (self.SECTIONS.get(title, title) if isinstance(title, str) else title, options)
            for title, options in super().get_fieldsets(request, obj)
        ]


def _again(model: Any, *mixins: type) -> None:
    """Register ``model``'s admin again as a subclass with ``mixins`` and the titles."""
    if not admin.site.is_registered(model):
        return
    current = type(admin.site.get_model_admin(model))
    admin.site.unregister(model)
    admin.site.register(model, type(current.__name__, (*mixins, InflectedTitles, current), {}))


for _model in (User, Group, AccessLog, AccessFailureLog):
    _again(_model)
_again(AccessAttempt, AxesAttemptTexts)
if apps.is_installed("django_otp.plugins.otp_totp"):
    _again(apps.get_model("otp_totp", "TOTPDevice"), TranslatedDeviceSections)

# What axes marks but ships no translation for in one of fedgov's languages (no Spanish
# at all; no Polish for the user agent; none anywhere for its later additions): fedgov's
# catalogue, which Django reads first, carries them in every language (issue 19).
# tests/test_i18n_axes.py finds any msgid of axes that a language still shows in English.
THIRD_PARTY_LABELS = (
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("Access lock out"),
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("Access Attempt"),
    gettext_noop("Attempt Time"),
    gettext_noop("Logout Time"),
    gettext_noop("Failed Logins"),
    gettext_noop("User Agent"),
    gettext_noop("IP Address"),
    gettext_noop("HTTP Accept"),
    gettext_noop("Path"),
    gettext_noop("GET Data"),
    gettext_noop("POST Data"),
    gettext_noop("Form Data"),
    gettext_noop("Meta Data"),
    gettext_noop("Session key hash (sha256)"),
    gettext_noop("The time when access attempt expires and is no longer valid."),
    gettext_noop("Attempt Remaining"),
    # What a locked-out person reads (axes' lockout response).
    gettext_noop("Account locked: too many login attempts. Please try again later."),
    gettext_noop(
        "Account locked: too many login attempts. Contact an admin to unlock your account."
    ),
)
