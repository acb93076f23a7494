"""Residency policies (drafts, publication, versions) and the adequacy list."""

from __future__ import annotations

import hashlib
import math
from typing import Any, cast

import rfc8785
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.updates import model_update
from fedgov.validation import (
    Errors,
    as_date,
    check_bool,
    check_choice,
    check_int,
    check_text,
    json_value,
    lazy_number,
    one_of,
    unknown_fields,
)
from sites.adequacy import parse_adequacy, shipped_adequacy
from sites.choices import (
    Art49Ground,
    CertificationScheme,
    NeighbouringRelation,
    PartyRole,
    PolicyStatus,
    RequiredDpMechanism,
    SafeguardMechanism,
    TransferMechanism,
)
from sites.models import (
    AdequacyListVersion,
    ResidencyPolicy,
    Site,
)
from sites.services._kit import (
    _check_areas,
    _check_country,
    unique_or_invalid,
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


def policy_validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check the policy's rule fields; return them normalised. Raises ``InvalidInput``."""
    errors = Errors()
    v = dict(values)
    _check_areas(errors, "allowed_areas", v.get("allowed_areas"))
    mechanisms = v.get("transfer_mechanisms")
    if not isinstance(mechanisms, dict):
        errors.add("transfer_mechanisms", _("must map site slugs to adequacy, scc or bcr"))
    elif mechanisms:
        known = set(Site.objects.filter(slug__in=list(mechanisms)).values_list("slug", flat=True))
        for slug, mechanism in mechanisms.items():
            if slug not in known:
                errors.add(
                    "transfer_mechanisms",
                    format_lazy(_("{slug!r} is not a registered site"), slug=slug),
                )
            if mechanism not in TransferMechanism.values:
                errors.add(
                    "transfer_mechanisms",
                    format_lazy(
                        _("{slug}: {mechanism!r} is not one of {allowed}"),
                        slug=slug,
                        mechanism=mechanism,
                        allowed=", ".join(TransferMechanism.values),
                    ),
                )
    check_int(errors, "min_eligible_sites", v.get("min_eligible_sites"), minimum=1)
    check_int(errors, "min_records_per_site", v.get("min_records_per_site"), minimum=0)
    check_int(errors, "approvals_required", v.get("approvals_required"), minimum=1)
    for flag in ("requires_approval", "requires_controller_dpo_approval", "requires_dpia"):
        check_bool(errors, flag, v.get(flag))
    budget = v.get("privacy_budget_epsilon")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int | float):
            errors.add("privacy_budget_epsilon", _("must be a number or empty"))
        elif not math.isfinite(budget) or budget <= 0:
            errors.add("privacy_budget_epsilon", _("must be a positive, finite number"))
        else:
            v["privacy_budget_epsilon"] = float(budget)
    check_bool(errors, "model_updates_personal_data", v.get("model_updates_personal_data"))
    for name in ("aggregator_operator", "host_operator"):
        v[name] = _checked_party(errors, name, v.get(name))
    v["transfer_safeguards"] = _checked_safeguards(errors, v.get("transfer_safeguards"))
    v["recipient_certifications"] = _checked_certifications(
        errors, v.get("recipient_certifications")
    )
    max_age = v.get("dpf_listing_max_age_days")
    check_int(errors, "dpf_listing_max_age_days", max_age, minimum=1)
    if isinstance(max_age, int) and max_age > MAX_DPF_LISTING_AGE_DAYS:
        errors.add(
            "dpf_listing_max_age_days",
            format_lazy(_("must be at most {count}"), count=lazy_number(MAX_DPF_LISTING_AGE_DAYS)),
        )
    _check_dp_policy(errors, v)
    errors.raise_if_any()
    return v


def _checked_keys(
    errors: Errors, field: str, value: Any, required: set[str], optional: set[str]
) -> bool:
    if not isinstance(value, dict):
        errors.add(field, _("must be an object"))
        return False
    missing, unknown = required - value.keys(), value.keys() - required - optional
    if missing:
        errors.add(field, format_lazy(_("missing {fields}"), fields=", ".join(sorted(missing))))
    if unknown:
        errors.add(
            field, format_lazy(_("unknown field(s) {fields}"), fields=", ".join(sorted(unknown)))
        )
    return not missing and not unknown


def _checked_party(errors: Errors, field: str, value: Any) -> dict[str, str]:
    """An operator: {organisation, country, role}, or {} for not recorded (the gate denies)."""
    if value in (None, {}):
        return {}
    if not _checked_keys(errors, field, value, {"organisation", "country", "role"}, set()):
        return {}
    check_text(errors, f"{field}.organisation", value["organisation"], max_length=200)
    _check_country(errors, f"{field}.country", value["country"])
    check_choice(errors, f"{field}.role", value["role"], PartyRole)
    organisation = value["organisation"]
    return {**value, "organisation": organisation.strip() if isinstance(organisation, str) else ""}


def _checked_safeguards(errors: Errors, value: Any) -> list[dict[str, Any]]:
    """Art. 46/47/49 grounds, at most one per (exporter site slug, importer organisation)."""
    field = "transfer_safeguards"
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        errors.add(field, _("must be a list of safeguards"))
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
            errors.add(
                where,
                format_lazy(
                    _("exporter {slug!r} is not a registered site"), slug=entry["exporter"]
                ),
            )
        check_text(errors, f"{where}.importer", entry["importer"], max_length=200)
        key = (entry["exporter"], entry["importer"])
        if key in seen:
            errors.add(
                where,
                format_lazy(
                    _("{exporter} → {importer} is listed twice"), exporter=key[0], importer=key[1]
                ),
            )
        seen.add(key)
        mechanism = entry["mechanism"]
        check_choice(errors, f"{where}.mechanism", mechanism, SafeguardMechanism)
        if mechanism == SafeguardMechanism.SCC:
            module = entry.get("scc_module")
            if isinstance(module, bool) or module not in (1, 2, 3, 4):
                errors.add(f"{where}.scc_module", _("must be the SCC module: 1, 2, 3 or 4"))
            signed = as_date(entry.get("signed_on"))
            if signed is None:
                errors.add(f"{where}.signed_on", _("must be the date the SCCs were signed"))
            else:
                entry["signed_on"] = signed.isoformat()
        if mechanism == SafeguardMechanism.BCR:
            # Art. 47(1): BCRs bind only once the competent supervisory authority approved.
            check_text(errors, f"{where}.reference", entry.get("reference"), max_length=200)
        if mechanism in (SafeguardMechanism.SCC, SafeguardMechanism.BCR):
            # EDPB Recommendations 01/2020, step 3: assess the law and practice of the
            # importer's country; the assessment's reference is the evidence.
            check_text(errors, f"{where}.tia_reference", entry.get("tia_reference"), max_length=200)
        if mechanism == SafeguardMechanism.DEROGATION:
            check_choice(errors, f"{where}.ground", entry.get("ground"), Art49Ground)
            check_text(errors, f"{where}.reason", entry.get("reason"), max_length=2000)
        result.append(entry)
    return result


def _checked_certifications(errors: Errors, value: Any) -> list[dict[str, Any]]:
    """Qualifying facts of recipients for scoped adequacy decisions (DPF, PIPEDA)."""
    field = "recipient_certifications"
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        errors.add(field, _("must be a list of certifications"))
        return []
    result: list[dict[str, Any]] = []
    required = {"organisation", "country", "scheme", "listing", "checked_on"}
    for i, raw in enumerate(value):
        where = f"{field}[{i}]"
        if not _checked_keys(errors, where, raw, required, set()):
            continue
        entry = dict(raw)
        check_text(errors, f"{where}.organisation", entry["organisation"], max_length=200)
        _check_country(errors, f"{where}.country", entry["country"])
        check_choice(errors, f"{where}.scheme", entry["scheme"], CertificationScheme)
        check_text(errors, f"{where}.listing", entry["listing"], max_length=500)
        checked = as_date(entry["checked_on"])
        if checked is None:
            errors.add(f"{where}.checked_on", _("must be the date the listing was checked"))
        else:
            entry["checked_on"] = checked.isoformat()
        result.append(entry)
    return result


def _check_dp_policy(errors, v: dict[str, Any]) -> None:
    """δ, neighbouring relation and required mechanism of the privacy budget (issue #17)."""
    delta = v.get("privacy_budget_delta")
    if delta is not None:
        if isinstance(delta, bool) or not isinstance(delta, int | float):
            errors.add("privacy_budget_delta", _("must be a number or empty"))
        elif not math.isfinite(delta) or not 0 < delta < 1:
            errors.add(
                "privacy_budget_delta",
                format_lazy(
                    _("must be strictly between {low} and {high}"),
                    low=lazy_number(0),
                    high=lazy_number(1),
                ),
            )
        else:
            v["privacy_budget_delta"] = float(delta)
    # A budget ε without δ is accepted here but fails the gate's privacy-budget rule:
    # (ε, δ) together are the guarantee, and an unknown fact fails its rule.
    if v.get("dp_neighbouring_relation") not in NeighbouringRelation.values:
        errors.add(
            "dp_neighbouring_relation",
            one_of(NeighbouringRelation.values),
        )
    if v.get("dp_required_mechanism") not in RequiredDpMechanism.values:
        errors.add(
            "dp_required_mechanism",
            format_lazy(
                _("must be empty or one of {allowed}"),
                allowed=", ".join(m for m in RequiredDpMechanism.values if m),
            ),
        )


def policy_content(policy: ResidencyPolicy) -> dict[str, Any]:
    """The fields a published version's ``content_hash`` covers, as plain JSON data."""
    content = {
        name: json_value(getattr(policy, name))
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
            format_lazy(
                _("policy {name} already has draft v{version}; edit or publish it first"),
                name=name,
                version=draft.version,
            )
        )
    last = rows.order_by("-version").values_list("version", flat=True).first()
    return (last or 0) + 1


def _policy_write_draft(*, actor: Actor, name: str, values: dict[str, Any], event: str, **extra):
    version = _policy_next_version(name)
    with unique_or_invalid(
        "name",
        format_lazy(_("another version of {name} was written at the same time"), name=name),
    ):
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
    unknown_fields(fields, POLICY_FIELDS)
    errors = Errors()
    try:
        validate_slug(name or "")
    except ValidationError:
        errors.add("name", _("must be letters, digits, hyphens or underscores"))
    else:
        if len(name) > 64:
            errors.add(
                "name", format_lazy(_("must be at most {count} characters"), count=lazy_number(64))
            )
    errors.raise_if_any()
    with transaction.atomic(durable=True):
        values = policy_validate({**POLICY_DEFAULTS, **fields})
        return _policy_write_draft(actor=actor, name=name, values=values, event="policy.drafted")


def policy_update_draft(*, actor: Actor, policy: ResidencyPolicy, **fields: Any) -> ResidencyPolicy:
    """Edit a draft. A published version is immutable: edit means a new version.

    Raises ``InvalidInput`` (bad field, or the policy is published).
    Ledger: ``policy.draft_updated``.
    """
    unknown_fields(fields, POLICY_FIELDS)
    with transaction.atomic(durable=True):
        policy = ResidencyPolicy.objects.select_for_update().get(pk=policy.pk)
        if policy.status != PolicyStatus.DRAFT:
            raise InvalidInput(
                {
                    "status": [
                        format_lazy(
                            _(
                                "{name} v{version} is published and immutable; "
                                "create a new version to change it"
                            ),
                            name=policy.name,
                            version=policy.version,
                        )
                    ]
                }
            )
        current = {name: getattr(policy, name) for name in POLICY_FIELDS}
        values = policy_validate({**current, **fields})
        changed = model_update(instance=policy, fields=fields, current=current, values=values)
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
            raise TransitionNotAllowed(
                format_lazy(
                    _("{name} v{version} is already published"),
                    name=policy.name,
                    version=policy.version,
                )
            )
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
    unknown_fields(changes, POLICY_FIELDS)
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


# ------------------------------------------------------------------ adequacy list


def adequacy_list_record(*, actor: Actor, content: str) -> AdequacyListVersion:
    """Record a new version of the adequacy list (Art. 45); it is in force from now on.

    ``content`` is the JSON text in the shape of ``sites/data/adequacy.json``. Raises
    ``InvalidInput`` (bad JSON or entry, a version already recorded or shipped).
    Ledger: ``adequacy.updated`` with the version, the text's SHA-256 and the countries.
    """
    if not isinstance(content, str):
        raise InvalidInput({"content": [_("must be the JSON text of an adequacy list")]})
    try:
        parsed = parse_adequacy(content)
    except ValueError as exc:
        # The lazy reason itself, so the form shows it in its reader's language.
        raise InvalidInput({"content": [exc.args[0]]}) from None
    recorded = format_lazy(_("version {version} is already recorded"), version=parsed.version)
    with transaction.atomic(durable=True):
        known = set(AdequacyListVersion.objects.values_list("version", flat=True))
        if parsed.version in known or parsed.version == shipped_adequacy().version:
            # A version names one content forever; snapshots cite it.
            raise InvalidInput({"content": [recorded]})
        with unique_or_invalid("content", cast(str, recorded)):  # lazy, read as str
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
