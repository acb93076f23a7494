"""Read-only views for the dashboard, as plain dataclasses, each in a few bounded queries."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.utils.translation import gettext, pgettext_lazy

from audit import selectors as ledger
from audit.models import LedgerEntry, LegalHold
from dashboard.models import LedgerVerification
from fedgov import clock
from fedgov.numbers import number as reader_number
from reports.choices import ReportStatus
from reports.data import ConsentCount, consent_counts_at, consent_instants, role_label
from reports.models import Report
from sites.models import Dataset, Site
from training.choices import (
    TERMINAL_ROUND_STATES,
    ApprovalDecision,
    GateOutcome,
    RoundState,
    UpdateKind,
)
from training.models import (
    Approval,
    GateDecision,
    GateResult,
    ModelUpdate,
    Round,
    RoundPrivacy,
    SiteEligibility,
    TrainingRun,
)
from training.reasons import round_reason_text

# A page a person reads, not an export: the newest rows of each panel are enough.
TIMELINE_LIMIT = 100
COVERAGE_ROUNDS = 24
REPORTS_LIMIT = 15
# A checkpoint older than this while entries wait is flagged: beat signs one every few minutes.
CHECKPOINT_STALE_AFTER = timedelta(hours=1)


def _approval_text(decision: str, name: str) -> str:
    """An approval as the reader's language says it (the ledger keeps the code)."""
    if decision == ApprovalDecision.APPROVE:
        return gettext("approved by %(name)s") % {"name": name}
    return gettext("rejected by %(name)s") % {"name": name}


@dataclass(frozen=True)
class Filters:
    """What the DPO narrowed the dashboard to; ``end`` is exclusive."""

    site_id: int | None = None
    run_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.site_id, self.run_id, self.start, self.end))


def _runs(filters: Filters) -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.all()
    if filters.run_id is not None:
        runs = runs.filter(pk=filters.run_id)
    if filters.site_id is not None:
        runs = runs.filter(datasets__site_id=filters.site_id)
    return runs.distinct()


def _rounds(filters: Filters) -> QuerySet[Round]:
    rounds = Round.objects.filter(run__in=_runs(filters))
    if filters.start is not None:
        rounds = rounds.filter(created_at__gte=filters.start)
    if filters.end is not None:
        rounds = rounds.filter(created_at__lt=filters.end)
    return rounds


@dataclass(frozen=True)
class RunRow:
    id: int
    name: str
    purpose: str
    status: str
    status_label: str
    num_rounds: int
    rounds: int
    closed: int
    blocked: int
    in_flight: int
    last_activity: datetime | None
    # The same figures as the report and the round admin: mechanism and the accountant's
    # latest cumulative ε against the budget at δ ("unbounded" after a release without noise).
    privacy: str = "—"
    # As the report counts them, from each round's latest gate decision: a site refused in
    # every round is refused once per round, not "blocked 0"; excluded pseudonyms are
    # subjects (Art. 7(3)), never records.
    refused_site_rounds: int = 0
    excluded_subjects: int = 0
    # (site slug, role) in the words of the report and the Art. 30 record.
    site_roles: tuple[tuple[str, str], ...] = ()


def _privacy_label(run: TrainingRun, latest) -> str:
    policy = run.policy
    budget = (
        " "
        + gettext("of %(limit)s at δ=%(delta)s")
        % {
            "limit": reader_number(policy.privacy_budget_epsilon, significant=6),
            "delta": reader_number(policy.privacy_budget_delta, significant=6),
        }
        if policy.privacy_budget_epsilon is not None and policy.privacy_budget_delta is not None
        else ""
    )
    if latest is None:
        return (
            f"{run.dp_mechanism} · ε {reader_number(0)}{budget}"
            if run.dp_mechanism != "none"
            else gettext("none")
        )
    if not latest.private:
        return gettext("ε unbounded: released without noise")
    return f"{latest.mechanism} · ε {reader_number(latest.epsilon, 3)}{budget}"


def runs(filters: Filters) -> list[RunRow]:
    """Every run in scope with its rounds counted by outcome, its refusals, exclusions,
    roles and ε, in a fixed number of queries whatever the number of runs."""
    period_rounds = _rounds(filters)
    counted = (
        period_rounds.order_by()
        .values("run_id")
        .annotate(
            total=Count("pk"),
            closed=Count("pk", filter=Q(state=RoundState.CLOSED)),
            blocked=Count("pk", filter=Q(state__in=[RoundState.BLOCKED, RoundState.REJECTED])),
            ended=Count("pk", filter=Q(state__in=list(TERMINAL_ROUND_STATES))),
            last=Max("updated_at"),
        )
    )
    counts = {row["run_id"]: row for row in counted}
    rows = _runs(filters).select_related("purpose", "policy").order_by("-created_at", "-pk")
    if filters.start is not None or filters.end is not None:
        rows = rows.filter(pk__in=list(counts))
    latest = {
        p.round.run_id: p
        for p in RoundPrivacy.objects.filter(round__run__in=rows)
        .select_related("round")
        .order_by("round__number")
    }
    refused, excluded = _refusals_and_exclusions(period_rounds, site_id=filters.site_id)
    roles: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for run_id, slug, agreement in Dataset.objects.filter(runs__in=rows).values_list(
        "runs", "site__slug", "site__agreement_type"
    ):
        roles[run_id].add((slug, role_label(agreement)))
    labels = dict(TrainingRun._meta.get_field("status").choices)
    result = []
    for run in rows:
        c = counts.get(run.pk, {})
        result.append(
            RunRow(
                id=run.pk,
                name=run.name,
                purpose=run.purpose.name,
                status=run.status,
                status_label=str(labels.get(run.status, run.status)),
                num_rounds=run.num_rounds,
                rounds=c.get("total", 0),
                closed=c.get("closed", 0),
                blocked=c.get("blocked", 0),
                in_flight=c.get("total", 0) - c.get("ended", 0),
                last_activity=c.get("last"),
                privacy=_privacy_label(run, latest.get(run.pk)),
                refused_site_rounds=refused[run.pk],
                excluded_subjects=excluded[run.pk],
                site_roles=tuple(sorted(roles[run.pk])),
            )
        )
    return result


def _refusals_and_exclusions(
    rounds: QuerySet[Round], *, site_id: int | None
) -> tuple[dict[int, int], dict[int, int]]:
    """Per run: sites refused, counted per site and round, and subjects excluded, both from
    each round's latest gate decision (the same figures as ``reports.data.round_series``).

    With ``site_id`` only that site's rows count: a DPO who narrowed the dashboard to one
    site must not read the other sites' refusals and exclusions as that site's. The filter
    is one more condition on the same query, so the count of queries does not change."""
    latest: dict[int, int] = {}
    run_of: dict[int, int] = {}
    for pk, round_id, run_id in (
        GateDecision.objects.filter(round__in=rounds)
        .order_by("evaluated_at", "pk")
        .values_list("pk", "round_id", "round__run_id")
    ):
        latest[round_id] = pk
        run_of[pk] = run_id
    refused: dict[int, int] = defaultdict(int)
    excluded: dict[int, int] = defaultdict(int)
    rows = SiteEligibility.objects.filter(decision_id__in=list(latest.values()))
    if site_id is not None:
        rows = rows.filter(site_id=site_id)
    for decision_id, ok, pseudonyms in rows.values_list(
        "decision_id", "eligible", "excluded_pseudonyms"
    ):
        refused[run_of[decision_id]] += int(not ok)
        excluded[run_of[decision_id]] += len(pseudonyms or ())
    return refused, excluded


# The gate's outcome inside the timeline's sentence ("gate allowed, 2 of 3 sites
# eligible"): the choice labels are capitalised for a column or badge, and a noun's
# gender decides the ending (es "control permitido"), so each language writes it here.
OUTCOME_MID_SENTENCE = {
    GateOutcome.ALLOWED: pgettext_lazy("gate outcome, mid-sentence", "allowed"),
    GateOutcome.BLOCKED: pgettext_lazy("gate outcome, mid-sentence", "blocked"),
}


@dataclass(frozen=True)
class TimelineRow:
    round_id: int
    run_id: int
    run: str
    number: int
    state: str
    state_label: str
    state_reason: str
    gate_outcome: str
    gate_reason: str
    eligible_sites: int
    sites: int
    approvals: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    # The gate's reason as data, for rendering in the reader's language.
    gate_reason_code: str = ""
    gate_reason_params: dict | None = None
    # The round's state reason as the reader reads it (state_reason stays English, for
    # comparing with the gate's stored text).
    state_reason_text: str = ""
    # gate_outcome as it reads mid-sentence (OUTCOME_MID_SENTENCE).
    gate_outcome_word: str = ""


@dataclass(frozen=True)
class AwaitingApproval:
    """A round that waits for a person's decision (four-eyes), however it was started:
    ``federate``, the worker, or a ServerApp under ``flwr run`` asking for its ticket."""

    round_id: int
    run: str
    number: int
    state_reason: str
    since: datetime


def rounds_awaiting_approval() -> list[AwaitingApproval]:
    """Every round awaiting approval, oldest first; the dashboard's filters do not hide
    them, since a waiting round holds its ServerApp until someone decides."""
    rounds = (
        Round.objects.filter(state=RoundState.AWAITING_APPROVAL)
        .select_related("run")
        .order_by("updated_at", "pk")
    )
    return [
        AwaitingApproval(r.pk, r.run.name, r.number, round_reason_text(r), r.updated_at)
        for r in rounds
    ]


def round_timeline(filters: Filters, *, limit: int = TIMELINE_LIMIT) -> list[TimelineRow]:
    """The newest rounds in scope with their state, its reason and the latest gate outcome."""
    rounds = list(_rounds(filters).select_related("run").order_by("-created_at", "-pk")[:limit])
    ids = [r.pk for r in rounds]
    latest: dict[int, GateDecision] = {}
    for decision in GateDecision.objects.filter(round_id__in=ids).order_by("evaluated_at", "pk"):
        latest[decision.round_id] = decision
    eligible: dict[int, int] = defaultdict(int)
    sites: dict[int, int] = defaultdict(int)
    for decision_id, ok in SiteEligibility.objects.filter(
        decision_id__in=[d.pk for d in latest.values()]
    ).values_list("decision_id", "eligible"):
        sites[decision_id] += 1
        eligible[decision_id] += int(ok)
    # (the stored English wording, which state reasons quote; the reader's wording)
    approvals: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for round_id, decision, name in (
        Approval.objects.filter(round_id__in=ids)
        .order_by("created_at", "pk")
        .values_list("round_id", "decision", "approver_name")
    ):
        approvals[round_id].append((f"{decision}d by {name}", _approval_text(decision, name)))
    labels = dict(RoundState.choices)
    rows = []
    for r in rounds:
        d = latest.get(r.pk)
        rows.append(
            TimelineRow(
                round_id=r.pk,
                run_id=r.run_id,
                run=r.run.name,
                number=r.number,
                state=r.state,
                state_label=str(labels.get(r.state, r.state)),
                state_reason=r.state_reason,
                state_reason_text=round_reason_text(r),
                gate_outcome=str(GateOutcome(d.outcome).label) if d else "",
                gate_outcome_word=str(OUTCOME_MID_SENTENCE[GateOutcome(d.outcome)]) if d else "",
                gate_reason=d.reason if d else "",
                eligible_sites=eligible[d.pk] if d else 0,
                sites=sites[d.pk] if d else 0,
                # The state reason often already names the approver; say it once.
                approvals=tuple(
                    shown for stored, shown in approvals[r.pk] if stored not in r.state_reason
                ),
                created_at=r.created_at,
                updated_at=r.updated_at,
                gate_reason_code=d.reason_code if d else "",
                gate_reason_params=d.reason_params if d else None,
            )
        )
    return rows


@dataclass(frozen=True)
class FailureCell:
    site: str
    count: int
    last_reason: str
    last_code: str = ""
    last_params: dict | None = None


@dataclass(frozen=True)
class RuleFailures:
    rule_id: str
    article: str
    total: int
    cells: tuple[FailureCell | None, ...]


@dataclass(frozen=True)
class GateFailures:
    """Failed (site, rule) results as a matrix: rules down, sites across."""

    sites: tuple[str, ...]
    rules: tuple[RuleFailures, ...]
    total: int
    decisions: int

    @property
    def empty(self) -> bool:
        return self.total == 0


def gate_failures(filters: Filters) -> GateFailures:
    """Failures of every gate decision of the rounds in scope, counted by rule and site.

    Counts are aggregated in the database; the reason shown per cell is the newest one.
    Results not tied to a site (run-wide rules) appear under the column "run".
    """
    decisions = GateDecision.objects.filter(round__in=_rounds(filters))
    failed = GateResult.objects.filter(decision__in=decisions, ok=False)
    if filters.site_id is not None:
        failed = failed.filter(Q(site_id=filters.site_id) | Q(site__isnull=True))
    grouped = list(
        failed.order_by()
        .values("rule_id", "article", "site_slug")
        .annotate(n=Count("pk"), last=Max("pk"))
    )
    reasons = {
        pk: (reason, code, params)
        for pk, reason, code, params in GateResult.objects.filter(
            pk__in=[g["last"] for g in grouped]
        ).values_list("pk", "reason", "code", "params")
    }
    site_names = sorted({g["site_slug"] or "run" for g in grouped})
    column = {name: i for i, name in enumerate(site_names)}
    by_rule: dict[tuple[str, str], list[FailureCell | None]] = {}
    for g in grouped:
        cells = by_rule.setdefault((g["rule_id"], g["article"]), [None] * len(site_names))
        site = g["site_slug"] or "run"
        cells[column[site]] = FailureCell(site, g["n"], *reasons.get(g["last"], ("", "", None)))
    rules = sorted(
        (
            RuleFailures(rule, article, sum(c.count for c in cells if c), tuple(cells))
            for (rule, article), cells in by_rule.items()
        ),
        key=lambda r: (-r.total, r.rule_id),
    )
    return GateFailures(
        sites=tuple(site_names),
        rules=tuple(rules),
        total=sum(r.total for r in rules),
        decisions=decisions.count(),
    )


@dataclass(frozen=True)
class CoverageCell:
    dataset: str
    granted: int
    withdrawn: int
    expired: int

    @property
    def known(self) -> int:
        return self.granted + self.withdrawn + self.expired

    @property
    def granted_pct(self) -> int:
        return round(100 * self.granted / self.known) if self.known else 0


@dataclass(frozen=True)
class CoveragePoint:
    round_number: int
    at: datetime
    counts: tuple[CoverageCell, ...]


def _cells(counts: tuple[ConsentCount, ...]) -> tuple[CoverageCell, ...]:
    return tuple(CoverageCell(c.dataset, c.granted, c.withdrawn, c.expired) for c in counts)


@dataclass(frozen=True)
class RunCoverage:
    run_id: int
    run: str
    datasets: tuple[str, ...]
    points: tuple[CoveragePoint, ...]


def consent_coverage(filters: Filters, *, rounds: int = COVERAGE_ROUNDS) -> list[RunCoverage]:
    """Per run, consents granted, withdrawn and expired per dataset at each round's gate.

    Counts only, never a pseudonym. The instant is the round's latest gate evaluation (the
    moment consent mattered), or its creation if it was never gated. The newest ``rounds``
    rounds of each of the ten newest runs: four queries and one per run shown, whatever
    the number of rounds and datasets (a federation of 200 sites must not cost a query
    per round).
    """
    runs_ = list(_runs(filters).order_by("-created_at", "-pk")[:10])
    datasets = Dataset.objects.filter(runs__in=runs_)
    if filters.site_id is not None:
        datasets = datasets.filter(site_id=filters.site_id)
    names: dict[int, dict[int, str]] = defaultdict(dict)
    for run_id, pk, name in datasets.values_list("runs", "pk", "name"):
        names[run_id][pk] = name
    # Each run's newest ``rounds`` rounds, as (pk, run pk, created_at).
    shown: list[tuple[int, int, datetime]] = []
    numbers: dict[int, int] = {}
    taken: dict[int, int] = defaultdict(int)
    for pk, run_id, number, created_at in (
        _rounds(filters)
        .filter(run_id__in=list(names))
        .order_by("run_id", "-number")
        .values_list("pk", "run_id", "number", "created_at")
    ):
        if taken[run_id] < rounds:
            taken[run_id] += 1
            shown.append((pk, run_id, created_at))
            numbers[pk] = number
    instants = consent_instants(shown)
    counts = consent_counts_at(
        instants.values(),
        dataset_names=names,
        purposes={run.pk: run.purpose_id for run in runs_},
    )
    points: dict[int, list[CoveragePoint]] = defaultdict(list)
    for pk in sorted(instants, key=numbers.__getitem__):
        instant = instants[pk]
        points[instant.run_id].append(
            CoveragePoint(round_number=numbers[pk], at=instant.at, counts=_cells(counts[pk]))
        )
    return [
        RunCoverage(
            run_id=run.pk,
            run=run.name,
            datasets=tuple(sorted(names[run.pk].values())),
            points=tuple(points[run.pk]),
        )
        for run in runs_
        if points[run.pk]
    ]


@dataclass(frozen=True)
class SiteAccuracy:
    """One site's accuracy for one round, as the site itself reported it."""

    round_number: int
    site: str
    training: float | None  # the metrics sent with its accepted model update
    evaluation: float | None  # the metrics of its ``evaluation.recorded`` reply


@dataclass(frozen=True)
class RunAccuracy:
    run_id: int
    run: str
    rows: tuple[SiteAccuracy, ...]


def _reported(metrics: object) -> float | None:
    value = metrics.get("accuracy") if isinstance(metrics, dict) else None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else None


def reported_accuracy(filters: Filters, *, rounds: int = COVERAGE_ROUNDS) -> list[RunAccuracy]:
    """Per run and round, each site's accuracy as the site reported it: with its accepted
    update, and in its evaluation reply recorded in the ledger. Never recomputed, never
    averaged here: the figures are the sites' own (five queries, whatever the runs)."""
    runs = list(_runs(filters).order_by("-created_at", "-pk")[:10])
    # round pk -> (run pk, number): each run's latest ``rounds`` rounds.
    where: dict[int, tuple[int, int]] = {}
    taken: dict[int, int] = defaultdict(int)
    for pk, run_id, number in (
        _rounds(filters)
        .filter(run__in=runs)
        .order_by("run_id", "-number")
        .values_list("pk", "run_id", "number")
    ):
        if taken[run_id] < rounds:
            taken[run_id] += 1
            where[pk] = (run_id, number)
    updates = ModelUpdate.objects.filter(
        round_id__in=list(where), kind=UpdateKind.SITE, accepted=True
    )
    if filters.site_id is not None:
        updates = updates.filter(site_id=filters.site_id)
    cells: dict[tuple[int, int, int], dict[str, float | None]] = defaultdict(dict)
    for round_id, site_id, metrics in updates.values_list("round_id", "site_id", "metrics"):
        cells[(*where[round_id], site_id)]["training"] = _reported(metrics)
    for subject_id, payload in LedgerEntry.objects.filter(
        event_type="evaluation.recorded",
        subject_type="round",
        subject_id__in=[str(pk) for pk in where],
        redacted_at__isnull=True,
    ).values_list("subject_id", "payload"):
        body = json.loads(payload)
        if filters.site_id is not None and body.get("site_id") != filters.site_id:
            continue
        cells[(*where[int(subject_id)], body.get("site_id"))]["evaluation"] = _reported(
            body.get("metrics")
        )
    slugs = dict(Site.objects.filter(pk__in={s for *_r, s in cells}).values_list("pk", "slug"))
    result = []
    for run in runs:
        rows = tuple(
            SiteAccuracy(
                number, slugs.get(site_id, str(site_id)), c.get("training"), c.get("evaluation")
            )
            for (run_id, number, site_id), c in sorted(
                cells.items(), key=lambda item: (item[0][1], slugs.get(item[0][2], ""))
            )
            if run_id == run.pk
            and (c.get("training") is not None or c.get("evaluation") is not None)
        )
        if rows:
            result.append(RunAccuracy(run_id=run.pk, run=run.name, rows=rows))
    return result


@dataclass(frozen=True)
class VerificationRow:
    id: int
    finished_at: datetime
    ok: bool
    size: int
    checkpoints: int
    first_bad_seq: int | None
    problems: tuple[str, ...]
    requested_by: str
    seconds: float


@dataclass(frozen=True)
class LedgerHealth:
    size: int
    checkpoint_size: int | None
    checkpoint_at: datetime | None
    checkpoint_age: timedelta | None
    checkpoint_key: str
    unanchored: int
    stale: bool
    last_verification: VerificationRow | None
    verifications: tuple[VerificationRow, ...] = field(default=())
    retention_days: int = 0
    retention_min_days: int = 0
    active_holds: int = 0
    redacted: int = 0


def _verification_row(v: LedgerVerification) -> VerificationRow:
    return VerificationRow(
        id=v.pk,
        finished_at=v.finished_at,
        ok=v.ok,
        size=v.size,
        checkpoints=v.checkpoints,
        first_bad_seq=v.first_bad_seq,
        problems=tuple(v.problems or ()),
        requested_by=v.requested_by_name,
        seconds=(v.finished_at - v.started_at).total_seconds(),
    )


def ledger_health(*, history: int = 5) -> LedgerHealth:
    """Ledger size, the latest signed checkpoint and its age, recent verifications, and
    retention: its period, the legal holds suspending it and the entries it redacted."""
    size = ledger.tree_size()
    checkpoint = ledger.latest_checkpoint()
    age = clock.now() - checkpoint.created_at if checkpoint else None
    unanchored = size - (checkpoint.size if checkpoint else 0)
    recent = [_verification_row(v) for v in LedgerVerification.objects.all()[:history]]
    return LedgerHealth(
        size=size,
        checkpoint_size=checkpoint.size if checkpoint else None,
        checkpoint_at=checkpoint.created_at if checkpoint else None,
        checkpoint_age=age,
        checkpoint_key=checkpoint.key_id if checkpoint else "",
        unanchored=unanchored,
        stale=unanchored > 0 and (age is None or age > CHECKPOINT_STALE_AFTER),
        last_verification=recent[0] if recent else None,
        verifications=tuple(recent),
        retention_days=settings.FEDGOV_LEDGER_RETENTION_DAYS,
        retention_min_days=settings.FEDGOV_LEDGER_RETENTION_MIN_DAYS,
        active_holds=LegalHold.objects.filter(released_at__isnull=True).count(),
        redacted=LedgerEntry.objects.filter(redacted_at__isnull=False).count(),
    )


@dataclass(frozen=True)
class ReportRow:
    public_id: str
    admin_id: int
    scope: str
    status: str
    status_label: str
    progress: int
    created_at: datetime
    requested_by: str
    downloadable: bool
    error: str


def reports(filters: Filters, *, limit: int = REPORTS_LIMIT) -> list[ReportRow]:
    """The newest stored reports in scope (by run, and by overlap with the period)."""
    rows = Report.objects.all()
    if filters.run_id is not None:
        rows = rows.filter(run_id=filters.run_id)
    elif filters.site_id is not None:
        rows = rows.filter(Q(run__in=_runs(filters)) | Q(run__isnull=True))
    if filters.start is not None:
        rows = rows.filter(Q(created_at__gte=filters.start) | Q(period_end__gt=filters.start))
    if filters.end is not None:
        rows = rows.filter(created_at__lt=filters.end)
    labels = dict(Report._meta.get_field("status").choices)
    result = []
    for r in rows.order_by("-created_at", "-pk")[:limit]:
        if r.run_name:
            scope = gettext("run %(name)s") % {"name": r.run_name}
        else:
            scope = gettext("%(start)s to %(end)s") % {
                "start": f"{r.period_start:%Y-%m-%d}",
                "end": f"{r.period_end:%Y-%m-%d}",
            }
        result.append(
            ReportRow(
                public_id=str(r.public_id),
                admin_id=r.pk,
                scope=scope,
                status=r.status,
                status_label=str(labels.get(r.status, r.status)),
                progress=r.progress,
                created_at=r.created_at,
                requested_by=r.requested_by_name,
                downloadable=r.status == ReportStatus.DONE,
                error=r.error,
            )
        )
    return result


def filter_choices() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The sites and runs a DPO can narrow to, as (id, label) pairs."""
    sites = list(Site.objects.order_by("slug").values_list("pk", "slug"))
    runs_ = list(TrainingRun.objects.order_by("name").values_list("pk", "name"))
    return sites, runs_
