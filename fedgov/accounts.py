"""People who log in: accounts with a role, and the demo's one-account-per-role set."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from fedgov import roles

# Roles a person holds. The Service role is the Flower strategy's API identity, never
# somebody at a browser, so no command hands it a password.
HUMAN_ROLES = (roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR, roles.SITE_STEWARD)

# The demo's people (training/management/commands/demo.py, federate.py) plus one
# account for each role the demo itself does not script. demo-operator-2 is the
# four-eyes second operator: an operator may not approve a round they requested.
DEMO_ACCOUNTS = (
    ("demo-dpo", roles.DPO),
    ("demo-operator", roles.OPERATOR),
    ("demo-operator-2", roles.OPERATOR),
    ("demo-legal", roles.LEGAL),
    ("demo-auditor", roles.AUDITOR),
)
# Site stewards act for one site, so the demo's are the ones `make demo` bound to its
# sites: steward-<site slug> (training/management/commands/federate.py).
DEMO_STEWARD_PREFIX = "steward-"


class AccountError(ValueError):
    """A bad account request, with the reason a person can act on."""


@dataclass(frozen=True)
class IssuedLogin:
    username: str
    role: str
    password: str | None  # None: the account already had a password, not shown again
    # A TOTP secret (base32) and its otpauth:// URI, issued now and shown once; None when
    # none was issued (the role needs none, or the account already has a device).
    totp_secret: str | None = None
    totp_uri: str | None = None


def _issue_totp(user: User) -> tuple[str, str]:
    from fedgov import second_factor

    device = second_factor.totp_device_issue(user=user, confirmed=True)
    return second_factor.secret_base32(device), second_factor.provisioning_uri(device)


def new_password() -> str:
    # 18 random bytes: 24 URL-safe characters, far above any password validator's floor.
    return secrets.token_urlsafe(18)


def account_create(
    *,
    username: str,
    role: str,
    password: str | None = None,
    email: str = "",
    site_slug: str | None = None,
    totp: bool = False,
) -> IssuedLogin:
    """Create a staff account holding ``role``; a random password when none is given.

    ``totp=True`` also gives it a confirmed TOTP device, whose secret is returned once
    for whoever hands the account over (fedgov/second_factor.py).

    A site steward needs ``site_slug`` (the one site they act for); other roles refuse it.
    Raises AccountError for an unknown or non-human role, an existing username, a missing
    or unknown site, or a password the configured validators refuse.
    """
    from sites.models import Site, SiteSteward

    if role not in HUMAN_ROLES:
        raise AccountError(f"unknown role {role!r}; one of: {', '.join(HUMAN_ROLES)}")
    username = username.strip()
    if not username:
        raise AccountError("username must not be empty")
    site = None
    if role == roles.SITE_STEWARD:
        if not site_slug:
            raise AccountError("a site steward needs --site SLUG: the one site they act for")
        site = Site.objects.filter(slug=site_slug).first()
        if site is None:
            raise AccountError(f"no site with slug {site_slug!r}")
    elif site_slug:
        raise AccountError(f"--site is only for the {roles.SITE_STEWARD!r} role")
    password = password if password is not None else new_password()
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            raise AccountError(f"user {username!r} already exists")
        user = User(username=username, email=email, is_staff=True)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise AccountError("password refused: " + " ".join(exc.messages)) from exc
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=role))
        if site is not None:
            SiteSteward.objects.create(user=user, site=site)
        secret, uri = _issue_totp(user) if totp else (None, None)
    return IssuedLogin(username, role, password, secret, uri)


def demo_accounts_issue() -> list[IssuedLogin]:
    """Give each demo account a login; a random password only where it has none yet.

    Accounts `make demo` made without a usable password get one now and become staff;
    an account that already has a password keeps it and its password is not returned,
    so each password is printed exactly once. The same holds for the TOTP secret of each
    role that approves or signs: issued (confirmed) once, with the password, so the demo's
    people can do their jobs; an account that already has a device keeps it.
    """
    from fedgov.second_factor import ROLES_NEEDING_SECOND_FACTOR, has_confirmed_device
    from sites.models import SiteSteward

    issued = []
    stewards = SiteSteward.objects.filter(
        user__username__startswith=DEMO_STEWARD_PREFIX
    ).values_list("user__username", flat=True)
    people = [*DEMO_ACCOUNTS, *((name, roles.SITE_STEWARD) for name in sorted(stewards))]
    with transaction.atomic():
        for username, role in people:
            user, created = User.objects.select_for_update().get_or_create(username=username)
            password = None
            # get_or_create leaves password "", which Django counts as usable.
            if created or not user.has_usable_password():
                password = new_password()
                user.set_password(password)
            user.is_staff = True
            user.save()
            user.groups.add(Group.objects.get(name=role))
            secret = uri = None
            if role in ROLES_NEEDING_SECOND_FACTOR and not has_confirmed_device(user):
                secret, uri = _issue_totp(user)
            issued.append(IssuedLogin(username, role, password, secret, uri))
    return issued
