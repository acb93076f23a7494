"""The GDPR round gate's write path: ``round_gate``."""

from __future__ import annotations

import hashlib
import json

from django.db import connection, transaction

from audit.services import canonical_bytes, ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.faults import crash_point
from training.choices import GateOutcome, RoundState, RunStatus
from training.gate import evaluate, to_snapshot
from training.gate.builder import build_context
from training.models import GateDecision, GateResult, Round, SiteEligibility, TrainingRun

# (column, PostgreSQL type) of the rows written as one set per table.
_RESULT_COLUMNS = (
    ("site_id", "bigint"),
    ("site_slug", "text"),
    ("position", "integer"),
    ("rule_id", "text"),
    ("article", "text"),
    ("ok", "boolean"),
    ("reason", "text"),
    ("code", "text"),
    ("params", "jsonb"),
)
_ELIGIBILITY_COLUMNS = (
    ("site_id", "bigint"),
    ("eligible", "boolean"),
    ("eligible_records", "integer"),
    ("excluded_pseudonyms", "jsonb"),
    ("exclusion_digest", "text"),
    ("allowed_count", "integer"),
    ("allowed_digest", "text"),
)


def _insert_set(model, decision_id: int, rows: list[dict], columns) -> None:
    """Insert ``rows`` for one decision in ONE statement, whatever their number.

    ``bulk_create`` splits rows into batches of Django's SQLite parameter limit (999), so
    the gate's query count would grow with the federation; one JSON parameter expanded by
    the database (``json_each`` / ``jsonb_to_recordset``) keeps it fixed. Table and column
    names come from the model and the constants above, never from input; the values all
    travel as bound parameters.
    """
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = ", ".join(quote(c) for c, _ in columns)
    if connection.vendor == "postgresql":
        record = ", ".join(f"{c} {t}" for c, t in columns)
        picks = ", ".join(f"r.{c}" for c, _ in columns)
        source = f"jsonb_to_recordset(%s::jsonb) AS r({record})"
    elif connection.vendor == "sqlite":
        picks = ", ".join(
            f"json(json_extract(value, '$.{c}'))"
            if t == "jsonb"
            else f"json_extract(value, '$.{c}')"
            for c, t in columns
        )
        source = "json_each(%s)"
    else:  # pragma: no cover - fedgov runs on SQLite and PostgreSQL only
        raise NotImplementedError(connection.vendor)
    sql = f"INSERT INTO {table} (decision_id, {names}) SELECT %s, {picks} FROM {source}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [decision_id, json.dumps(rows)])


def _valid_round_no(run: TrainingRun, round_no: object) -> int:
    if isinstance(round_no, bool) or not isinstance(round_no, int):
        raise InvalidInput({"round_no": ["must be a whole number"]})
    if not 1 <= round_no <= run.num_rounds:
        raise InvalidInput({"round_no": [f"must be between 1 and {run.num_rounds} for this run"]})
    return round_no


def round_gate(*, actor: Actor, run: TrainingRun, round_no: int) -> GateDecision:
    """Evaluate every GDPR rule for every site of ``run`` for round ``round_no``.

    Creates the round (planned) if it does not exist, stores the decision with one result
    per (site, rule) and per round rule, one eligibility per site with the excluded
    pseudonyms, the RFC 8785 snapshot of the inputs and its SHA-256, and moves the round
    to ``gated`` or ``blocked``.

    Raises ``InvalidInput`` (round number outside 1..num_rounds), ``TransitionNotAllowed``
    (the round is not planned, or the run is not active). Writes ledger event
    ``gate.decided``.
    """
    round_no = _valid_round_no(run, round_no)
    with transaction.atomic(durable=True):
        # The run's row lock serialises gates of one run: the privacy budget counts the
        # rounds that passed before, and two racing gates must not both spend it.
        locked_run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked_run.status != RunStatus.ACTIVE:
            raise TransitionNotAllowed(f"run {locked_run.name} is {locked_run.status}")
        round_, _ = Round.objects.get_or_create(
            run=locked_run,
            number=round_no,
            defaults={"requested_by": actor.user, "requested_by_name": actor.label},
        )
        if round_.state != RoundState.PLANNED:
            raise TransitionNotAllowed(
                f"round {round_no} of {locked_run.name} is {round_.state}; only a planned "
                "round can be gated"
            )
        at = clock.now()
        ctx, excluded = build_context(run_id=locked_run.pk, round_no=round_no, at=at)
        verdict = evaluate(ctx)
        snapshot = canonical_bytes(to_snapshot(ctx))
        snapshot_hash = hashlib.sha256(snapshot).hexdigest()

        decision = GateDecision.objects.create(
            round=round_,
            evaluated_at=at,
            outcome=verdict.outcome,
            reason=verdict.reason,
            reason_code=(verdict.reason_message or {}).get("code", ""),
            reason_params=(verdict.reason_message or {}).get("params", {}),
            snapshot=snapshot.decode("utf-8"),
            snapshot_hash=snapshot_hash,
            eligible_sites=list(verdict.eligible_site_ids),
            actor=actor.user,
            actor_name=actor.label,
        )
        result_rows = [
            {
                "site_id": site.site_id,
                "site_slug": site.slug,
                "position": position,
                "rule_id": result.rule_id,
                "article": result.article,
                "ok": result.ok,
                "reason": result.reason,
                "code": result.code,
                "params": result.params,
            }
            for site in verdict.sites
            for position, result in enumerate(site.results)
        ]
        result_rows += [
            {
                "site_id": None,
                "site_slug": "",
                "position": position,
                "rule_id": result.rule_id,
                "article": result.article,
                "ok": result.ok,
                "reason": result.reason,
                "code": result.code,
                "params": result.params,
            }
            for position, result in enumerate(verdict.round_results)
        ]
        _insert_set(GateResult, decision.pk, result_rows, _RESULT_COLUMNS)
        _insert_set(
            SiteEligibility,
            decision.pk,
            [
                {
                    "site_id": site.site_id,
                    "eligible": site.eligible,
                    "eligible_records": site.eligible_records,
                    "excluded_pseudonyms": excluded.get(site.site_id, []),
                    "exclusion_digest": site.exclusion_digest,
                    # Only an eligible site gets a list: the others train on nobody.
                    "allowed_count": site.allowed_count if site.eligible else 0,
                    "allowed_digest": site.allowed_digest if site.eligible else "",
                }
                for site in verdict.sites
            ],
            _ELIGIBILITY_COLUMNS,
        )
        allowed = verdict.outcome == GateOutcome.ALLOWED
        target = RoundState.GATED if allowed else RoundState.BLOCKED
        moved = Round.objects.filter(pk=round_.pk, state=RoundState.PLANNED).update(
            state=target,
            state_reason=verdict.reason,
            state_reason_code=(verdict.reason_message or {}).get("code", ""),
            state_reason_params=(verdict.reason_message or {}).get("params", {}),
            updated_at=at,
        )
        if moved != 1:
            raise TransitionNotAllowed(f"round {round_no} of {locked_run.name} changed meanwhile")
        entry = ledger_append(
            event_type="gate.decided",
            actor=actor,
            subject_type="round",
            subject_id=round_.pk,
            payload={
                "decision_id": decision.pk,
                "round_id": round_.pk,
                "run_id": locked_run.pk,
                "round_number": round_no,
                "outcome": verdict.outcome,
                "snapshot_hash": snapshot_hash,
                "policy_id": ctx.policy.id,
                "policy_content_hash": ctx.policy.content_hash,
                "eligible_site_ids": list(verdict.eligible_site_ids),
                "failed_rules": {
                    str(site.site_id): list(site.failed_rules)
                    for site in verdict.sites
                    if site.failed_rules
                },
                "round_failed_rules": [r.rule_id for r in verdict.round_results if not r.ok],
                "exclusion_digests": {
                    str(site.site_id): site.exclusion_digest for site in verdict.sites
                },
                "allowed_digests": {
                    str(site.site_id): site.allowed_digest
                    for site in verdict.sites
                    if site.eligible
                },
            },
        )
        decision.ledger_seq = entry.seq
        decision.save(update_fields=["ledger_seq"])
        crash_point("gate.decided")  # crash tests only: inert unless FEDGOV_CRASH_AT names it
    return decision


def decision_snapshot(decision: GateDecision) -> dict:
    """The stored snapshot as data, ready for ``training.gate.replay``."""
    return json.loads(decision.snapshot)
