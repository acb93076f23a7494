"""Datasets: registration, updates, withdrawal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

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
    check_bool,
    check_choice,
    check_int,
    check_text,
    lazy_number,
    unknown_fields,
)
from sites.choices import (
    ART9_CATEGORIES,
    CRIMINAL_CATEGORY,
    Art9Condition,
    Art10Basis,
    LawfulBasis,
    SiteStatus,
)
from sites.models import (
    Dataset,
    Purpose,
    Site,
)
from sites.services._kit import (
    _check_areas,
    sha256_text,
    unique_or_invalid,
)

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


def dataset_validate(
    values: dict[str, Any], *, site: Site, instance: Dataset | None = None
) -> dict[str, Any]:
    """Check a full set of dataset fields; return them normalised. Raises ``InvalidInput``.

    Each check below is one rule; they run in this order, so a field's reasons come in the
    order a reader meets them.
    """
    errors = Errors()
    v = dict(values)
    if instance is None and site.status != SiteStatus.ACTIVE:
        # A site is active or suspended (SiteStatus): the one other state is named whole.
        errors.add(
            "site",
            format_lazy(
                _("site {slug} is suspended; datasets need an active site"), slug=site.slug
            ),
        )
    _check_name(errors, v, site, instance)
    for check in _DATASET_CHECKS:
        check(errors, v)
    errors.raise_if_any()
    return v


def _check_name(errors: Errors, v: dict[str, Any], site: Site, instance: Dataset | None) -> None:
    """A name, unique within the site."""
    name = v.get("name")
    check_text(errors, "name", name, max_length=200)
    if not (isinstance(name, str) and name.strip()):
        return
    v["name"] = name.strip()
    clash = Dataset.objects.filter(site=site, name=v["name"])
    if instance is not None:
        clash = clash.exclude(pk=instance.pk)
    if clash.exists():
        errors.add(
            "name",
            format_lazy(
                _("site {slug} already has a dataset {name!r}"), slug=site.slug, name=v["name"]
            ),
        )


def _check_categories(errors: Errors, v: dict[str, Any]) -> None:
    """The description, the data categories and whether they are special (Art. 9(1))."""
    if not isinstance(v.get("description", ""), str):
        errors.add("description", _("must be text"))
    categories = v.get("data_categories")
    if (
        not isinstance(categories, list | tuple)
        or not categories
        or not all(isinstance(c, str) and c.strip() for c in categories)
    ):
        errors.add("data_categories", _("must be a non-empty list of category names"))
    else:
        v["data_categories"] = [c.strip() for c in categories]
    check_bool(errors, "special_category", v.get("special_category"))
    special = sorted(set(v.get("data_categories") or ()) & ART9_CATEGORIES.keys())
    if special and v.get("special_category") is False:
        # Art. 9(1) decides by what the data is, not by a flag.
        errors.add(
            "special_category",
            format_lazy(
                _("must be true: {categories} are special categories under Art. 9(1)"),
                categories=", ".join(special),
            ),
        )


def _check_art10(errors: Errors, v: dict[str, Any]) -> None:
    """Criminal-conviction data carries its Art. 10 ground and reference; other data none."""
    art10 = v.get("art10_basis") or ""
    v["art10_basis"] = art10
    check_choice(errors, "art10_basis", art10, Art10Basis)
    reference = v.get("art10_reference") or ""
    if not isinstance(reference, str) or len(reference) > 300:
        errors.add(
            "art10_reference",
            format_lazy(_("must be text of at most {count} characters"), count=lazy_number(300)),
        )
        reference = ""
    v["art10_reference"] = reference.strip()
    if CRIMINAL_CATEGORY in (v.get("data_categories") or ()):
        if not art10:
            errors.add("art10_basis", _("criminal-conviction data needs its Art. 10 ground"))
        if not v["art10_reference"]:
            errors.add("art10_reference", _("name the authority's act or the law (Art. 10)"))
    elif art10 or v["art10_reference"]:
        errors.add(
            "art10_basis",
            format_lazy(
                _("only data with {category!r} carries an Art. 10 ground"),
                category=CRIMINAL_CATEGORY,
            ),
        )


def _check_art9(errors: Errors, v: dict[str, Any]) -> None:
    """Special-category data carries its Art. 9(2) condition; other data none."""
    art9 = v.get("art9_condition") or ""
    v["art9_condition"] = art9
    check_choice(errors, "art9_condition", art9, Art9Condition)
    if v.get("special_category") is True and not art9:
        errors.add(
            "art9_condition", _("special-category data needs its Art. 9(2) condition recorded")
        )
    if v.get("special_category") is False and art9:
        errors.add("art9_condition", _("only special-category data carries an Art. 9(2) condition"))


def _check_basis_and_purposes(errors: Errors, v: dict[str, Any]) -> None:
    check_choice(errors, "lawful_basis", v.get("lawful_basis"), LawfulBasis)
    purposes = v.get("purposes")
    if (
        not isinstance(purposes, list | tuple)
        or not purposes
        or not all(isinstance(p, Purpose) and p.pk for p in purposes)
    ):
        errors.add("purposes", _("must list at least one registered purpose"))
    elif len({p.pk for p in purposes}) != len(purposes):
        errors.add("purposes", _("lists a purpose twice"))


def _check_storage(errors: Errors, v: dict[str, Any]) -> None:
    """Retention date, processing countries and record count."""
    retention = as_date(v.get("retention_until"))
    if retention is None:
        errors.add("retention_until", _("must be a date (YYYY-MM-DD)"))
    # A retention date already past is a fact a DPO must be able to record (the gate then
    # refuses the dataset); the ledger event flags it as recorded late.
    v["retention_until"] = retention
    _check_areas(errors, "processing_countries", v.get("processing_countries"))
    check_int(errors, "record_count", v.get("record_count"), minimum=0)


# The checks after the site and the name, in the order their errors are reported.
_DATASET_CHECKS: tuple[Callable[[Errors, dict[str, Any]], None], ...] = (
    _check_categories,
    _check_art10,
    _check_art9,
    _check_basis_and_purposes,
    _check_storage,
)


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
        with unique_or_invalid(
            "name", format_lazy(_("site {slug} already has this dataset name"), slug=site.slug)
        ):
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
    unknown_fields(fields, DATASET_UPDATABLE)
    with transaction.atomic(durable=True):
        dataset = Dataset.objects.select_for_update().select_related("site").get(pk=dataset.pk)
        if dataset.withdrawn_at is not None:
            raise TransitionNotAllowed(
                format_lazy(_("dataset {dataset} was withdrawn and cannot change"), dataset=dataset)
            )
        current = {name: getattr(dataset, name) for name in DATASET_UPDATABLE if name != "purposes"}
        current["purposes"] = list(dataset.purposes.order_by("code"))
        values = dataset_validate({**current, **fields}, site=dataset.site, instance=dataset)
        changed = model_update(
            instance=dataset,
            fields=fields,
            current=current,
            values=values,
            not_attributes={"purposes"},
        )
        purposes = list(values.pop("purposes"))
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
    errors = Errors()
    check_text(errors, "reason", reason, max_length=2000)
    errors.raise_if_any()
    with transaction.atomic(durable=True):
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if dataset.withdrawn_at is not None:
            raise TransitionNotAllowed(
                format_lazy(_("dataset {id} is already withdrawn"), id=dataset.pk)
            )
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
