"""The field validators as they were before they were split into named checks (commit
d1969cc), kept verbatim so tests/sites/test_validator_split.py can prove the split versions
refuse the same inputs with the same fields and reasons, in the same order.

Only the names changed (``old_...``); the helpers they call are the live ones.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email, validate_slug

from fedgov.validation import (
    Errors,
    as_aware_datetime,
    as_date,
    check_bool,
    check_choice,
    check_hash,
    check_int,
    check_text,
)
from sites.choices import (
    ART9_CATEGORIES,
    CRIMINAL_CATEGORY,
    AgreementType,
    Art9Condition,
    Art10Basis,
    ConsentEventKind,
    LawfulBasis,
    SiteStatus,
)
from sites.models import Dataset, Purpose, Site
from sites.services._kit import CLOCK_SKEW, CREDENTIALS_REF, PSEUDONYM, _check_areas, _check_country
from sites.services.consent import _Row
from sites.services.sites import _check_zone_operator


def old_site_validate(values: dict[str, Any], *, instance: Site | None = None) -> dict[str, Any]:
    """Check a full set of site fields; return them normalised. Raises ``InvalidInput``.

    The admin form calls this too, so a bad value shows next to its field there.
    """
    errors = Errors()
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
    check_text(errors, "organisation", v.get("organisation"), max_length=200)
    _check_country(errors, "country", v.get("country"))
    _check_country(errors, "compute_country", v.get("compute_country"))
    try:
        validate_email(v.get("contact_email") or "")
    except ValidationError:
        errors.add("contact_email", "must be an e-mail address")
    check_choice(errors, "agreement_type", v.get("agreement_type"), AgreementType)
    check_hash(errors, "agreement_document_hash", v.get("agreement_document_hash"))
    if isinstance(v.get("agreement_document_hash"), str):
        v["agreement_document_hash"] = v["agreement_document_hash"].lower()
    start = as_date(v.get("agreement_valid_from"))
    end = as_date(v.get("agreement_valid_until"))
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
    check_int(errors, "one_zone_id", v.get("one_zone_id", 0), minimum=0)
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
        check_int(errors, "one_template_id", template, minimum=0)
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


def old_dataset_validate(
    values: dict[str, Any], *, site: Site, instance: Dataset | None = None
) -> dict[str, Any]:
    """Check a full set of dataset fields; return them normalised. Raises ``InvalidInput``."""
    errors = Errors()
    v = dict(values)
    if instance is None and site.status != SiteStatus.ACTIVE:
        errors.add("site", f"site {site.slug} is {site.status}; datasets need an active site")
    name = v.get("name")
    check_text(errors, "name", name, max_length=200)
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
    check_bool(errors, "special_category", v.get("special_category"))
    special = sorted(set(v.get("data_categories") or ()) & ART9_CATEGORIES.keys())
    if special and v.get("special_category") is False:
        # Art. 9(1) decides by what the data is, not by a flag.
        errors.add(
            "special_category",
            f"must be true: {', '.join(special)} are special categories under Art. 9(1)",
        )
    art10 = v.get("art10_basis") or ""
    v["art10_basis"] = art10
    check_choice(errors, "art10_basis", art10, Art10Basis)
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
    check_choice(errors, "art9_condition", art9, Art9Condition)
    if v.get("special_category") is True and not art9:
        errors.add("art9_condition", "special-category data needs its Art. 9(2) condition recorded")
    if v.get("special_category") is False and art9:
        errors.add("art9_condition", "only special-category data carries an Art. 9(2) condition")
    check_choice(errors, "lawful_basis", v.get("lawful_basis"), LawfulBasis)
    purposes = v.get("purposes")
    if (
        not isinstance(purposes, list | tuple)
        or not purposes
        or not all(isinstance(p, Purpose) and p.pk for p in purposes)
    ):
        errors.add("purposes", "must list at least one registered purpose")
    elif len({p.pk for p in purposes}) != len(purposes):
        errors.add("purposes", "lists a purpose twice")
    retention = as_date(v.get("retention_until"))
    if retention is None:
        errors.add("retention_until", "must be a date (YYYY-MM-DD)")
    # A retention date already past is a fact a DPO must be able to record (the gate then
    # refuses the dataset); the ledger event flags it as recorded late.
    v["retention_until"] = retention
    _check_areas(errors, "processing_countries", v.get("processing_countries"))
    check_int(errors, "record_count", v.get("record_count"), minimum=0)
    errors.raise_if_any()
    return v


def old_parse_consent_rows(
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
        occurred, reason = as_aware_datetime(event.get("occurred_at"))
        if occurred is None:
            fail("occurred_at", reason)
        elif occurred > now + CLOCK_SKEW:
            fail("occurred_at", "is in the future")
        raw_expiry = event.get("expires_at")
        expires = None
        if raw_expiry not in (None, ""):
            expires, reason = as_aware_datetime(raw_expiry)
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
