"""The second factor (TOTP through django-otp) that binding acts require of a person.

Deciding on a round and requesting a signed report bind the organisation, so the
person doing either must have proved a second factor in this session, whatever the
door (admin action, API call, a script acting for a person): the services call
``require_second_factor``; pages only mirror it. A person without a confirmed device
can still read everything their role allows.

TOTP is RFC 6238 (30-second steps, six digits, HMAC-SHA1: what authenticator apps
accept); django-otp refuses a code at or before the last accepted time step, so a code
seen once cannot be replayed (its ``TOTPDevice.verify_token``).
"""

from __future__ import annotations

import base64
from io import BytesIO

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import SecondFactorRequired

# Who must enrol: approvers (operators and DPOs decide on rounds) and those who request
# signed reports (legal, DPOs). Everyone else may enrol; the acts check the actor, not this.
ROLES_NEEDING_SECOND_FACTOR = (roles.OPERATOR, roles.DPO, roles.LEGAL)
ENROL_PATH = "/account/two-factor/"
DEVICE_NAME = "authenticator app"


def require_second_factor(actor: Actor, *, act: str | Promise) -> None:
    """Refuse ``act`` to a person whose session has not passed a second factor.

    fedgov's own processes (``actor.user is None``) are not people and pass. Raises
    ``SecondFactorRequired``.
    """
    if actor.user is None or actor.second_factor:
        return
    # Lazy: the page or API response that shows it reads it in its reader's language.
    raise SecondFactorRequired(
        format_lazy(
            _(
                "{act} needs a second factor: sign in with the code from your authenticator "
                "app (enrol one at {path} if you have none)"
            ),
            act=act,
            path=ENROL_PATH,
        )
    )


def has_confirmed_device(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def needs_second_factor(user: User) -> bool:
    return roles.has_role(user, *ROLES_NEEDING_SECOND_FACTOR)


def totp_device_issue(*, user: User, confirmed: bool = False) -> TOTPDevice:
    """A fresh TOTP secret for ``user``; any earlier unconfirmed one stops working.

    ``confirmed=True`` is for an administrator's bootstrap (``createuser --totp``, the
    demo's accounts): the secret is printed once to whoever hands it over.
    """
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=confirmed)


def totp_confirm(*, device: TOTPDevice, token: str) -> bool:
    """Confirm an enrolment with the first code the app shows; False if the code is wrong."""
    if not device.verify_token(token.strip()):
        return False
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return True


def secret_base32(device: TOTPDevice) -> str:
    """The secret as authenticator apps take it typed in (RFC 4648 base32, no padding)."""
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def provisioning_uri(device: TOTPDevice) -> str:
    """The ``otpauth://totp/...`` URI (Google Authenticator key URI format) a QR code holds."""
    return device.config_url


def qr_svg(device: TOTPDevice) -> str:
    """The provisioning URI as an inline SVG QR code: drawn here, nothing fetched."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(provisioning_uri(device), image_factory=qrcode.image.svg.SvgPathImage)
    buffer = BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    # Drop the XML declaration: the SVG goes inline in an HTML page.
    return svg[svg.index("<svg") :]


def actor_by_token(*, user: User, token: str) -> Actor:
    """The person ``user`` as an actor who has just passed a second factor.

    For callers without a browser session (a script acting for a named person, like the
    demo's second operator). Raises ``SecondFactorRequired`` for a wrong or replayed code.
    """
    if match_token(user, token.strip()) is None:
        raise SecondFactorRequired(
            format_lazy(_("the code for {user} is wrong or already used"), user=user.get_username())
        )
    return Actor(user=user, label=user.get_username(), second_factor=True)
