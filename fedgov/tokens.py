"""API tokens for machines: the Flower ServerApp's service token and a site's steward token.

Services (the only write path): ``token_create``, ``token_list``, ``token_revoke``. Each
writes a ledger event in the same transaction: who minted, listed or revoked which
account's token. The ledger keeps a SHA-256 fingerprint of the key, never the key (the
key is shown once, to the person who minted it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db import transaction
from rest_framework.authtoken.models import Token

from audit.services import ledger_append
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput


@dataclass(frozen=True)
class TokenInfo:
    """One token as a listing shows it: the account, its role, the key's fingerprint."""

    username: str
    role: str
    site: str
    fingerprint: str
    created: str


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()[:16]


def _role_of(user: User) -> tuple[str, str]:
    from sites.models import SiteSteward

    names = set(user.groups.values_list("name", flat=True))
    role = roles.SERVICE if roles.SERVICE in names else next(iter(sorted(names)), "")
    site = SiteSteward.objects.filter(user=user).values_list("site__slug", flat=True).first() or ""
    return role, site


def token_create(
    *, actor: Actor, role: str, site_slug: str = "", username: str = ""
) -> tuple[str, str]:
    """Mint a token for a new machine account: the Service role, or a site's steward.

    Returns ``(username, key)``; the key is shown once. Raises ``InvalidInput`` for another
    role, a steward without a known site, or an account that exists already.
    Ledger: ``token.created``.
    """
    from sites.models import Site, SiteSteward

    site = None
    if role == roles.SERVICE:
        if site_slug:
            raise InvalidInput({"site": ["a service token acts for no site"]})
    elif role == roles.SITE_STEWARD:
        site = Site.objects.filter(slug=site_slug).first()
        if site is None:
            raise InvalidInput({"site": [f"no site {site_slug!r}"]})
    else:
        raise InvalidInput({"role": ["tokens are minted for the Service or Site steward role"]})
    with transaction.atomic(durable=True):
        if not username:
            base = f"service-{User.objects.count() + 1}" if site is None else f"token-{site.slug}"
            username, n = base, 1
            while User.objects.filter(username=username).exists():
                n += 1
                username = f"{base}-{n}"
        elif User.objects.filter(username=username).exists():
            raise InvalidInput({"username": [f"user {username!r} already exists"]})
        # No password: the account signs in with its token only.
        user = User.objects.create_user(username=username, password=None)
        user.groups.add(Group.objects.get(name=role))
        if site is not None:
            SiteSteward.objects.create(user=user, site=site)
        token = Token.objects.create(user=user)
        ledger_append(
            event_type="token.created",
            actor=actor,
            subject_type="user",
            subject_id=user.pk,
            payload={
                # Ids and a fingerprint only: the ledger never carries a name.
                "user_id": user.pk,
                "role": role,
                "site_id": site.pk if site else None,
                "key_sha256": fingerprint(token.key),
            },
        )
    return username, token.key


def token_list(*, actor: Actor) -> list[TokenInfo]:
    """Every API token with its account and role (fingerprints, never keys).

    Ledger: ``token.listed`` (how many were shown, to whom): reading who can reach the
    API is itself worth a trace.
    """
    with transaction.atomic(durable=True):
        tokens = Token.objects.select_related("user").order_by("created")
        listing = []
        for token in tokens:
            role, site = _role_of(token.user)
            listing.append(
                TokenInfo(
                    username=token.user.get_username(),
                    role=role,
                    site=site,
                    fingerprint=fingerprint(token.key),
                    created=token.created.isoformat(),
                )
            )
        ledger_append(
            event_type="token.listed",
            actor=actor,
            subject_type="token",
            subject_id="all",
            payload={"count": len(listing), "fingerprints": [t.fingerprint for t in listing]},
        )
    return listing


def token_revoke(*, actor: Actor, username: str) -> str:
    """Delete the account's token so it no longer reaches the API; returns its fingerprint.

    Raises ``InvalidInput`` when the account has no token. Ledger: ``token.revoked``.
    """
    with transaction.atomic(durable=True):
        token = Token.objects.select_related("user").filter(user__username=username).first()
        if token is None:
            raise InvalidInput({"username": [f"{username!r} has no token"]})
        printed = fingerprint(token.key)
        user_id = token.user_id
        token.delete()
        ledger_append(
            event_type="token.revoked",
            actor=actor,
            subject_type="user",
            subject_id=user_id,
            payload={"user_id": user_id, "key_sha256": printed},
        )
    return printed
