"""Read-only queries of the training app; other apps get plain dataclasses from here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

from django.core.exceptions import ObjectDoesNotExist

from training.choices import RoundState
from training.gate.context import from_snapshot
from training.gate.rules import site_subjects_and_records
from training.models import GateDecision, Round, TrainingRun

# Rounds in these states never got past the gate (or never reached it), so they spent
# no privacy budget.
_NOT_SPENT = (RoundState.PLANNED, RoundState.BLOCKED, RoundState.REJECTED)


@dataclass(frozen=True)
class PolicyRow:
    """The policy version a run is bound to, as the gate reads it."""

    id: int
    name: str
    version: int
    status: str
    content_hash: str
    allowed_areas: tuple[str, ...]
    transfer_mechanisms: dict[str, str]
    model_updates_personal_data: bool
    aggregator_operator: dict[str, str]
    host_operator: dict[str, str]
    transfer_safeguards: list[dict]
    recipient_certifications: list[dict]
    dpf_listing_max_age_days: int
    min_eligible_sites: int
    min_records_per_site: int
    requires_dpia: bool
    privacy_budget_epsilon: float | None
    privacy_budget_delta: float | None = None
    dp_neighbouring_relation: str = "add-or-remove-one"
    dp_required_mechanism: str = ""


@dataclass(frozen=True)
class DpiaRow:
    reference: str
    status: str
    valid_until: date | None


@dataclass(frozen=True)
class RunGateRow:
    """A run with its purpose, policy and DPIA, read in one query."""

    id: int
    name: str
    purpose_id: int
    purpose_code: str
    aggregator_country: str
    num_rounds: int
    policy: PolicyRow
    dpia: DpiaRow | None
    dp_mechanism: str = "none"
    dp_clipping_norm: float | None = None
    dp_noise_multiplier: float | None = None


def run_for_gate(*, run_id: int) -> RunGateRow:
    """Raises ``TrainingRun.DoesNotExist``."""
    run = TrainingRun.objects.select_related("purpose", "policy", "dpia").get(pk=run_id)
    policy = run.policy
    try:
        dpia = run.dpia
    except ObjectDoesNotExist:
        dpia = None
    return RunGateRow(
        id=run.pk,
        name=run.name,
        purpose_id=run.purpose_id,
        purpose_code=run.purpose.code,
        aggregator_country=run.aggregator_country,
        num_rounds=run.num_rounds,
        dp_mechanism=run.dp_mechanism,
        dp_clipping_norm=run.dp_clipping_norm,
        dp_noise_multiplier=run.dp_noise_multiplier,
        policy=PolicyRow(
            id=policy.pk,
            name=policy.name,
            version=policy.version,
            status=policy.status,
            content_hash=policy.content_hash,
            allowed_areas=tuple(policy.allowed_areas or ()),
            transfer_mechanisms=dict(policy.transfer_mechanisms or {}),
            model_updates_personal_data=policy.model_updates_personal_data,
            aggregator_operator=dict(policy.aggregator_operator or {}),
            host_operator=dict(policy.host_operator or {}),
            transfer_safeguards=list(policy.transfer_safeguards or []),
            recipient_certifications=list(policy.recipient_certifications or []),
            dpf_listing_max_age_days=policy.dpf_listing_max_age_days,
            min_eligible_sites=policy.min_eligible_sites,
            min_records_per_site=policy.min_records_per_site,
            requires_dpia=policy.requires_dpia,
            privacy_budget_epsilon=policy.privacy_budget_epsilon,
            privacy_budget_delta=policy.privacy_budget_delta,
            dp_neighbouring_relation=policy.dp_neighbouring_relation,
            dp_required_mechanism=policy.dp_required_mechanism,
        ),
        dpia=(
            DpiaRow(reference=dpia.reference, status=dpia.status, valid_until=dpia.valid_until)
            if dpia is not None
            else None
        ),
    )


def run_dataset_ids(*, run_id: int) -> list[int]:
    through = TrainingRun.datasets.through.objects.filter(trainingrun_id=run_id)
    return sorted(through.values_list("dataset_id", flat=True))


def rounds_past_gate(*, run_id: int, before_round: int) -> int:
    """Earlier rounds of the run that got past the gate (they spent privacy budget)."""
    return (
        Round.objects.filter(run_id=run_id, number__lt=before_round)
        .exclude(state__in=_NOT_SPENT)
        .count()
    )


@dataclass(frozen=True)
class PastRelease:
    """One earlier round as differential privacy sees it (``privacy_history``)."""

    round_no: int
    private: bool
    noise_multiplier: float | None
    recorded: bool


def privacy_history(*, run_id: int, before_round: int) -> list[PastRelease]:
    """Earlier rounds of the run that released, or may have released, an aggregate.

    A recorded ``RoundPrivacy`` says what was applied. A round with a ticket and no
    update record yet may still release one: it is charged as its ticket planned (no
    plan: without noise). A recorded aggregate without a ``RoundPrivacy`` was released
    without noise. Recorded updates without an aggregate released nothing. Four queries.
    """
    import json

    from training.choices import UpdateKind
    from training.models import RoundPrivacy

    recorded = {
        p.round.number: p
        for p in RoundPrivacy.objects.filter(
            round__run_id=run_id, round__number__lt=before_round
        ).select_related("round")
    }
    history = [
        PastRelease(n, p.private, p.noise_multiplier, True) for n, p in sorted(recorded.items())
    ]
    others = (
        Round.objects.filter(run_id=run_id, number__lt=before_round, tickets__isnull=False)
        .exclude(number__in=list(recorded))
        .distinct()
        .prefetch_related("tickets", "updates")
    )
    for round_ in others:
        kinds = {u.kind for u in round_.updates.all()}
        if UpdateKind.AGGREGATE in kinds:
            history.append(PastRelease(round_.number, False, None, True))
        elif not kinds:
            ticket = max(round_.tickets.all(), key=lambda t: (t.issued_at, t.pk))
            dp = json.loads(ticket.body).get("dp")
            z = float(dp["noise_multiplier"]) if dp else None
            history.append(PastRelease(round_.number, dp is not None, z, False))
    return sorted(history, key=lambda r: r.round_no)


@dataclass(frozen=True)
class EligibilityView:
    site_id: int
    site_slug: str
    eligible: bool
    # Subjects with valid consent plus declared records of other bases, as stored; every
    # output shows the two parts below instead, each under its own name.
    eligible_records: int
    excluded_pseudonyms: tuple[str, ...]
    exclusion_digest: str
    eligible_subjects: int = 0
    declared_records: int = 0
    role: str = ""  # the site's agreement type as the gate read it


def eligible_counts(snapshot: str) -> dict[int, tuple[int, int, str]]:
    """Per site id, (subjects with valid consent, declared records of datasets under other
    lawful bases, role), as the gate read them, from a decision's canonical snapshot."""
    ctx = from_snapshot(json.loads(snapshot))
    return {site.id: (*site_subjects_and_records(site), site.role) for site in ctx.sites}


@dataclass(frozen=True)
class ResultView:
    site_id: int | None
    site_slug: str
    rule_id: str
    article: str
    ok: bool
    reason: str
    # The reason as data (training.gate.messages); ``reason`` is its English text.
    code: str = ""
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GateDecisionView:
    """A stored gate decision as plain data (for tickets, reports and the API)."""

    id: int
    round_id: int
    run_id: int
    round_no: int
    evaluated_at: datetime
    outcome: str
    reason: str
    snapshot_hash: str
    eligible_site_ids: tuple[int, ...]
    ledger_seq: int | None
    eligibilities: tuple[EligibilityView, ...]
    results: tuple[ResultView, ...]
    reason_code: str = ""
    reason_params: dict = field(default_factory=dict)


def gate_decision_latest(*, run_id: int, round_no: int) -> GateDecisionView | None:
    """The latest decision for a round, with its eligibilities and results (3 queries)."""
    decision = (
        GateDecision.objects.filter(round__run_id=run_id, round__number=round_no)
        .select_related("round")
        .order_by("-evaluated_at", "-pk")
        .first()
    )
    if decision is None:
        return None
    return gate_decision_view(decision)


def gate_decision_view(decision: GateDecision) -> GateDecisionView:
    counts = eligible_counts(decision.snapshot)
    eligibilities = tuple(
        EligibilityView(
            site_id=e.site_id,
            site_slug=e.site.slug,
            eligible=e.eligible,
            eligible_records=e.eligible_records,
            excluded_pseudonyms=tuple(e.excluded_pseudonyms),
            exclusion_digest=e.exclusion_digest,
            eligible_subjects=counts.get(e.site_id, (0, 0, ""))[0],
            declared_records=counts.get(e.site_id, (0, 0, ""))[1],
            role=counts.get(e.site_id, (0, 0, ""))[2],
        )
        for e in decision.eligibilities.select_related("site").order_by("site__slug")
    )
    results = tuple(
        ResultView(
            site_id=r.site_id,
            site_slug=r.site_slug,
            rule_id=r.rule_id,
            article=r.article,
            ok=r.ok,
            reason=r.reason,
            code=r.code,
            params=r.params,
        )
        for r in decision.results.order_by("site_slug", "position")
    )
    return GateDecisionView(
        id=decision.pk,
        round_id=decision.round_id,
        run_id=decision.round.run_id,
        round_no=decision.round.number,
        evaluated_at=decision.evaluated_at,
        outcome=decision.outcome,
        reason=decision.reason,
        snapshot_hash=decision.snapshot_hash,
        eligible_site_ids=tuple(decision.eligible_sites),
        ledger_seq=decision.ledger_seq,
        eligibilities=eligibilities,
        results=results,
        reason_code=decision.reason_code,
        reason_params=decision.reason_params,
    )
