"""Read-only report data: a run's legal frame and, streamed, what happened in each round.

Everything here returns frozen dataclasses; the report builder in ``reports`` never
touches the ORM. Rounds come from :func:`report_rounds` as an iterator that reads them in
chunks with a fixed number of queries per chunk, so a run of 500 rounds × 50 sites never
sits in memory at once. Consent appears only as counts, never as pseudonyms.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db.models import Count, Max, Q
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit import selectors as ledger
from opennebula.selectors import workloads_of_run
from sites.choices import role_label as role_label  # re-exported: one wording for every output
from sites.models import Consent, Dataset
from training.choices import UpdateKind
from training.gate.context import from_snapshot
from training.gate.messages import render
from training.gate.rules import SiteCheck, TransferLeg, leg_message, transfer_legs
from training.models import (
    Approval,
    Dpia,
    GateDecision,
    GateResult,
    ModelUpdate,
    Round,
    RoundPrivacy,
    SiteEligibility,
    TrainingRun,
)
from training.reasons import reason_text
from training.selectors import eligible_counts

CHUNK = 25


@dataclass(frozen=True)
class Period:
    """A half-open interval of time [start, end) for period reports."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Controller:
    site_slug: str
    organisation: str
    country: str
    agreement_type: str
    agreement_document_hash: str


@dataclass(frozen=True)
class DatasetLegal:
    dataset_id: int
    site_slug: str
    name: str
    lawful_basis: str
    special_category: bool
    art9_condition: str
    retention_until: date | None
    processing_countries: tuple[str, ...]
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class DpiaFacts:
    reference: str
    status: str
    document_hash: str
    approved_at: datetime | None
    valid_until: date | None


@dataclass(frozen=True)
class PolicyFacts:
    name: str
    version: int
    status: str
    content_hash: str
    published_at: datetime | None
    min_eligible_sites: int
    requires_approval: bool


@dataclass(frozen=True)
class Transfer:
    """One leg of a round as the gate checked it (Chapter V), from the latest decision's
    snapshot: what goes from which site to whom, whether it is a transfer to a third
    country, and the gate's own words on its ground.

    ``data`` and ``ground`` are the gate's English; ``reason`` is the leg's verdict as the
    gate's data (code and params), from which :func:`leg_data` and :func:`leg_ground` say
    the same in the active language."""

    site_slug: str
    site_country: str
    data: str
    importer: str
    importer_country: str
    third_country: bool
    ok: bool
    ground: str
    reason: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PrivacyRound:
    """One round's privacy record: what was applied and the accountant's cumulative ε."""

    number: int
    private: bool
    mechanism: str
    sampled_clients: int
    total_clients: int
    noise_std: float | None
    epsilon: float | None
    aggregate_hash_before_noise: str
    aggregate_hash: str


@dataclass(frozen=True)
class SiteRefusal:
    """A site whose own client mod refused a round's ticket (e.g. its ε limit)."""

    number: int
    site_id: int | None
    node_id: str
    code: str
    reason: str


@dataclass(frozen=True)
class RunPrivacy:
    """The run's differential privacy: mechanism, parameters, budget and ε per round."""

    mechanism: str
    clipping_norm: float | None
    noise_multiplier: float | None
    target_epsilon: float | None
    limit: float | None
    delta: float | None
    relation: str
    required_mechanism: str
    rounds: tuple[PrivacyRound, ...]
    refusals: tuple[SiteRefusal, ...]


@dataclass(frozen=True)
class RunHeader:
    """Cover facts and the legal frame of one run."""

    run_id: int
    name: str
    purpose_code: str
    purpose_name: str
    status: str
    aggregator_country: str
    num_rounds: int
    requested_by: str
    created_at: datetime
    controllers: tuple[Controller, ...]
    datasets: tuple[DatasetLegal, ...]
    dpia: DpiaFacts | None
    policy: PolicyFacts
    transfers: tuple[Transfer, ...]
    ledger_seqs: tuple[int, ...]
    privacy: RunPrivacy | None = None


@dataclass(frozen=True)
class RuleRow:
    site_slug: str  # empty for round-level rules
    rule_id: str
    article: str
    ok: bool
    reason: str  # English, as the gate stored it
    # The reason as data (training.gate.messages): what the PDF renders in its language.
    code: str = ""
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalRow:
    decision: str
    approver: str
    at: datetime
    expires_at: datetime
    reason: str


@dataclass(frozen=True)
class PlacementRow:
    site_slug: str
    zone_id: int
    vm_id: int | None
    host: str
    host_country: str
    cluster_country: str
    datastore_country: str
    state: str


@dataclass(frozen=True)
class SiteRecords:
    site_slug: str
    eligible: bool
    eligible_records: int  # as stored: consents and declared records added together
    excluded_subjects: int
    records_used: int
    # The stored sum kept apart, as every output shows it: people, then rows.
    eligible_subjects: int = 0
    declared_records: int = 0


@dataclass(frozen=True)
class UpdateRow:
    site_slug: str
    node_id: str
    update_hash: str
    num_examples: int
    accepted: bool
    rejection_reason: str


@dataclass(frozen=True)
class ConsentCount:
    dataset_id: int
    dataset: str
    granted: int
    withdrawn: int
    expired: int


@dataclass(frozen=True)
class RoundFacts:
    """One round as the report shows it."""

    run_id: int
    round_id: int
    number: int
    state: str
    state_reason: str  # English, as stored; rendered per language from the code below
    created_at: datetime
    gate_outcome: str  # empty when the round never reached the gate
    gate_reason: str
    gate_at: datetime | None
    snapshot_hash: str
    rules: tuple[RuleRow, ...]
    approvals: tuple[ApprovalRow, ...]
    placements: tuple[PlacementRow, ...]
    records: tuple[SiteRecords, ...]
    updates: tuple[UpdateRow, ...]
    aggregate_hash: str
    accuracy: float | None
    consent: tuple[ConsentCount, ...]
    ledger_seqs: tuple[int, ...]
    gate_reason_code: str = ""
    gate_reason_params: dict = field(default_factory=dict)
    state_reason_code: str = ""
    state_reason_params: dict = field(default_factory=dict)

    @property
    def eligible_sites(self) -> int:
        return sum(1 for r in self.records if r.eligible)

    @property
    def excluded_subjects(self) -> int:
        return sum(r.excluded_subjects for r in self.records)


def report_run_ids(*, run_id: int | None = None, period: Period | None = None) -> list[int]:
    """The runs a report covers: the one named, or every run with a round in the period.

    Raises ``LookupError`` when the run does not exist.
    """
    if run_id is not None:
        if not TrainingRun.objects.filter(pk=run_id).exists():
            # English, not lazy: only the build reaches this, and it stores the text on the
            # report's row, which stays language-neutral (the API's refusal is run_ref's).
            raise LookupError(f"training run {run_id} does not exist")
        return [run_id]
    rounds = Round.objects.all()
    if period is not None:
        rounds = rounds.filter(created_at__gte=period.start, created_at__lt=period.end)
    return sorted(set(rounds.values_list("run_id", flat=True)))


def gate_transfers(*, run_id: int) -> tuple[Transfer, ...]:
    """Every transfer leg of the run's latest gate decision, as the gate read it.

    The legs and their verdicts come from the decision's snapshot through the gate's own
    functions (``transfer_legs``, ``leg_verdict``), so a report says what the gate decided,
    never what a later edit of the policy would say. No decision yet: no legs.
    """
    decision = GateDecision.objects.filter(round__run_id=run_id).order_by("-evaluated_at", "-pk")
    latest = decision.values_list("snapshot", flat=True).first()
    if latest is None:
        return ()
    ctx = from_snapshot(json.loads(latest))
    eea = ctx.region("EEA")
    rows = []
    for site in ctx.sites:
        check = SiteCheck(gate=ctx, site=site)
        for leg in transfer_legs(check):
            ok, message = leg_message(ctx, site, leg)
            text = render(message)
            importer = leg.importer
            third = (
                leg.personal
                and importer is not None
                and importer.organisation != leg.exporter.organisation
                and importer.country not in eea
            )
            rows.append(
                Transfer(
                    site_slug=site.slug,
                    site_country=site.country,
                    data=f"{leg.data} to {leg.recipient}",
                    importer=importer.organisation if importer else "not recorded",
                    importer_country=importer.country if importer else "",
                    third_country=bool(third),
                    ok=ok,
                    ground=_without_head(text, leg, message),
                    reason=message,
                )
            )
    return tuple(rows)


def _without_head(text: str, leg: TransferLeg, message: dict[str, Any]) -> str:
    """The gate's reason for a leg without its "data to recipient: exporter → importer:"
    head, which the report's columns already show. The flow is rendered from the leg's own
    message, so it reads exactly as the gate wrote it (the importer's role in words)."""
    head = f"{leg.data} to {leg.recipient}: "
    text = text.removeprefix(head)
    flow = (message.get("params") or {}).get("flow")
    if isinstance(flow, dict):
        text = text.removeprefix(f"{render(flow)}: ")
    return text


def _reason(reason: Any) -> tuple[str, dict[str, Any]]:
    return str(reason.get("code", "")), dict(reason.get("params") or {})


def leg_data(t: Transfer) -> str:
    """What goes to whom on a leg, in the active language (the gate's head of the leg)."""
    head = _reason(t.reason)[1].get("head")
    if not isinstance(head, dict):
        return t.data
    return reason_text(*_reason(head), fallback=t.data)


def leg_importer(t: Transfer) -> str:
    """The leg's importer, or that none is recorded, in the active language."""
    if _reason(t.reason)[0] == "transfer.importer_unknown":
        return gettext("not recorded")
    return t.importer


def leg_ground(reason: Any, fallback: str) -> str:
    """The gate's reason for a leg in the active language, without the head and flow the
    report's columns already show; ``fallback`` (English) when it cannot be rendered."""
    code, params = _reason(reason) if isinstance(reason, dict) else ("", {})
    text = reason_text(code, params, fallback="")
    if not text:
        return fallback
    for part in ("head", "flow"):
        value = params.get(part)
        rendered = reason_text(*_reason(value)) if isinstance(value, dict) else ""
        if rendered and text.startswith(rendered):
            # French sets a space before the colon ("tête : flux : motif").
            text = text[len(rendered) :].lstrip().removeprefix(":").lstrip()
    return text


def run_header(*, run_id: int) -> RunHeader:
    """Cover facts and legal frame of a run (a handful of queries)."""
    run = TrainingRun.objects.select_related("purpose", "policy").get(pk=run_id)
    datasets = list(
        Dataset.objects.filter(runs=run).select_related("site").order_by("site__slug", "pk")
    )
    sites = {ds.site.pk: ds.site for ds in datasets}
    policy = run.policy
    dpia = Dpia.objects.filter(run=run).first()
    seqs = [e.seq for e in ledger.events_for(subject_type="run", subject_id=run.pk)]
    if dpia is not None:
        seqs += [e.seq for e in ledger.events_for(subject_type="dpia", subject_id=dpia.pk)]
    seqs += [e.seq for e in ledger.events_for(subject_type="policy", subject_id=policy.pk)]
    return RunHeader(
        run_id=run.pk,
        name=run.name,
        purpose_code=run.purpose.code,
        purpose_name=run.purpose.name,
        status=run.status,
        aggregator_country=run.aggregator_country,
        num_rounds=run.num_rounds,
        requested_by=run.requested_by_name,
        created_at=run.created_at,
        controllers=tuple(
            Controller(
                site_slug=s.slug,
                organisation=s.organisation,
                country=s.country,
                agreement_type=s.agreement_type,
                agreement_document_hash=s.agreement_document_hash,
            )
            for s in sorted(sites.values(), key=lambda s: s.slug)
        ),
        datasets=tuple(
            DatasetLegal(
                dataset_id=ds.pk,
                site_slug=ds.site.slug,
                name=ds.name,
                lawful_basis=ds.lawful_basis,
                special_category=ds.special_category,
                art9_condition=ds.art9_condition or "",
                retention_until=ds.retention_until,
                processing_countries=tuple(ds.processing_countries or ()),
                withdrawn_at=ds.withdrawn_at,
            )
            for ds in datasets
        ),
        dpia=None
        if dpia is None
        else DpiaFacts(
            reference=dpia.reference,
            status=dpia.status,
            document_hash=dpia.document_hash,
            approved_at=dpia.approved_at,
            valid_until=dpia.valid_until,
        ),
        policy=PolicyFacts(
            name=policy.name,
            version=policy.version,
            status=policy.status,
            content_hash=policy.content_hash,
            published_at=policy.published_at,
            min_eligible_sites=policy.min_eligible_sites,
            requires_approval=policy.requires_approval,
        ),
        transfers=gate_transfers(run_id=run.pk),
        ledger_seqs=tuple(sorted(seqs)),
        privacy=run_privacy(run=run),
    )


def run_privacy(*, run: TrainingRun) -> RunPrivacy:
    """The run's DP facts: one query for the records, one per round for sites' refusals."""
    policy = run.policy
    records = RoundPrivacy.objects.filter(round__run=run).select_related("round")
    rounds = tuple(
        PrivacyRound(
            number=p.round.number,
            private=p.private,
            mechanism=p.mechanism,
            sampled_clients=p.sampled_clients,
            total_clients=p.total_clients,
            noise_std=p.noise_std,
            epsilon=p.epsilon,
            aggregate_hash_before_noise=p.aggregate_hash_before_noise,
            aggregate_hash=p.aggregate_hash,
        )
        for p in sorted(records, key=lambda p: p.round.number)
    )
    refusals = []
    for round_ in run.rounds.order_by("number"):
        for event in ledger.events_for(subject_type="round", subject_id=round_.pk):
            if event.event_type == "site.refused":
                refusals.append(
                    SiteRefusal(
                        number=round_.number,
                        site_id=event.payload.get("site_id"),
                        node_id=str(event.payload.get("node_id", "")),
                        code=str(event.payload.get("code", "")),
                        reason=str(event.payload.get("reason", "")),
                    )
                )
    return RunPrivacy(
        mechanism=run.dp_mechanism,
        clipping_norm=run.dp_clipping_norm,
        noise_multiplier=run.dp_noise_multiplier,
        target_epsilon=run.dp_target_epsilon,
        limit=policy.privacy_budget_epsilon,
        delta=policy.privacy_budget_delta,
        relation=policy.dp_neighbouring_relation,
        required_mechanism=policy.dp_required_mechanism,
        rounds=rounds,
        refusals=tuple(refusals),
    )


def report_rounds(*, run_id: int, period: Period | None = None) -> Iterator[RoundFacts]:
    """The run's rounds in order, read CHUNK at a time (about nine queries per chunk)."""
    run = TrainingRun.objects.only("pk", "purpose_id").get(pk=run_id)
    dataset_names = {
        pk: f"{slug}/{name}"
        for pk, slug, name in Dataset.objects.filter(runs=run).values_list(
            "pk", "site__slug", "name"
        )
    }
    placements = tuple(
        PlacementRow(
            site_slug=w.site_slug,
            zone_id=w.zone_id,
            vm_id=w.vm_id,
            host=w.host,
            host_country=w.host_country,
            cluster_country=w.cluster_country,
            datastore_country=w.datastore_country,
            state=w.state,
        )
        for w in sorted(workloads_of_run(run_id), key=lambda w: (w.site_slug, w.id))
    )
    rounds = Round.objects.filter(run_id=run_id).order_by("number")
    if period is not None:
        rounds = rounds.filter(created_at__gte=period.start, created_at__lt=period.end)
    last = 0
    while True:
        chunk = list(rounds.filter(number__gt=last)[:CHUNK])
        if not chunk:
            return
        last = chunk[-1].number
        yield from _chunk_facts(chunk, run.purpose_id, dataset_names, placements)


def _chunk_facts(chunk, purpose_id, dataset_names, placements) -> Iterator[RoundFacts]:
    ids = [r.pk for r in chunk]
    latest: dict[int, GateDecision] = {}
    for decision in GateDecision.objects.filter(round_id__in=ids).order_by("evaluated_at", "pk"):
        latest[decision.round_id] = decision  # the last one wins
    decision_ids = [d.pk for d in latest.values()]
    rules: dict[int, list[RuleRow]] = defaultdict(list)
    for r in GateResult.objects.filter(decision_id__in=decision_ids).order_by(
        "decision_id", "site_slug", "position"
    ):
        rules[r.decision_id].append(
            RuleRow(r.site_slug, r.rule_id, r.article, r.ok, r.reason, r.code, r.params)
        )
    eligibility: dict[int, list[tuple]] = defaultdict(list)
    for row in (
        SiteEligibility.objects.filter(decision_id__in=decision_ids)
        .order_by("site__slug")
        .values_list("decision_id", "site_id", "site__slug", "eligible", "eligible_records")
    ):
        eligibility[row[0]].append(row[1:])
    # Only counts leave this module: the report never names an excluded subject.
    excluded_counts = _excluded_counts(decision_ids)
    approvals: dict[int, list[ApprovalRow]] = defaultdict(list)
    for a in Approval.objects.filter(round_id__in=ids).order_by("created_at", "pk"):
        approvals[a.round_id].append(
            ApprovalRow(a.decision, a.approver_name, a.created_at, a.expires_at, a.reason)
        )
    updates: dict[int, list[ModelUpdate]] = defaultdict(list)
    for u in (
        ModelUpdate.objects.filter(round_id__in=ids)
        .select_related("site")
        .order_by("round_id", "kind", "site__slug", "pk")
    ):
        updates[u.round_id].append(u)
    seqs = _round_seqs(ids)
    for round_ in chunk:
        decision = latest.get(round_.pk)
        site_updates = [u for u in updates[round_.pk] if u.kind == UpdateKind.SITE]
        aggregate = next((u for u in updates[round_.pk] if u.kind == UpdateKind.AGGREGATE), None)
        used = {u.site_id: u.records_used for u in site_updates if u.accepted}
        records = ()
        if decision is not None:
            counts = eligible_counts(decision.snapshot)
            records = tuple(
                SiteRecords(
                    site_slug=slug,
                    eligible=eligible,
                    eligible_records=count,
                    excluded_subjects=excluded_counts.get((decision.pk, site_id), 0),
                    records_used=used.get(site_id, 0),
                    eligible_subjects=counts.get(site_id, (0, 0, ""))[0],
                    declared_records=counts.get(site_id, (0, 0, ""))[1],
                )
                for site_id, slug, eligible, count in eligibility[decision.pk]
            )
        at = decision.evaluated_at if decision is not None else round_.created_at
        yield RoundFacts(
            run_id=round_.run_id,
            round_id=round_.pk,
            number=round_.number,
            state=round_.state,
            state_reason=round_.state_reason,
            state_reason_code=round_.state_reason_code,
            state_reason_params=dict(round_.state_reason_params or {}),
            created_at=round_.created_at,
            gate_outcome=decision.outcome if decision else "",
            gate_reason=decision.reason if decision else "",
            gate_at=decision.evaluated_at if decision else None,
            snapshot_hash=decision.snapshot_hash if decision else "",
            rules=tuple(rules[decision.pk]) if decision else (),
            approvals=tuple(approvals[round_.pk]),
            placements=placements,
            records=records,
            updates=tuple(
                UpdateRow(
                    site_slug=u.site.slug if u.site else "",
                    node_id=u.node_id,
                    update_hash=u.update_hash,
                    num_examples=u.num_examples,
                    accepted=u.accepted,
                    rejection_reason=u.rejection_reason,
                )
                for u in site_updates
            ),
            aggregate_hash=aggregate.update_hash if aggregate else "",
            accuracy=_accuracy(site_updates),
            consent=consent_counts(dataset_names=dataset_names, purpose_id=purpose_id, at=at),
            ledger_seqs=tuple(seqs.get(round_.pk, ())),
            gate_reason_code=decision.reason_code if decision else "",
            gate_reason_params=decision.reason_params if decision else {},
        )


def _excluded_counts(decision_ids: list[int]) -> dict[tuple[int, int], int]:
    counts = {}
    for decision_id, site_id, pseudonyms in SiteEligibility.objects.filter(
        decision_id__in=decision_ids
    ).values_list("decision_id", "site_id", "excluded_pseudonyms"):
        counts[(decision_id, site_id)] = len(pseudonyms or ())
    return counts


def _round_seqs(round_ids: list[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for round_id in round_ids:
        found[round_id] = [
            e.seq for e in ledger.events_for(subject_type="round", subject_id=round_id)
        ]
    return found


def _accuracy(site_updates: list[ModelUpdate]) -> float | None:
    """The example-weighted mean of the sites' reported accuracy, if any reported it."""
    total = weight = 0.0
    for u in site_updates:
        value = (u.metrics or {}).get("accuracy")
        if u.accepted and isinstance(value, int | float) and u.num_examples > 0:
            total += float(value) * u.num_examples
            weight += u.num_examples
    return round(total / weight, 4) if weight else None


def _consent_states(at: datetime) -> tuple[Q, Q, Q]:
    """(current, withdrawn, expired) at ``at``: one reading for every count. Expiry and
    withdrawal are exclusive ends; a subject whose consent both expired and was withdrawn
    counts as withdrawn."""
    withdrawn = Q(withdrawn_at__lte=at)
    expired = Q(expires_at__lte=at) & ~withdrawn
    current = Q(granted_at__lte=at) & ~withdrawn & ~Q(expires_at__lte=at)
    return current, withdrawn, expired


def _counted(
    found: Mapping[int, Mapping[str, int]], names: Mapping[int, str]
) -> tuple[ConsentCount, ...]:
    return tuple(
        ConsentCount(
            dataset_id=pk,
            dataset=name,
            granted=found.get(pk, {}).get("granted", 0),
            withdrawn=found.get(pk, {}).get("withdrawn", 0),
            expired=found.get(pk, {}).get("expired", 0),
        )
        for pk, name in sorted(names.items(), key=lambda item: item[1])
    )


def consent_counts(
    *, dataset_names: dict[int, str], purpose_id: int, at: datetime
) -> tuple[ConsentCount, ...]:
    """Per dataset, consents granted (current), withdrawn and expired at ``at``: one query.

    A subject whose consent both expired and was withdrawn counts as withdrawn.
    """
    current, withdrawn, expired = _consent_states(at)
    rows = (
        Consent.objects.filter(dataset_id__in=list(dataset_names), purpose_id=purpose_id)
        .order_by()
        .values("dataset_id")
        .annotate(
            granted=Count("pk", filter=current),
            withdrawn=Count("pk", filter=withdrawn),
            expired=Count("pk", filter=expired),
        )
    )
    return _counted({r["dataset_id"]: r for r in rows}, dataset_names)


@dataclass(frozen=True)
class ConsentInstant:
    """The instant a round's consent is counted at: its latest gate evaluation (the moment
    consent mattered), or its creation if it was never gated."""

    round_id: int
    run_id: int
    at: datetime


def consent_instants(rounds: Iterable[tuple[int, int, datetime]]) -> dict[int, ConsentInstant]:
    """``ConsentInstant`` of each ``(round pk, run pk, created_at)``: one query."""
    rows = {pk: (run_id, created_at) for pk, run_id, created_at in rounds}
    gated = dict(
        GateDecision.objects.filter(round_id__in=list(rows))
        .order_by()
        .values("round_id")
        .annotate(at=Max("evaluated_at"))
        .values_list("round_id", "at")
    )
    return {
        pk: ConsentInstant(pk, run_id, gated.get(pk) or created_at)
        for pk, (run_id, created_at) in rows.items()
    }


# Three counts per instant in one SELECT: well below PostgreSQL's 1,664 result columns.
INSTANTS_PER_QUERY = 100


def consent_counts_at(
    instants: Iterable[ConsentInstant],
    *,
    dataset_names: Mapping[int, Mapping[int, str]],
    purposes: Mapping[int, int],
) -> dict[int, tuple[ConsentCount, ...]]:
    """Per round, ``consent_counts`` of its run's datasets in ``dataset_names[run pk]``,
    for the run's purpose ``purposes[run pk]``, at the round's ``ConsentInstant``.

    One query per run whatever its number of rounds (up to ``INSTANTS_PER_QUERY``
    distinct instants): each instant is three conditional counts over one scan of the
    run's consent rows, grouped by dataset. (Joining the consent rows to the rounds and
    grouping by round and dataset was four times slower on SQLite than a query per round;
    this is about two and a half times faster.)
    """
    by_run: dict[int, list[ConsentInstant]] = defaultdict(list)
    for instant in instants:
        by_run[instant.run_id].append(instant)
    result: dict[int, tuple[ConsentCount, ...]] = {}
    for run_id, shown in by_run.items():
        names = dataset_names.get(run_id, {})
        ats = sorted({i.at for i in shown}) if names else []
        found: dict[datetime, dict[int, dict[str, int]]] = defaultdict(dict)
        for start in range(0, len(ats), INSTANTS_PER_QUERY):
            chunk = ats[start : start + INSTANTS_PER_QUERY]
            counts: dict[str, Count] = {}
            for k, at in enumerate(chunk):
                current, withdrawn, expired = _consent_states(at)
                counts[f"granted_{k}"] = Count("pk", filter=current)
                counts[f"withdrawn_{k}"] = Count("pk", filter=withdrawn)
                counts[f"expired_{k}"] = Count("pk", filter=expired)
            rows = (
                Consent.objects.filter(dataset_id__in=list(names), purpose_id=purposes[run_id])
                .order_by()
                .values("dataset_id")
                .annotate(**counts)
            )
            for row in rows:
                for k, at in enumerate(chunk):
                    found[at][row["dataset_id"]] = {
                        kind: row[f"{kind}_{k}"] for kind in ("granted", "withdrawn", "expired")
                    }
        for instant in shown:
            result[instant.round_id] = _counted(found[instant.at], names)
    return result


@dataclass(frozen=True)
class RoundPoint:
    """The few figures per round the report's summary and charts need."""

    number: int
    state: str
    gate_outcome: str
    eligible_sites: int
    sites: int
    excluded_subjects: int
    accuracy: float | None


def round_series(*, run_id: int, period: Period | None = None) -> list[RoundPoint]:
    """Per round: outcome, eligible sites, excluded records and accuracy (five queries).

    Small enough to hold for 500 rounds; the report draws its charts from it before the
    rounds themselves stream past.
    """
    rounds = Round.objects.filter(run_id=run_id).order_by("number")
    if period is not None:
        rounds = rounds.filter(created_at__gte=period.start, created_at__lt=period.end)
    rows = list(rounds.values_list("pk", "number", "state"))
    ids = [pk for pk, _n, _s in rows]
    latest: dict[int, tuple[int, str]] = {}
    for pk, round_id, outcome in (
        GateDecision.objects.filter(round_id__in=ids)
        .order_by("evaluated_at", "pk")
        .values_list("pk", "round_id", "outcome")
    ):
        latest[round_id] = (pk, outcome)
    decision_round = {pk: round_id for round_id, (pk, _o) in latest.items()}
    eligible: dict[int, int] = defaultdict(int)
    sites: dict[int, int] = defaultdict(int)
    excluded: dict[int, int] = defaultdict(int)
    for decision_id, ok, pseudonyms in SiteEligibility.objects.filter(
        decision_id__in=list(decision_round)
    ).values_list("decision_id", "eligible", "excluded_pseudonyms"):
        round_id = decision_round[decision_id]
        sites[round_id] += 1
        eligible[round_id] += int(ok)
        excluded[round_id] += len(pseudonyms or ())
    updates: dict[int, list[ModelUpdate]] = defaultdict(list)
    for u in ModelUpdate.objects.filter(round_id__in=ids, kind=UpdateKind.SITE).only(
        "round_id", "metrics", "num_examples", "accepted"
    ):
        updates[u.round_id].append(u)
    return [
        RoundPoint(
            number=number,
            state=state,
            gate_outcome=latest.get(pk, (0, ""))[1],
            eligible_sites=eligible[pk],
            sites=sites[pk],
            excluded_subjects=excluded[pk],
            accuracy=_accuracy(updates[pk]),
        )
        for pk, number, state in rows
    ]


@dataclass(frozen=True)
class Contribution:
    """One round a dataset (or a subject) contributed to, through its site's update."""

    run_id: int
    run_name: str
    round_number: int
    dataset_id: int
    update_hash: str
    aggregate_hash: str


@dataclass(frozen=True)
class ExclusionPoint:
    """The first round, after a withdrawal, whose gate left the dataset or subject out."""

    dataset_id: int
    withdrawn_at: datetime
    run_id: int | None
    run_name: str
    round_number: int | None  # None: no round has been gated since the withdrawal


@dataclass(frozen=True)
class Lineage:
    """Art. 17 support: where a dataset's or a subject's data went, and when it stopped."""

    dataset_ids: tuple[int, ...]
    contributions: tuple[Contribution, ...]
    final_models: tuple[tuple[int, str, str], ...]  # (run id, run name, last aggregate hash)
    exclusions: tuple[ExclusionPoint, ...]


def lineage(*, dataset_id: int | None = None, subject_pseudonym: str | None = None) -> Lineage:
    """The runs, rounds, update and final model hashes a dataset or subject contributed to.

    A subject contributed to a round when its site's update was accepted and the
    pseudonym was not among that round's excluded subjects. Raises ``LookupError`` for an
    unknown dataset or pseudonym and ``ValueError`` unless exactly one is given.
    """
    if (dataset_id is None) == (subject_pseudonym is None):
        raise ValueError("give a dataset or a subject pseudonym, not both")
    if dataset_id is not None:
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            raise LookupError(
                format_lazy(_("dataset {dataset} does not exist"), dataset=dataset_id)
            )
        withdrawals = {dataset.pk: dataset.withdrawn_at}
        datasets = [dataset]
    else:
        consents = list(
            Consent.objects.filter(subject_pseudonym=subject_pseudonym).select_related("dataset")
        )
        if not consents:
            raise LookupError(_("no consent is recorded for that pseudonym"))
        datasets = list({c.dataset_id: c.dataset for c in consents}.values())
        withdrawals = {}
        for c in consents:
            stop = min((t for t in (c.withdrawn_at, c.dataset.withdrawn_at) if t), default=None)
            withdrawals[c.dataset_id] = stop
    contributions: list[Contribution] = []
    exclusions: list[ExclusionPoint] = []
    finals: dict[int, tuple[int, str, str]] = {}
    for ds in datasets:
        site_updates = (
            ModelUpdate.objects.filter(
                site_id=ds.site_id, kind=UpdateKind.SITE, accepted=True, round__run__datasets=ds
            )
            .select_related("round__run")
            .order_by("round__run_id", "round__number")
        )
        aggregates = dict(
            ModelUpdate.objects.filter(
                kind=UpdateKind.AGGREGATE, round__run__datasets=ds
            ).values_list("round_id", "update_hash")
        )
        excluded_in = (
            _excluded_rounds(ds.site_id, subject_pseudonym) if subject_pseudonym else set()
        )
        for u in site_updates:
            if u.round_id in excluded_in:
                continue
            contributions.append(
                Contribution(
                    run_id=u.round.run_id,
                    run_name=u.round.run.name,
                    round_number=u.round.number,
                    dataset_id=ds.pk,
                    update_hash=u.update_hash,
                    aggregate_hash=aggregates.get(u.round_id, ""),
                )
            )
        for run_id, name in TrainingRun.objects.filter(datasets=ds).values_list("pk", "name"):
            last = (
                ModelUpdate.objects.filter(kind=UpdateKind.AGGREGATE, round__run_id=run_id)
                .order_by("-round__number")
                .values_list("update_hash", flat=True)
                .first()
            )
            if last and any(c.run_id == run_id for c in contributions):
                finals[run_id] = (run_id, name, last)
        if withdrawals.get(ds.pk):
            exclusions.append(_first_exclusion(ds, withdrawals[ds.pk], subject_pseudonym))
    return Lineage(
        dataset_ids=tuple(d.pk for d in datasets),
        contributions=tuple(contributions),
        final_models=tuple(finals[k] for k in sorted(finals)),
        exclusions=tuple(exclusions),
    )


def _excluded_rounds(site_id: int, pseudonym: str) -> set[int]:
    rounds = set()
    for round_id, names in SiteEligibility.objects.filter(site_id=site_id).values_list(
        "decision__round_id", "excluded_pseudonyms"
    ):
        if pseudonym in (names or ()):
            rounds.add(round_id)
    return rounds


def _first_exclusion(ds: Dataset, since: datetime, pseudonym: str | None) -> ExclusionPoint:
    rows = (
        SiteEligibility.objects.filter(
            site_id=ds.site_id,
            decision__evaluated_at__gte=since,
            decision__round__run__datasets=ds,
        )
        .select_related("decision__round__run")
        .order_by("decision__evaluated_at", "pk")
    )
    for e in rows:
        left_out = not e.eligible or (pseudonym is not None and pseudonym in e.excluded_pseudonyms)
        if pseudonym is None:
            left_out = left_out or ds.withdrawn_at is not None
        if left_out:
            round_ = e.decision.round
            return ExclusionPoint(ds.pk, since, round_.run_id, round_.run.name, round_.number)
    return ExclusionPoint(ds.pk, since, None, "", None)


@dataclass(frozen=True)
class ProcessingActivity:
    """One processing activity for the Art. 30 record: a dataset used for a purpose.

    ``transfers`` lists (from country, importer and its country, ground in English, the
    gate's reason as JSON for rendering it in the record's language) for each leg a
    run's latest gate found to be a transfer to a third country (Art. 30(1)(e)): another
    organisation outside the EEA. Intra-EEA flows and a site's own servers are not listed.
    """

    site_slug: str
    organisation: str
    country: str
    contact: str
    agreement_type: str
    joint_controllers: tuple[str, ...]
    dataset: str
    purpose_code: str
    purpose_name: str
    lawful_basis: str
    art9_condition: str
    special_category: bool
    data_categories: tuple[str, ...]
    retention_until: date | None
    processing_countries: tuple[str, ...]
    runs: tuple[str, ...]
    aggregator_countries: tuple[str, ...]
    transfers: tuple[tuple[str, str, str, str], ...]
    withdrawn: bool


def processing_activities() -> list[ProcessingActivity]:
    """Every (dataset, purpose) pair with its site, runs and transfers (five queries)."""
    datasets = list(Dataset.objects.select_related("site").order_by("site__slug", "name"))
    purposes: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for dataset_id, code, name in Dataset.purposes.through.objects.values_list(
        "dataset_id", "purpose__code", "purpose__name"
    ):
        purposes[dataset_id].append((code, name))
    runs: dict[int, list[tuple[str, str, str, int]]] = defaultdict(list)
    for (
        dataset_id,
        name,
        purpose,
        country,
        run_id,
    ) in TrainingRun.datasets.through.objects.values_list(
        "dataset_id",
        "trainingrun__name",
        "trainingrun__purpose__code",
        "trainingrun__aggregator_country",
        "trainingrun_id",
    ):
        runs[dataset_id].append((name, purpose, country, run_id))
    # Art. 30(1)(e): transfers to a third country, as each run's latest gate checked them
    # (one query per run; a record of processing lists a handful of runs).
    legs = {
        run_id: gate_transfers(run_id=run_id)
        for run_id in sorted({r[3] for used in runs.values() for r in used})
    }
    joint: dict[str, set[str]] = defaultdict(set)
    for ds in datasets:
        if ds.site.agreement_type == "joint_controller":
            for code, _name in purposes[ds.pk]:
                joint[code].add(ds.site.organisation)
    activities = []
    for ds in datasets:
        site = ds.site
        for code, name in sorted(purposes[ds.pk]):
            used = [r for r in runs[ds.pk] if r[1] == code]
            transfers = sorted(
                {
                    (
                        t.site_country,
                        f"{t.importer} ({t.importer_country})",
                        t.ground,
                        json.dumps(t.reason, sort_keys=True, default=str),
                    )
                    for _run, _p, _country, run_id in used
                    for t in legs[run_id]
                    if t.site_slug == site.slug and t.third_country
                }
            )
            activities.append(
                ProcessingActivity(
                    site_slug=site.slug,
                    organisation=site.organisation,
                    country=site.country,
                    contact=site.contact_email,
                    agreement_type=site.agreement_type,
                    joint_controllers=tuple(sorted(joint[code] - {site.organisation})),
                    dataset=ds.name,
                    purpose_code=code,
                    purpose_name=name,
                    lawful_basis=ds.lawful_basis,
                    art9_condition=ds.art9_condition or "",
                    special_category=ds.special_category,
                    data_categories=tuple(ds.data_categories or ()),
                    retention_until=ds.retention_until,
                    processing_countries=tuple(ds.processing_countries or ()),
                    runs=tuple(sorted(r[0] for r in used)),
                    aggregator_countries=tuple(sorted({r[2] for r in used})),
                    transfers=tuple(transfers),
                    withdrawn=ds.withdrawn_at is not None,
                )
            )
    return activities


@dataclass(frozen=True)
class RunRef:
    """A run as a report request names it."""

    pk: int
    name: str


def run_ref(*, run_id: int) -> RunRef:
    """Raises ``LookupError`` when the run does not exist."""
    row = TrainingRun.objects.filter(pk=run_id).values_list("pk", "name").first()
    if row is None:
        raise LookupError(format_lazy(_("training run {run} does not exist"), run=run_id))
    return RunRef(*row)
