"""Write paths of the sites app: sites, purposes, datasets, residency policies, consent.

Every use-case service runs in one durable transaction, validates everything before it
writes, writes its rows and appends exactly one ledger event. Bad input raises
``InvalidInput`` (nothing written); a wrong state raises ``TransitionNotAllowed``.
Ledger payloads carry ids, codes, hashes and counts, never names, e-mails or free text
(a reason is logged as its SHA-256, the text stays on the row).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email, validate_slug
from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_date, parse_datetime

from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from sites.adequacy import parse_adequacy, shipped_adequacy
from sites.choices import (
    ART9_CATEGORIES,
    CRIMINAL_CATEGORY,
    AgreementType,
    Art9Condition,
    Art10Basis,
    Art49Ground,
    CertificationScheme,
    ConsentEventKind,
    LawfulBasis,
    NeighbouringRelation,
    PartyRole,
    PolicyStatus,
    RequiredDpMechanism,
    SafeguardMechanism,
    SiteStatus,
    TransferMechanism,
)
from sites.models import (
    AdequacyListVersion,
    Consent,
    ConsentEvent,
    Dataset,
    Purpose,
    ResidencyPolicy,
    Site,
)
from sites.regions import invalid_areas, is_country

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
CREDENTIALS_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S+)$")
# Pseudonyms are the site's own opaque tokens; "@" or whitespace suggests a raw identity.
PSEUDONYM = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
MAX_CONSENT_BATCH = 50_000
MAX_REPORTED_ROW_ERRORS = 50
# A site's clock may run a little ahead of ours; beyond this an event is in the future.
CLOCK_SKEW = dt.timedelta(minutes=5)
# SQLite caps bound parameters per statement; stay well below it on every backend.
IN_CHUNK = 500

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
DATASET_UPDATABLE = (
    "name",
    "description",
    "data_categories",
    "special_category",
    "art9_condition",
    "lawful_basis",
    "purposes",
    "retention_until",
    "processing_countries",
    "record_count",
    "art10_basis",
    "art10_reference",
)
POLICY_FIELDS = (
    "allowed_areas",
    "transfer_mechanisms",
    "min_eligible_sites",
    "min_records_per_site",
    "requires_approval",
    "approvals_required",
    "requires_controller_dpo_approval",
    "requires_dpia",
    "privacy_budget_epsilon",
    "model_updates_personal_data",
    "aggregator_operator",
    "host_operator",
    "transfer_safeguards",
    "recipient_certifications",
    "dpf_listing_max_age_days",
    "privacy_budget_delta",
    "dp_neighbouring_relation",
    "dp_required_mechanism",
)
# Fields added after versions were published: they enter a version's content (and hash)
# only when set away from their default, so hashes published before them stay valid.
POLICY_FIELDS_IF_SET = (
    "privacy_budget_delta",
    "dp_neighbouring_relation",
    "dp_required_mechanism",
)
POLICY_DEFAULTS: dict[str, Any] = {
    "allowed_areas": [],
    "transfer_mechanisms": {},
    "min_eligible_sites": 1,
    "min_records_per_site": 1,
    "requires_approval": True,
    "approvals_required": 1,
    "requires_controller_dpo_approval": False,
    "requires_dpia": True,
    "privacy_budget_epsilon": None,
    "model_updates_personal_data": True,
    "aggregator_operator": {},
    "host_operator": {},
    "transfer_safeguards": [],
    "recipient_certifications": [],
    "dpf_listing_max_age_days": 90,
    "privacy_budget_delta": None,
    "dp_neighbouring_relation": NeighbouringRelation.ADD_OR_REMOVE_ONE.value,
    "dp_required_mechanism": "",
}
# DPF certifications are renewed yearly; a listing checked longer ago proves nothing current.
MAX_DPF_LISTING_AGE_DAYS = 366


# --------------------------------------------------------------------------- helpers


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Errors:
    """Collects every field error first, so one 400 names all of them."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, reason: str) -> None:
        self.errors.setdefault(field, []).append(reason)

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidInput(self.errors)


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return parse_date(value)
        except ValueError:
            return None
    return None


def _as_aware_datetime(value: Any) -> tuple[dt.datetime | None, str]:
    """Parse an aware datetime or an ISO 8601 string with an offset; else a reason."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            return None, f"{value!r} is not an ISO 8601 date-time"
    else:
        return None, "must be an ISO 8601 date-time"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None, "needs a time zone offset (e.g. 2026-01-31T09:00:00Z)"
    return parsed.astimezone(dt.UTC), ""


def _check_text(errors: _Errors, field: str, value: Any, *, max_length: int) -> None:
    if not isinstance(value, str) or not value.strip():
        errors.add(field, "must not be empty")
    elif len(value) > max_length:
        errors.add(field, f"must be at most {max_length} characters")


def _check_hash(errors: _Errors, field: str, value: Any) -> None:
    if not isinstance(value, str) or not HEX64.match(value):
        errors.add(field, "must be a SHA-256 digest: 64 hexadecimal characters")


def _check_country(errors: _Errors, field: str, value: Any) -> None:
    if not is_country(value):
        errors.add(field, f"{value!r} is not an ISO 3166-1 alpha-2 country code")


def _check_areas(errors: _Errors, field: str, value: Any) -> None:
    if not isinstance(value, list | tuple) or not value:
        errors.add(field, "must be a non-empty list of ISO 3166 country codes or region names")
        return
    bad = invalid_areas([str(v) for v in value])
    if bad:
        errors.add(field, f"unknown country codes or regions: {', '.join(map(repr, bad))}")
    if len(set(value)) != len(value):
        errors.add(field, "lists an area twice")


def _check_choice(errors: _Errors, field: str, value: Any, choices: Any) -> None:
    if value not in choices.values:
        allowed = ", ".join(repr(v) for v in choices.values if v)
        errors.add(field, f"{value!r} is not one of {allowed}")


def _check_int(errors: _Errors, field: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(field, "must be a whole number")
    elif value < minimum:
        errors.add(field, f"must be at least {minimum}")


def _check_bool(errors: _Errors, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        errors.add(field, "must be true or false")


def _unknown_fields(fields: Iterable[str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise InvalidInput({name: ["cannot be set here"] for name in unknown})


@contextmanager
def unique_or_invalid(field: str, message: str) -> Iterator[None]:
    """Turn a unique-constraint race (two writers, one name) into a clear 400.

    The validation read cannot see a row another transaction has not committed yet; the
    database's unique index can. The savepoint keeps the outer transaction usable.
    """
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise InvalidInput({field: [message]}) from exc


def _json_value(value: Any) -> Any:
    """A value as it goes into a ledger payload or a content hash."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- sites


def site_validate(values: dict[str, Any], *, instance: Site | None = None) -> dict[str, Any]:
    """Check a full set of site fields; return them normalised. Raises ``InvalidInput``.

    The admin form calls this too, so a bad value shows next to its field there.
    """
    errors = _Errors()
    v = dict(values)
    slug = v.get("slug")
    try:
        validate_slug(slug or "")
    except ValidationError:
        errors.add("slug", "must be letters, digits, hyphens or underscores")
    else:
        if len(slug) > 64:
            errors.add("slug", "must be at most 64 characters")
        clash = Site.objects.filter(slug=slug)
        if instance is not None:
            clash = clash.exclude(pk=instance.pk)
        if clash.exists():
            errors.add("slug", f"a site {slug!r} already exists")
    _check_text(errors, "organisation", v.get("organisation"), max_length=200)
    _check_country(errors, "country", v.get("country"))
    _check_country(errors, "compute_country", v.get("compute_country"))
    try:
        validate_email(v.get("contact_email") or "")
    except ValidationError:
        errors.add("contact_email", "must be an e-mail address")
    _check_choice(errors, "agreement_type", v.get("agreement_type"), AgreementType)
    _check_hash(errors, "agreement_document_hash", v.get("agreement_document_hash"))
    if isinstance(v.get("agreement_document_hash"), str):
        v["agreement_document_hash"] = v["agreement_document_hash"].lower()
    start = _as_date(v.get("agreement_valid_from"))
    end = _as_date(v.get("agreement_valid_until"))
    if start is None:
        errors.add("agreement_valid_from", "must be a date (YYYY-MM-DD)")
    if end is None:
        errors.add("agreement_valid_until", "must be a date (YYYY-MM-DD)")
    if start and end and end < start:
        errors.add("agreement_valid_until", "must not be before agreement_valid_from")
    v["agreement_valid_from"], v["agreement_valid_until"] = start, end
    endpoint = v.get("one_zone_endpoint") or ""
    if endpoint:
        try:
            URLValidator(schemes=["http", "https"])(endpoint)
        except ValidationError:
            errors.add("one_zone_endpoint", "must be an http(s) URL such as http://host:2633/RPC2")
    v["one_zone_endpoint"] = endpoint
    _check_int(errors, "one_zone_id", v.get("one_zone_id", 0), minimum=0)
    ref = v.get("one_credentials_ref") or ""
    if ref and not CREDENTIALS_REF.match(ref):
        # Never a secret in the database: only where the secret lives.
        errors.add(
            "one_credentials_ref",
            "must name where the secret lives (env:VAR_NAME or file:/path), not the secret",
        )
    v["one_credentials_ref"] = ref
    template = v.get("one_template_id")
    if template is not None:
        _check_int(errors, "one_template_id", template, minimum=0)
    key = v.get("supernode_public_key") or ""
    if key:
        try:
            load_pem_public_key(key.encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError):
            errors.add("supernode_public_key", "must be a PEM-encoded public key")
    v["supernode_public_key"] = key
    if len(v.get("flower_node_id") or "") > 32:
        errors.add("flower_node_id", "must be at most 32 characters")
    _check_zone_operator(errors, v)
    errors.raise_if_any()
    return v


_ZONE_OPERATOR_FIELDS = ("zone_operator", "zone_operator_country", "zone_operator_role")


def _check_zone_operator(errors: _Errors, v: dict[str, Any]) -> None:
    """All three zone-operator facts, or none (unknown: the gate then denies the site)."""
    for name in _ZONE_OPERATOR_FIELDS:
        value = v.get(name) or ""
        if not isinstance(value, str):
            errors.add(name, "must be text")
            return
        v[name] = value.strip()
    if not any(v[name] for name in _ZONE_OPERATOR_FIELDS):
        return
    _check_text(errors, "zone_operator", v["zone_operator"], max_length=200)
    _check_country(errors, "zone_operator_country", v["zone_operator_country"])
    _check_choice(errors, "zone_operator_role", v["zone_operator_role"], PartyRole)
    own = v["zone_operator"] == (v.get("organisation") or "").strip()
    if own and v["zone_operator_country"] != v.get("country"):
        # One organisation, one establishment: the site's own name with another country
        # is a typo or another legal entity, and either way ambiguous for Art. 44.
        errors.add(
            "zone_operator_country",
            "the site itself operates the zone, so this must be the site's country",
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
        with unique_or_invalid("slug", f"a site {values['slug']!r} already exists"):
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
    _unknown_fields(fields, SITE_UPDATABLE)
    with transaction.atomic(durable=True):
        site = Site.objects.select_for_update().get(pk=site.pk)
        current = {name: getattr(site, name) for name in (*SITE_FIELDS, "flower_node_id")}
        values = site_validate({**current, **fields}, instance=site)
        changed = sorted(name for name in fields if values[name] != current[name])
        for name in changed:
            setattr(site, name, values[name])
        site.save()
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
    errors = _Errors()
    _check_text(errors, "reason", reason, max_length=2000)
    errors.raise_if_any()
    with transaction.atomic(durable=True):
        site = Site.objects.select_for_update().get(pk=site.pk)
        if site.status == to:
            raise TransitionNotAllowed(f"site {site.slug} is already {to}")
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


def purpose_validate(values: dict[str, Any], *, instance: Purpose | None = None) -> None:
    errors = _Errors()
    code = values.get("code")
    try:
        validate_slug(code or "")
    except ValidationError:
        errors.add("code", "must be letters, digits, hyphens or underscores")
    else:
        clash = Purpose.objects.filter(code=code)
        if instance is not None:
            clash = clash.exclude(pk=instance.pk)
        if len(code) > 64:
            errors.add("code", "must be at most 64 characters")
        elif clash.exists():
            errors.add("code", f"a purpose {code!r} already exists")
    _check_text(errors, "name", values.get("name"), max_length=200)
    if not isinstance(values.get("description", ""), str):
        errors.add("description", "must be text")
    errors.raise_if_any()


def purpose_create(*, actor: Actor, code: str, name: str, description: str = "") -> Purpose:
    """Name a processing purpose (Art. 5(1)(b)). Ledger: ``purpose.created``.

    Raises ``InvalidInput`` (bad or taken code, empty name).
    """
    with transaction.atomic(durable=True):
        purpose_validate({"code": code, "name": name, "description": description})
        with unique_or_invalid("code", f"a purpose {code!r} already exists"):
            purpose = Purpose.objects.create(code=code, name=name.strip(), description=description)
        ledger_append(
            event_type="purpose.created",
            actor=actor,
            subject_type="purpose",
            subject_id=purpose.pk,
            payload={"purpose_id": purpose.pk, "code": code, "name_sha256": sha256_text(name)},
        )
    return purpose


# -------------------------------------------------------------------------- datasets


def dataset_validate(
    values: dict[str, Any], *, site: Site, instance: Dataset | None = None
) -> dict[str, Any]:
    """Check a full set of dataset fields; return them normalised. Raises ``InvalidInput``."""
    errors = _Errors()
    v = dict(values)
    if instance is None and site.status != SiteStatus.ACTIVE:
        errors.add("site", f"site {site.slug} is {site.status}; datasets need an active site")
    name = v.get("name")
    _check_text(errors, "name", name, max_length=200)
    if isinstance(name, str) and name.strip():
        v["name"] = name.strip()
        clash = Dataset.objects.filter(site=site, name=v["name"])
        if instance is not None:
            clash = clash.exclude(pk=instance.pk)
        if clash.exists():
            errors.add("name", f"site {site.slug} already has a dataset {v['name']!r}")
    if not isinstance(v.get("description", ""), str):
        errors.add("description", "must be text")
    categories = v.get("data_categories")
    if (
        not isinstance(categories, list | tuple)
        or not categories
        or not all(isinstance(c, str) and c.strip() for c in categories)
    ):
        errors.add("data_categories", "must be a non-empty list of category names")
    else:
        v["data_categories"] = [c.strip() for c in categories]
    _check_bool(errors, "special_category", v.get("special_category"))
    special = sorted(set(v.get("data_categories") or ()) & ART9_CATEGORIES.keys())
    if special and v.get("special_category") is False:
        # Art. 9(1) decides by what the data is, not by a flag.
        errors.add(
            "special_category",
            f"must be true: {', '.join(special)} are special categories under Art. 9(1)",
        )
    art10 = v.get("art10_basis") or ""
    v["art10_basis"] = art10
    _check_choice(errors, "art10_basis", art10, Art10Basis)
    reference = v.get("art10_reference") or ""
    if not isinstance(reference, str) or len(reference) > 300:
        errors.add("art10_reference", "must be text of at most 300 characters")
        reference = ""
    v["art10_reference"] = reference.strip()
    if CRIMINAL_CATEGORY in (v.get("data_categories") or ()):
        if not art10:
            errors.add("art10_basis", "criminal-conviction data needs its Art. 10 ground")
        if not v["art10_reference"]:
            errors.add("art10_reference", "name the authority's act or the law (Art. 10)")
    elif art10 or v["art10_reference"]:
        errors.add("art10_basis", f"only data with {CRIMINAL_CATEGORY!r} carries an Art. 10 ground")
    art9 = v.get("art9_condition") or ""
    v["art9_condition"] = art9
    _check_choice(errors, "art9_condition", art9, Art9Condition)
    if v.get("special_category") is True and not art9:
        errors.add("art9_condition", "special-category data needs its Art. 9(2) condition recorded")
    if v.get("special_category") is False and art9:
        errors.add("art9_condition", "only special-category data carries an Art. 9(2) condition")
    _check_choice(errors, "lawful_basis", v.get("lawful_basis"), LawfulBasis)
    purposes = v.get("purposes")
    if (
        not isinstance(purposes, list | tuple)
        or not purposes
        or not all(isinstance(p, Purpose) and p.pk for p in purposes)
    ):
        errors.add("purposes", "must list at least one registered purpose")
    elif len({p.pk for p in purposes}) != len(purposes):
        errors.add("purposes", "lists a purpose twice")
    retention = _as_date(v.get("retention_until"))
    if retention is None:
        errors.add("retention_until", "must be a date (YYYY-MM-DD)")
    # A retention date already past is a fact a DPO must be able to record (the gate then
    # refuses the dataset); the ledger event flags it as recorded late.
    v["retention_until"] = retention
    _check_areas(errors, "processing_countries", v.get("processing_countries"))
    _check_int(errors, "record_count", v.get("record_count"), minimum=0)
    errors.raise_if_any()
    return v


def _dataset_payload(dataset: Dataset, purposes: list[Purpose]) -> dict[str, Any]:
    return {
        "dataset_id": dataset.pk,
        "site_id": dataset.site_id,
        "lawful_basis": dataset.lawful_basis,
        "purposes": sorted(p.code for p in purposes),
        "retention_until": dataset.retention_until.isoformat(),
        "processing_countries": list(dataset.processing_countries),
        "data_categories": list(dataset.data_categories),
        "special_category": dataset.special_category,
        "art9_condition": dataset.art9_condition,
        "art10_basis": dataset.art10_basis,
        "record_count": dataset.record_count,
    }


def dataset_register(
    *,
    actor: Actor,
    site: Site,
    name: str,
    lawful_basis: str,
    purposes: list[Purpose],
    retention_until: dt.date | str,
    processing_countries: list[str],
    data_categories: list[str],
    description: str = "",
    special_category: bool = False,
    art9_condition: str = "",
    record_count: int = 0,
    art10_basis: str = "",
    art10_reference: str = "",
) -> Dataset:
    """Register a dataset held at an active site. Ledger: ``dataset.registered``.

    Raises ``InvalidInput`` (suspended site, bad basis or Art. 9 condition, unknown areas,
    retention in the past, ...).
    """
    values = {k: v for k, v in locals().items() if k not in ("actor", "site")}
    with transaction.atomic(durable=True):
        site = Site.objects.select_for_update().get(pk=site.pk)
        values = dataset_validate(values, site=site)
        purposes = list(values.pop("purposes"))
        with unique_or_invalid("name", f"site {site.slug} already has this dataset name"):
            dataset = Dataset.objects.create(site=site, **values)
        dataset.purposes.set(purposes)
        ledger_append(
            event_type="dataset.registered",
            actor=actor,
            subject_type="dataset",
            subject_id=dataset.pk,
            payload={
                **_dataset_payload(dataset, purposes),
                "recorded_late": _recorded_late(dataset, ["retention_until"]),
            },
        )
    return dataset


def dataset_update(*, actor: Actor, dataset: Dataset, **fields: Any) -> Dataset:
    """Change a dataset's facts. Ledger: ``dataset.updated``.

    Raises ``InvalidInput`` (bad field), ``TransitionNotAllowed`` (dataset withdrawn).
    """
    _unknown_fields(fields, DATASET_UPDATABLE)
    with transaction.atomic(durable=True):
        dataset = Dataset.objects.select_for_update().select_related("site").get(pk=dataset.pk)
        if dataset.withdrawn_at is not None:
            raise TransitionNotAllowed(f"dataset {dataset} was withdrawn and cannot change")
        current = {name: getattr(dataset, name) for name in DATASET_UPDATABLE if name != "purposes"}
        current["purposes"] = list(dataset.purposes.order_by("code"))
        values = dataset_validate({**current, **fields}, site=dataset.site, instance=dataset)
        changed = sorted(name for name in fields if values[name] != current[name])
        purposes = list(values.pop("purposes"))
        for name in changed:
            if name != "purposes":
                setattr(dataset, name, values[name])
        dataset.save()
        if "purposes" in changed:
            dataset.purposes.set(purposes)
        ledger_append(
            event_type="dataset.updated",
            actor=actor,
            subject_type="dataset",
            subject_id=dataset.pk,
            payload={
                **_dataset_payload(dataset, purposes),
                "changed": changed,
                "recorded_late": _recorded_late(dataset, changed),
            },
        )
    return dataset


def _recorded_late(dataset: Dataset, fields: list[str]) -> list[str]:
    """The written date fields that already lay in the past when recorded (the ledger
    entry itself says who recorded them and when)."""
    today = clock.now().date()
    return [
        name for name in ("retention_until",) if name in fields and getattr(dataset, name) < today
    ]


def dataset_withdraw(*, actor: Actor, dataset: Dataset, reason: str) -> Dataset:
    """Take a whole dataset out of federation, for good. Ledger: ``dataset.withdrawn``.

    The row and its consents stay as evidence. Raises ``InvalidInput`` (empty reason),
    ``TransitionNotAllowed`` (already withdrawn).
    """
    errors = _Errors()
    _check_text(errors, "reason", reason, max_length=2000)
    errors.raise_if_any()
    with transaction.atomic(durable=True):
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if dataset.withdrawn_at is not None:
            raise TransitionNotAllowed(f"dataset {dataset.pk} is already withdrawn")
        dataset.withdrawn_at = clock.now()
        dataset.withdrawal_reason = reason.strip()
        dataset.save(update_fields=["withdrawn_at", "withdrawal_reason"])
        ledger_append(
            event_type="dataset.withdrawn",
            actor=actor,
            subject_type="dataset",
            subject_id=dataset.pk,
            payload={
                "dataset_id": dataset.pk,
                "site_id": dataset.site_id,
                "withdrawn_at": dataset.withdrawn_at.isoformat(),
                "reason_sha256": sha256_text(reason),
            },
        )
    return dataset


# -------------------------------------------------------------------------- policies


def policy_validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check the policy's rule fields; return them normalised. Raises ``InvalidInput``."""
    errors = _Errors()
    v = dict(values)
    _check_areas(errors, "allowed_areas", v.get("allowed_areas"))
    mechanisms = v.get("transfer_mechanisms")
    if not isinstance(mechanisms, dict):
        errors.add("transfer_mechanisms", "must map site slugs to adequacy, scc or bcr")
    elif mechanisms:
        known = set(Site.objects.filter(slug__in=list(mechanisms)).values_list("slug", flat=True))
        for slug, mechanism in mechanisms.items():
            if slug not in known:
                errors.add("transfer_mechanisms", f"{slug!r} is not a registered site")
            if mechanism not in TransferMechanism.values:
                errors.add(
                    "transfer_mechanisms",
                    f"{slug}: {mechanism!r} is not one of {', '.join(TransferMechanism.values)}",
                )
    _check_int(errors, "min_eligible_sites", v.get("min_eligible_sites"), minimum=1)
    _check_int(errors, "min_records_per_site", v.get("min_records_per_site"), minimum=0)
    _check_int(errors, "approvals_required", v.get("approvals_required"), minimum=1)
    for flag in ("requires_approval", "requires_controller_dpo_approval", "requires_dpia"):
        _check_bool(errors, flag, v.get(flag))
    budget = v.get("privacy_budget_epsilon")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int | float):
            errors.add("privacy_budget_epsilon", "must be a number or empty")
        elif not math.isfinite(budget) or budget <= 0:
            errors.add("privacy_budget_epsilon", "must be a positive, finite number")
        else:
            v["privacy_budget_epsilon"] = float(budget)
    _check_bool(errors, "model_updates_personal_data", v.get("model_updates_personal_data"))
    for name in ("aggregator_operator", "host_operator"):
        v[name] = _checked_party(errors, name, v.get(name))
    v["transfer_safeguards"] = _checked_safeguards(errors, v.get("transfer_safeguards"))
    v["recipient_certifications"] = _checked_certifications(
        errors, v.get("recipient_certifications")
    )
    max_age = v.get("dpf_listing_max_age_days")
    _check_int(errors, "dpf_listing_max_age_days", max_age, minimum=1)
    if isinstance(max_age, int) and max_age > MAX_DPF_LISTING_AGE_DAYS:
        errors.add("dpf_listing_max_age_days", f"must be at most {MAX_DPF_LISTING_AGE_DAYS}")
    _check_dp_policy(errors, v)
    errors.raise_if_any()
    return v


def _checked_keys(
    errors: _Errors, field: str, value: Any, required: set[str], optional: set[str]
) -> bool:
    if not isinstance(value, dict):
        errors.add(field, "must be an object")
        return False
    missing, unknown = required - value.keys(), value.keys() - required - optional
    if missing:
        errors.add(field, f"missing {', '.join(sorted(missing))}")
    if unknown:
        errors.add(field, f"unknown field(s) {', '.join(sorted(unknown))}")
    return not missing and not unknown


def _checked_party(errors: _Errors, field: str, value: Any) -> dict[str, str]:
    """An operator: {organisation, country, role}, or {} for not recorded (the gate denies)."""
    if value in (None, {}):
        return {}
    if not _checked_keys(errors, field, value, {"organisation", "country", "role"}, set()):
        return {}
    _check_text(errors, f"{field}.organisation", value["organisation"], max_length=200)
    _check_country(errors, f"{field}.country", value["country"])
    _check_choice(errors, f"{field}.role", value["role"], PartyRole)
    organisation = value["organisation"]
    return {**value, "organisation": organisation.strip() if isinstance(organisation, str) else ""}


def _checked_safeguards(errors: _Errors, value: Any) -> list[dict[str, Any]]:
    """Art. 46/47/49 grounds, at most one per (exporter site slug, importer organisation)."""
    field = "transfer_safeguards"
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        errors.add(field, "must be a list of safeguards")
        return []
    slugs = [e.get("exporter") for e in value if isinstance(e, dict)]
    known = set(
        Site.objects.filter(slug__in=[s for s in slugs if isinstance(s, str)]).values_list(
            "slug", flat=True
        )
    )
    result: list[dict[str, Any]] = []
    seen: set[tuple[Any, Any]] = set()
    optional = {"scc_module", "signed_on", "reference", "tia_reference", "ground", "reason"}
    for i, raw in enumerate(value):
        where = f"{field}[{i}]"
        if not _checked_keys(errors, where, raw, {"exporter", "importer", "mechanism"}, optional):
            continue
        entry = dict(raw)
        if entry["exporter"] not in known:
            errors.add(where, f"exporter {entry['exporter']!r} is not a registered site")
        _check_text(errors, f"{where}.importer", entry["importer"], max_length=200)
        key = (entry["exporter"], entry["importer"])
        if key in seen:
            errors.add(where, f"{key[0]} → {key[1]} is listed twice")
        seen.add(key)
        mechanism = entry["mechanism"]
        _check_choice(errors, f"{where}.mechanism", mechanism, SafeguardMechanism)
        if mechanism == SafeguardMechanism.SCC:
            module = entry.get("scc_module")
            if isinstance(module, bool) or module not in (1, 2, 3, 4):
                errors.add(f"{where}.scc_module", "must be the SCC module: 1, 2, 3 or 4")
            signed = _as_date(entry.get("signed_on"))
            if signed is None:
                errors.add(f"{where}.signed_on", "must be the date the SCCs were signed")
            else:
                entry["signed_on"] = signed.isoformat()
        if mechanism == SafeguardMechanism.BCR:
            # Art. 47(1): BCRs bind only once the competent supervisory authority approved.
            _check_text(errors, f"{where}.reference", entry.get("reference"), max_length=200)
        if mechanism in (SafeguardMechanism.SCC, SafeguardMechanism.BCR):
            # EDPB Recommendations 01/2020, step 3: assess the law and practice of the
            # importer's country; the assessment's reference is the evidence.
            _check_text(
                errors, f"{where}.tia_reference", entry.get("tia_reference"), max_length=200
            )
        if mechanism == SafeguardMechanism.DEROGATION:
            _check_choice(errors, f"{where}.ground", entry.get("ground"), Art49Ground)
            _check_text(errors, f"{where}.reason", entry.get("reason"), max_length=2000)
        result.append(entry)
    return result


def _checked_certifications(errors: _Errors, value: Any) -> list[dict[str, Any]]:
    """Qualifying facts of recipients for scoped adequacy decisions (DPF, PIPEDA)."""
    field = "recipient_certifications"
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        errors.add(field, "must be a list of certifications")
        return []
    result: list[dict[str, Any]] = []
    required = {"organisation", "country", "scheme", "listing", "checked_on"}
    for i, raw in enumerate(value):
        where = f"{field}[{i}]"
        if not _checked_keys(errors, where, raw, required, set()):
            continue
        entry = dict(raw)
        _check_text(errors, f"{where}.organisation", entry["organisation"], max_length=200)
        _check_country(errors, f"{where}.country", entry["country"])
        _check_choice(errors, f"{where}.scheme", entry["scheme"], CertificationScheme)
        _check_text(errors, f"{where}.listing", entry["listing"], max_length=500)
        checked = _as_date(entry["checked_on"])
        if checked is None:
            errors.add(f"{where}.checked_on", "must be the date the listing was checked")
        else:
            entry["checked_on"] = checked.isoformat()
        result.append(entry)
    return result


def _check_dp_policy(errors, v: dict[str, Any]) -> None:
    """δ, neighbouring relation and required mechanism of the privacy budget (issue #17)."""
    delta = v.get("privacy_budget_delta")
    if delta is not None:
        if isinstance(delta, bool) or not isinstance(delta, int | float):
            errors.add("privacy_budget_delta", "must be a number or empty")
        elif not math.isfinite(delta) or not 0 < delta < 1:
            errors.add("privacy_budget_delta", "must be strictly between 0 and 1")
        else:
            v["privacy_budget_delta"] = float(delta)
    # A budget ε without δ is accepted here but fails the gate's privacy-budget rule:
    # (ε, δ) together are the guarantee, and an unknown fact fails its rule.
    if v.get("dp_neighbouring_relation") not in NeighbouringRelation.values:
        errors.add(
            "dp_neighbouring_relation",
            f"must be one of {', '.join(NeighbouringRelation.values)}",
        )
    if v.get("dp_required_mechanism") not in RequiredDpMechanism.values:
        errors.add(
            "dp_required_mechanism",
            f"must be empty or one of {', '.join(m for m in RequiredDpMechanism.values if m)}",
        )


def policy_content(policy: ResidencyPolicy) -> dict[str, Any]:
    """The fields a published version's ``content_hash`` covers, as plain JSON data."""
    content = {
        name: _json_value(getattr(policy, name))
        for name in POLICY_FIELDS
        if name not in POLICY_FIELDS_IF_SET or getattr(policy, name) != POLICY_DEFAULTS[name]
    }
    return {"name": policy.name, "version": policy.version, **content}


def policy_content_hash(policy: ResidencyPolicy) -> str:
    """SHA-256 hex of the RFC 8785 canonical JSON of ``policy_content``."""
    return hashlib.sha256(rfc8785.dumps(policy_content(policy))).hexdigest()


def _policy_payload(policy: ResidencyPolicy) -> dict[str, Any]:
    return {
        "policy_id": policy.pk,
        "status": policy.status,
        "content_hash": policy.content_hash,
        **policy_content(policy),
    }


def _policy_next_version(name: str) -> int:
    rows = ResidencyPolicy.objects.select_for_update().filter(name=name)
    draft = rows.filter(status=PolicyStatus.DRAFT).order_by("-version").first()
    if draft is not None:
        raise TransitionNotAllowed(
            f"policy {name} already has draft v{draft.version}; edit or publish it first"
        )
    last = rows.order_by("-version").values_list("version", flat=True).first()
    return (last or 0) + 1


def _policy_write_draft(*, actor: Actor, name: str, values: dict[str, Any], event: str, **extra):
    version = _policy_next_version(name)
    with unique_or_invalid("name", f"another version of {name} was written at the same time"):
        policy = ResidencyPolicy.objects.create(
            name=name,
            version=version,
            status=PolicyStatus.DRAFT,
            created_by=actor.user,
            created_by_name=actor.label,
            **values,
        )
    ledger_append(
        event_type=event,
        actor=actor,
        subject_type="policy",
        subject_id=policy.pk,
        payload={**_policy_payload(policy), **extra},
    )
    return policy


def policy_create_draft(*, actor: Actor, name: str, **fields: Any) -> ResidencyPolicy:
    """Start a policy (or its next version) as a draft: version = last version + 1.

    Raises ``InvalidInput`` (bad name or rule fields), ``TransitionNotAllowed`` (a draft of
    that name already exists). Ledger: ``policy.drafted``.
    """
    _unknown_fields(fields, POLICY_FIELDS)
    errors = _Errors()
    try:
        validate_slug(name or "")
    except ValidationError:
        errors.add("name", "must be letters, digits, hyphens or underscores")
    else:
        if len(name) > 64:
            errors.add("name", "must be at most 64 characters")
    errors.raise_if_any()
    with transaction.atomic(durable=True):
        values = policy_validate({**POLICY_DEFAULTS, **fields})
        return _policy_write_draft(actor=actor, name=name, values=values, event="policy.drafted")


def policy_update_draft(*, actor: Actor, policy: ResidencyPolicy, **fields: Any) -> ResidencyPolicy:
    """Edit a draft. A published version is immutable: edit means a new version.

    Raises ``InvalidInput`` (bad field, or the policy is published).
    Ledger: ``policy.draft_updated``.
    """
    _unknown_fields(fields, POLICY_FIELDS)
    with transaction.atomic(durable=True):
        policy = ResidencyPolicy.objects.select_for_update().get(pk=policy.pk)
        if policy.status != PolicyStatus.DRAFT:
            raise InvalidInput(
                {
                    "status": [
                        f"{policy.name} v{policy.version} is published and immutable; "
                        "create a new version to change it"
                    ]
                }
            )
        current = {name: getattr(policy, name) for name in POLICY_FIELDS}
        values = policy_validate({**current, **fields})
        changed = sorted(name for name in fields if values[name] != current[name])
        for name in changed:
            setattr(policy, name, values[name])
        policy.save()
        ledger_append(
            event_type="policy.draft_updated",
            actor=actor,
            subject_type="policy",
            subject_id=policy.pk,
            payload={**_policy_payload(policy), "changed": changed},
        )
    return policy


def policy_publish(*, actor: Actor, policy: ResidencyPolicy) -> ResidencyPolicy:
    """Publish a draft: it becomes immutable and gets its ``content_hash``.

    Re-validates (a site named in ``transfer_mechanisms`` must still exist).
    Raises ``TransitionNotAllowed`` (already published), ``InvalidInput``.
    Ledger: ``policy.published``.
    """
    with transaction.atomic(durable=True):
        policy = ResidencyPolicy.objects.select_for_update().get(pk=policy.pk)
        if policy.status != PolicyStatus.DRAFT:
            raise TransitionNotAllowed(f"{policy.name} v{policy.version} is already published")
        policy_validate({name: getattr(policy, name) for name in POLICY_FIELDS})
        policy.status = PolicyStatus.PUBLISHED
        policy.published_at = clock.now()
        policy.published_by = actor.user
        policy.published_by_name = actor.label
        policy.content_hash = policy_content_hash(policy)
        policy.save()
        ledger_append(
            event_type="policy.published",
            actor=actor,
            subject_type="policy",
            subject_id=policy.pk,
            payload=_policy_payload(policy),
        )
    return policy


def policy_new_version(*, actor: Actor, policy: ResidencyPolicy, **changes: Any) -> ResidencyPolicy:
    """Copy ``policy`` into draft version last + 1 with ``changes`` applied.

    Raises ``InvalidInput``, ``TransitionNotAllowed`` (a draft already exists).
    Ledger: ``policy.drafted`` (with ``based_on``).
    """
    _unknown_fields(changes, POLICY_FIELDS)
    with transaction.atomic(durable=True):
        source = ResidencyPolicy.objects.get(pk=policy.pk)
        values = policy_validate(
            {**{name: getattr(source, name) for name in POLICY_FIELDS}, **changes}
        )
        return _policy_write_draft(
            actor=actor,
            name=source.name,
            values=values,
            event="policy.drafted",
            based_on=source.pk,
        )


# --------------------------------------------------------------------------- consent


@dataclass(frozen=True)
class ConsentBatchResult:
    """What one consent upload did: counts, and the digest the ledger event carries."""

    batch_id: str
    dataset_id: int
    events: int
    granted: int
    withdrawn: int
    consents_created: int
    consents_updated: int
    digest: str
    ledger_seq: int


@dataclass
class _ConsentState:
    granted_at: dt.datetime
    expires_at: dt.datetime | None
    withdrawn_at: dt.datetime | None
    row: Consent | None  # None until written: created in this batch


@dataclass(frozen=True)
class _Row:
    index: int
    subject: str
    purpose: str
    kind: str
    occurred_at: dt.datetime
    expires_at: dt.datetime | None


def _parse_consent_rows(
    events: list[dict], purposes: dict[str, Purpose], now: dt.datetime
) -> tuple[list[_Row], dict[str, dict[str, list[str]]]]:
    rows: list[_Row] = []
    bad: dict[str, dict[str, list[str]]] = {}
    seen: dict[tuple, int] = {}
    fields = {"subject_pseudonym", "purpose", "kind", "occurred_at", "expires_at"}
    for index, event in enumerate(events):
        problems: dict[str, list[str]] = {}

        def fail(field: str, reason: str, problems=problems) -> None:
            problems.setdefault(field, []).append(reason)

        if not isinstance(event, dict):
            bad[str(index)] = {"non_field_errors": ["must be an object with the event's fields"]}
            continue
        for extra in sorted(set(event) - fields):
            fail(extra, "unknown field")
        subject = event.get("subject_pseudonym")
        if not isinstance(subject, str) or not subject:
            fail("subject_pseudonym", "must not be empty")
        elif not PSEUDONYM.fullmatch(subject):
            fail(
                "subject_pseudonym",
                "must be the site's pseudonym (at most 128 of A-Z a-z 0-9 . _ : + / = -), "
                "never an identity such as an e-mail address",
            )
        code = event.get("purpose")
        if code not in purposes:
            fail("purpose", f"{code!r} is not a purpose of this dataset")
        kind = event.get("kind")
        if kind not in ConsentEventKind.values:
            fail("kind", "must be grant or withdraw")
        occurred, reason = _as_aware_datetime(event.get("occurred_at"))
        if occurred is None:
            fail("occurred_at", reason)
        elif occurred > now + CLOCK_SKEW:
            fail("occurred_at", "is in the future")
        raw_expiry = event.get("expires_at")
        expires = None
        if raw_expiry not in (None, ""):
            expires, reason = _as_aware_datetime(raw_expiry)
            if expires is None:
                fail("expires_at", reason)
            elif kind == ConsentEventKind.WITHDRAW:
                fail("expires_at", "a withdrawal has no expiry")
            elif occurred is not None and expires <= occurred:
                fail("expires_at", "must be after occurred_at (the consent was granted then)")
        if not problems:
            key = (subject, code, kind, occurred)
            if key in seen:
                fail("non_field_errors", f"repeats row {seen[key]}")
            seen[key] = index
        if problems:
            bad[str(index)] = problems
        else:
            rows.append(_Row(index, subject, code, kind, occurred, expires))
    return rows, bad


def _batch_digest(rows: list[_Row]) -> str:
    canonical = [
        {
            "subject_pseudonym": r.subject,
            "purpose": r.purpose,
            "kind": r.kind,
            "occurred_at": r.occurred_at.isoformat(),
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
        }
        for r in rows
    ]
    return hashlib.sha256(rfc8785.dumps(canonical)).hexdigest()


def _refuse_rows(bad: dict[str, dict[str, list[str]]], total: int) -> None:
    shown = dict(list(bad.items())[:MAX_REPORTED_ROW_ERRORS])
    first = next(iter(bad))
    field = next(iter(bad[first]))
    raise InvalidInput(
        {
            "events": shown,
            "non_field_errors": [
                f"{len(bad)} of {total} rows refused (first: row {first}, {field}); "
                "nothing was recorded"
            ],
        }
    )


def consent_record_batch(
    *, actor: Actor, dataset: Dataset, events: list[dict]
) -> ConsentBatchResult:
    """Record a site's consent grants and withdrawals, all or nothing.

    Each event: ``subject_pseudonym``, ``purpose`` (code), ``kind`` (grant|withdraw),
    ``occurred_at`` and optional ``expires_at`` (aware datetimes or ISO 8601 with an
    offset). Events apply in ``occurred_at`` order. A withdrawal is a ``ConsentEvent``
    and sets ``Consent.withdrawn_at``; nothing is ever deleted. Withdrawals are accepted
    even for a suspended site or a withdrawn dataset (Art. 7(3): withdrawing must stay
    possible); grants to a withdrawn dataset are refused.

    Raises ``InvalidInput`` naming each bad row (``{"events": {"<index>": {field:
    [reason]}}}``): unknown purpose, bad dates, expiry before grant, withdrawing a
    consent that does not exist or is already withdrawn, an event older than the
    subject's last recorded one. Ledger: ``consent.batch_recorded`` with the batch id,
    counts and the SHA-256 of the canonical batch (never the pseudonyms).
    """
    if not isinstance(events, list | tuple) or not events:
        raise InvalidInput({"events": ["must be a non-empty list of consent events"]})
    if len(events) > MAX_CONSENT_BATCH:
        raise InvalidInput({"events": [f"at most {MAX_CONSENT_BATCH} events per upload"]})
    now = clock.now()
    batch_id = uuid.uuid4().hex
    with transaction.atomic(durable=True):
        # Locks the dataset: two uploads for one dataset apply one after the other.
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        purposes = {p.code: p for p in dataset.purposes.all()}
        code_of = {p.pk: code for code, p in purposes.items()}
        rows, bad = _parse_consent_rows(list(events), purposes, now)
        rows.sort(key=lambda r: (r.occurred_at, r.index))

        state: dict[tuple[str, str], _ConsentState] = {}
        subjects = sorted({r.subject for r in rows})
        for start in range(0, len(subjects), IN_CHUNK):
            chunk = subjects[start : start + IN_CHUNK]
            for consent in Consent.objects.filter(dataset=dataset, subject_pseudonym__in=chunk):
                code = code_of.get(consent.purpose_id)
                if code is None:
                    continue  # a consent for a purpose the dataset no longer lists
                state[(consent.subject_pseudonym, code)] = _ConsentState(
                    consent.granted_at, consent.expires_at, consent.withdrawn_at, consent
                )

        granted = withdrawn = 0
        for row in rows:
            key = (row.subject, row.purpose)
            current = state.get(key)
            last_change = None
            if current is not None:
                last_change = max(current.granted_at, current.withdrawn_at or current.granted_at)
            if last_change is not None and row.occurred_at < last_change:
                bad[str(row.index)] = {
                    "occurred_at": [
                        f"is before this subject's last recorded change ({last_change.isoformat()})"
                    ]
                }
                continue
            if row.kind == ConsentEventKind.GRANT:
                if dataset.withdrawn_at is not None:
                    bad[str(row.index)] = {
                        "kind": ["the dataset was withdrawn from federation; no new grants"]
                    }
                    continue
                if current is None:
                    state[key] = _ConsentState(row.occurred_at, row.expires_at, None, None)
                else:
                    current.granted_at, current.expires_at = row.occurred_at, row.expires_at
                    current.withdrawn_at = None
                granted += 1
            else:
                if current is None:
                    bad[str(row.index)] = {
                        "subject_pseudonym": [
                            f"has no consent for purpose {row.purpose!r} to withdraw"
                        ]
                    }
                    continue
                if current.withdrawn_at is not None:
                    bad[str(row.index)] = {
                        "kind": [f"consent already withdrawn at {current.withdrawn_at.isoformat()}"]
                    }
                    continue
                current.withdrawn_at = row.occurred_at
                withdrawn += 1
        if bad:
            _refuse_rows(dict(sorted(bad.items(), key=lambda kv: int(kv[0]))), len(events))

        touched = {(r.subject, r.purpose) for r in rows}
        to_create: list[Consent] = []
        to_update: list[Consent] = []
        for subject, code in touched:
            s = state[(subject, code)]
            if s.row is None:
                to_create.append(
                    Consent(
                        dataset=dataset,
                        purpose=purposes[code],
                        subject_pseudonym=subject,
                        granted_at=s.granted_at,
                        expires_at=s.expires_at,
                        withdrawn_at=s.withdrawn_at,
                        updated_at=now,
                    )
                )
            else:
                s.row.granted_at, s.row.expires_at = s.granted_at, s.expires_at
                s.row.withdrawn_at, s.row.updated_at = s.withdrawn_at, now
                to_update.append(s.row)
        Consent.objects.bulk_create(to_create, batch_size=1000)
        Consent.objects.bulk_update(
            to_update,
            ["granted_at", "expires_at", "withdrawn_at", "updated_at"],
            batch_size=500,
        )
        ConsentEvent.objects.bulk_create(
            [
                ConsentEvent(
                    dataset=dataset,
                    purpose=purposes[r.purpose],
                    subject_pseudonym=r.subject,
                    kind=r.kind,
                    occurred_at=r.occurred_at,
                    expires_at=r.expires_at,
                    batch_id=batch_id,
                    recorded_by_name=actor.label,
                )
                for r in rows
            ],
            batch_size=1000,
        )
        digest = _batch_digest(rows)
        entry = ledger_append(
            event_type="consent.batch_recorded",
            actor=actor,
            subject_type="dataset",
            subject_id=dataset.pk,
            payload={
                "batch_id": batch_id,
                "dataset_id": dataset.pk,
                "site_id": dataset.site_id,
                "events": len(rows),
                "granted": granted,
                "withdrawn": withdrawn,
                "consents_created": len(to_create),
                "consents_updated": len(to_update),
                "batch_sha256": digest,
            },
        )
    return ConsentBatchResult(
        batch_id=batch_id,
        dataset_id=dataset.pk,
        events=len(rows),
        granted=granted,
        withdrawn=withdrawn,
        consents_created=len(to_create),
        consents_updated=len(to_update),
        digest=digest,
        ledger_seq=entry.seq,
    )


# ------------------------------------------------------------------ adequacy list


def adequacy_list_record(*, actor: Actor, content: str) -> AdequacyListVersion:
    """Record a new version of the adequacy list (Art. 45); it is in force from now on.

    ``content`` is the JSON text in the shape of ``sites/data/adequacy.json``. Raises
    ``InvalidInput`` (bad JSON or entry, a version already recorded or shipped).
    Ledger: ``adequacy.updated`` with the version, the text's SHA-256 and the countries.
    """
    if not isinstance(content, str):
        raise InvalidInput({"content": ["must be the JSON text of an adequacy list"]})
    try:
        parsed = parse_adequacy(content)
    except ValueError as exc:
        raise InvalidInput({"content": [str(exc)]}) from None
    with transaction.atomic(durable=True):
        known = set(AdequacyListVersion.objects.values_list("version", flat=True))
        if parsed.version in known or parsed.version == shipped_adequacy().version:
            # A version names one content forever; snapshots cite it.
            raise InvalidInput({"content": [f"version {parsed.version} is already recorded"]})
        with unique_or_invalid("content", f"version {parsed.version} is already recorded"):
            row = AdequacyListVersion.objects.create(
                version=parsed.version,
                sha256=parsed.sha256,
                content=content,
                recorded_at=clock.now(),
                recorded_by=actor.user,
                recorded_by_name=actor.label,
            )
        ledger_append(
            event_type="adequacy.updated",
            actor=actor,
            subject_type="adequacy_list",
            subject_id=row.pk,
            payload={
                "version": parsed.version,
                "sha256": parsed.sha256,
                "decisions": [
                    {"country": d.country, "scope": d.scope, "adopted_on": d.adopted_on}
                    for d in parsed.decisions
                ],
            },
        )
    return row
