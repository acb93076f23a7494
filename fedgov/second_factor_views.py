"""Sign-in with a second factor, and a person's own TOTP enrolment page (under the admin)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from fedgov import second_factor

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class SecondFactorFormMixin(forms.Form):
    """A login form's extra field: a person with a confirmed device must give its code.

    The code is checked only after the password, so a wrong code says nothing about
    whether the password was right to someone without it. django-otp's login signal
    handler stores the matched device in the session (``django_otp._handle_auth_login``).
    """

    otp_token = forms.CharField(
        label=_("Authenticator code"),
        required=False,
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text=_("The six digits your authenticator app shows, if you have enrolled one."),
    )

    def clean(self):
        cleaned = super().clean()
        user = self.user_cache
        if user is None or not second_factor.has_confirmed_device(user):
            return cleaned
        token = (cleaned.get("otp_token") or "").strip()
        if not token:
            raise ValidationError(
                _("This account has an authenticator: enter its current code."),
                code="token_required",
            )
        device = match_token(user, token)
        if device is None:
            raise ValidationError(
                _("That authenticator code is wrong or was already used."), code="invalid_token"
            )
        user.otp_device = device
        return cleaned


class SecondFactorLoginForm(SecondFactorFormMixin, AdminAuthenticationForm):
    """The admin's login form with the authenticator code."""


class SecondFactorAuthenticationForm(SecondFactorFormMixin, AuthenticationForm):
    """The dashboard's login form with the authenticator code."""


class EnrolForm(forms.Form):
    otp_token = forms.CharField(
        label=_("Code from your app"),
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def _pending_device(request: HttpRequest) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=request.user, confirmed=False).order_by("-pk").first()


@never_cache
@staff_member_required
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """GET shows a new secret (QR code and text) once; POST confirms it with a code.

    Each GET replaces an unconfirmed secret, so a secret seen on an earlier visit (or
    over someone's shoulder) stops working. A confirmed device is never shown again.
    """
    # staff_member_required: only a signed-in staff user reaches this view.
    user = cast("User", request.user)
    confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    form = EnrolForm(request.POST if request.method == "POST" else None)
    device = None
    if confirmed is None:
        if request.method == "POST":
            device = _pending_device(request)
            if device is None:
                return redirect(second_factor.ENROL_PATH)
            if form.is_valid() and second_factor.totp_confirm(
                device=device, token=form.cleaned_data["otp_token"]
            ):
                # This session has just proved the factor.
                otp_login(request, device)
                messages.success(
                    request,
                    _(
                        "Authenticator confirmed. From now on you sign in with its code, and "
                        "you may approve, reject and request signed reports."
                    ),
                )
                return redirect(second_factor.ENROL_PATH)
            if form.is_valid():
                form.add_error("otp_token", _("That code does not match; try the current one."))
        else:
            device = second_factor.totp_device_issue(user=user)
    context = {
        **admin.site.each_context(request),
        "title": _("Two-factor sign-in"),
        "confirmed": confirmed,
        "device": device,
        "secret": second_factor.secret_base32(device) if device else "",
        "qr_svg": second_factor.qr_svg(device) if device else "",
        "form": form,
        "session_verified": bool(getattr(user, "is_verified", lambda: False)()),
        "needed": second_factor.needs_second_factor(user),
    }
    return TemplateResponse(request, "admin/two_factor.html", context)
