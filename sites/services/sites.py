"""Sites: registration, updates, suspension and activation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email, validate_slug
from django.db import transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import TransitionNotAllowed
from fedgov.updates import model_update
from fedgov.validation import (
    Errors,
    as_date,
    check_choice,
    check_hash,
    check_int,
    check_text,
    lazy_number,
    unknown_fields,
)
from sites.choices import (
    AgreementType,
    PartyRole,
    SiteStatus,
)
from sites.models import (
    Site,
)
from sites.services._kit import (
    CREDENTIALS_REF,
    _check_country,
    sha256_text,
    unique_or_invalid,
)

SITE_FIELDS = (
    "slug",
    "organisation",
    "country",
    "contact_email",
    "agreement_type",
    "agreement_document_hash",
    "agreement_valid_from",
    "agreement_valid_until",
    "compute_country",
    "one_zone_endpoint",
    "one_zone_id",
    "one_credentials_ref",
    "one_template_id",
    "supernode_public_key",
    "zone_operator",
    "zone_operator_country",
    "zone_operator_role",
)
# Everything but the slug (policies name sites by slug) and the status (own services).
SITE_UPDATABLE = (*SITE_FIELDS[1:], "flower_node_id")


def site_validate(values: dict[str, Any], *, instance: Site | None = None) -> dict[str, Any]:
    """Check a full set of site fields; return them normalised. Raises ``InvalidInput``.

    The admin form calls this too, so a bad value shows next to its field there. Each
    check below is one field's (or one pair's) rule; they run in this order, so a field's
    reasons come in the order a reader meets them.
    """
    errors = Errors()
    v = dict(values)
    _check_slug(errors, v.get("slug"), instance)
    for check in _SITE_CHECKS:
        check(errors, v)
    errors.raise_if_any()
    return v


def _check_slug(errors: Errors, slug: Any, instance: Site | None) -> None:
    try:
        validate_slug(slug or "")
    except ValidationError:
        errors.add("slug", _("must be letters, digits, hyphens or underscores"))
        return
    if len(slug) > 64:
        errors.add(
            "slug", format_lazy(_("must be at most {count} characters"), count=lazy_number(64))
        )
    clash = Site.objects.filter(slug=slug)
    if instance is not None:
        clash = clash.exclude(pk=instance.pk)
    if clash.exists():
        errors.add("slug", format_lazy(_("a site {slug!r} already exists"), slug=slug))


def _check_party(errors: Errors, v: dict[str, Any]) -> None:
    """Who the site is: organisation, countries, contact."""
    check_text(errors, "organisation", v.get("organisation"), max_length=200)
    _check_country(errors, "country", v.get("country"))
    _check_country(errors, "compute_country", v.get("compute_country"))
    try:
        validate_email(v.get("contact_email") or "")
    except ValidationError:
        errors.add("contact_email", _("must be an e-mail address"))


def _check_agreement(errors: Errors, v: dict[str, Any]) -> None:
    """The data-sharing agreement: its type, document hash and validity window."""
    check_choice(errors, "agreement_type", v.get("agreement_type"), AgreementType)
    check_hash(errors, "agreement_document_hash", v.get("agreement_document_hash"))
    if isinstance(v.get("agreement_document_hash"), str):
        v["agreement_document_hash"] = v["agreement_document_hash"].lower()
    start = as_date(v.get("agreement_valid_from"))
    end = as_date(v.get("agreement_valid_until"))
    if start is None:
        errors.add("agreement_valid_from", _("must be a date (YYYY-MM-DD)"))
    if end is None:
        errors.add("agreement_valid_until", _("must be a date (YYYY-MM-DD)"))
    if start and end and end < start:
        errors.add("agreement_valid_until", _("must not be before agreement_valid_from"))
    v["agreement_valid_from"], v["agreement_valid_until"] = start, end


def _check_zone_endpoint(errors: Errors, v: dict[str, Any]) -> None:
    endpoint = v.get("one_zone_endpoint") or ""
    if endpoint:
        try:
            URLValidator(schemes=["http", "https"])(endpoint)
        except ValidationError:
            errors.add(
                "one_zone_endpoint", _("must be an http(s) URL such as http://host:2633/RPC2")
            )
    v["one_zone_endpoint"] = endpoint
    check_int(errors, "one_zone_id", v.get("one_zone_id", 0), minimum=0)


def _check_credentials_ref(errors: Errors, v: dict[str, Any]) -> None:
    ref = v.get("one_credentials_ref") or ""
    if ref and not CREDENTIALS_REF.match(ref):
        # Never a secret in the database: only where the secret lives.
        errors.add(
            "one_credentials_ref",
            _("must name where the secret lives (env:VAR_NAME or file:/path), not the secret"),
        )
    v["one_credentials_ref"] = ref
    template = v.get("one_template_id")
    if template is not None:
        check_int(errors, "one_template_id", template, minimum=0)


def _check_supernode(errors: Errors, v: dict[str, Any]) -> None:
    """The SuperNode's public key (PEM) and Flower node id, when stated."""
    key = v.get("supernode_public_key") or ""
    if key:
        try:
            load_pem_public_key(key.encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError):
            errors.add("supernode_public_key", _("must be a PEM-encoded public key"))
    v["supernode_public_key"] = key
    if len(v.get("flower_node_id") or "") > 32:
        errors.add(
            "flower_node_id",
            format_lazy(_("must be at most {count} characters"), count=lazy_number(32)),
        )


_ZONE_OPERATOR_FIELDS = ("zone_operator", "zone_operator_country", "zone_operator_role")


def _check_zone_operator(errors: Errors, v: dict[str, Any]) -> None:
    """All three zone-operator facts, or none (unknown: the gate then denies the site)."""
    for name in _ZONE_OPERATOR_FIELDS:
        value = v.get(name) or ""
        if not isinstance(value, str):
            errors.add(name, _("must be text"))
            return
        v[name] = value.strip()
    if not any(v[name] for name in _ZONE_OPERATOR_FIELDS):
        return
    check_text(errors, "zone_operator", v["zone_operator"], max_length=200)
    _check_country(errors, "zone_operator_country", v["zone_operator_country"])
    check_choice(errors, "zone_operator_role", v["zone_operator_role"], PartyRole)
    own = v["zone_operator"] == (v.get("organisation") or "").strip()
    if own and v["zone_operator_country"] != v.get("country"):
        # One organisation, one establishment: the site's own name with another country
        # is a typo or another legal entity, and either way ambiguous for Art. 44.
        errors.add(
            "zone_operator_country",
            _("the site itself operates the zone, so this must be the site's country"),
        )


# The field checks after the slug, in the order their errors are reported.
_SITE_CHECKS: tuple[Callable[[Errors, dict[str, Any]], None], ...] = (
    _check_party,
    _check_agreement,
    _check_zone_endpoint,
    _check_credentials_ref,
    _check_supernode,
    _check_zone_operator,
)


def _site_payload(site: Site) -> dict[str, Any]:
    return {
        "site_id": site.pk,
        "slug": site.slug,
        "country": site.country,
        "compute_country": site.compute_country,
        "agreement_type": site.agreement_type,
        "agreement_document_hash": site.agreement_document_hash,
        "agreement_valid_from": site.agreement_valid_from.isoformat(),
        "agreement_valid_until": site.agreement_valid_until.isoformat(),
        "one_zone_id": site.one_zone_id,
        "status": site.status,
        "zone_operator_sha256": sha256_text(site.zone_operator) if site.zone_operator else "",
        "zone_operator_country": site.zone_operator_country,
        "zone_operator_role": site.zone_operator_role,
    }


def site_register(
    *,
    actor: Actor,
    slug: str,
    organisation: str,
    country: str,
    contact_email: str,
    agreement_type: str,
    agreement_document_hash: str,
    agreement_valid_from: dt.date | str,
    agreement_valid_until: dt.date | str,
    compute_country: str,
    one_zone_endpoint: str = "",
    one_zone_id: int = 0,
    one_credentials_ref: str = "",
    one_template_id: int | None = None,
    supernode_public_key: str = "",
    zone_operator: str = "",
    zone_operator_country: str = "",
    zone_operator_role: str = "",
) -> Site:
    """Register a federation participant with its Art. 26/28 agreement.

    Raises ``InvalidInput``. Ledger: ``site.registered``.
    """
    values = {name: value for name, value in locals().items() if name in SITE_FIELDS}
    with transaction.atomic(durable=True):
        values = site_validate(values)
        with unique_or_invalid(
            "slug", format_lazy(_("a site {slug!r} already exists"), slug=values["slug"])
        ):
            site = Site.objects.create(**values)
        ledger_append(
            event_type="site.registered",
            actor=actor,
            subject_type="site",
            subject_id=site.pk,
            payload=_site_payload(site),
        )
    return site


def site_update(*, actor: Actor, site: Site, **fields: Any) -> Site:
    """Change a site's facts (not its slug or status). Ledger: ``site.updated``.

    Raises ``InvalidInput`` for an unknown or bad field.
    """
    unknown_fields(fields, SITE_UPDATABLE)
    with transaction.atomic(durable=True):
        site = Site.objects.select_for_update().get(pk=site.pk)
        current = {name: getattr(site, name) for name in (*SITE_FIELDS, "flower_node_id")}
        values = site_validate({**current, **fields}, instance=site)
        changed = model_update(instance=site, fields=fields, current=current, values=values)
        ledger_append(
            event_type="site.updated",
            actor=actor,
            subject_type="site",
            subject_id=site.pk,
            # The contact e-mail is personal data: its change is named, not copied.
            payload={**_site_payload(site), "changed": changed},
        )
    return site


def _site_set_status(*, actor: Actor, site: Site, reason: str, to: str, event: str) -> Site:
    errors = Errors()
    check_text(errors, "reason", reason, max_length=2000)
    errors.raise_if_any()
    with transaction.atomic(durable=True):
        site = Site.objects.select_for_update().get(pk=site.pk)
        if site.status == to:
            # One whole sentence per state, so each language agrees it with the site.
            already = (
                _("site {slug} is already suspended")
                if to == SiteStatus.SUSPENDED
                else _("site {slug} is already active")
            )
            raise TransitionNotAllowed(format_lazy(already, slug=site.slug))
        site.status = to
        site.status_reason = reason.strip()
        site.status_changed_at = clock.now()
        site.save(update_fields=["status", "status_reason", "status_changed_at"])
        ledger_append(
            event_type=event,
            actor=actor,
            subject_type="site",
            subject_id=site.pk,
            payload={"site_id": site.pk, "slug": site.slug, "reason_sha256": sha256_text(reason)},
        )
    return site


def site_suspend(*, actor: Actor, site: Site, reason: str) -> Site:
    """Suspend a site: the gate refuses it and no dataset can be registered there.

    Raises ``InvalidInput`` (empty reason), ``TransitionNotAllowed`` (already suspended).
    Ledger: ``site.suspended``.
    """
    return _site_set_status(
        actor=actor, site=site, reason=reason, to=SiteStatus.SUSPENDED, event="site.suspended"
    )


def site_activate(*, actor: Actor, site: Site, reason: str) -> Site:
    """Re-activate a suspended site. Ledger: ``site.activated``.

    Raises ``InvalidInput`` (empty reason), ``TransitionNotAllowed`` (already active).
    """
    return _site_set_status(
        actor=actor, site=site, reason=reason, to=SiteStatus.ACTIVE, event="site.activated"
    )


# -------------------------------------------------------------------------- purposes
