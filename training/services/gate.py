"""The GDPR round gate's write path: ``round_gate``."""

from __future__ import annotations

import hashlib
import json

from django.db import connection, transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.services import canonical_bytes, ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.faults import crash_point
from training.choices import GateOutcome, RoundState, RunStatus
from training.gate import evaluate, to_snapshot
from training.gate.builder import build_context
from training.models import GateDecision, GateResult, Round, SiteEligibility, TrainingRun

# (column, PostgreSQL type) of the rows written as one set per table. A result row names
# its reason by index ("message") into a list of distinct reasons: see _insert_results.
_RESULT_COLUMNS = (
    ("site_id", "bigint"),
    ("site_slug", "text"),
    ("position", "integer"),
    ("rule_id", "text"),
    ("article", "text"),
    ("ok", "boolean"),
    ("message", "integer"),
)
_MESSAGE_COLUMNS = ("reason", "code", "params")
_ELIGIBILITY_COLUMNS = (
    ("site_id", "bigint"),
    ("eligible", "boolean"),
    ("eligible_records", "integer"),
    ("excluded_pseudonyms", "jsonb"),
    ("exclusion_digest", "text"),
    ("allowed_count", "integer"),
    ("allowed_digest", "text"),
)


def _insert_set(
    model, decision_id: int, rows: list[dict], columns, messages: list[list] | None = None
) -> None:
    """Insert ``rows`` for one decision in ONE statement, whatever their number.

    ``bulk_create`` splits rows into batches of Django's SQLite parameter limit (999), so
    the gate's query count would grow with the federation; one JSON parameter expanded by
    the database (``json_each`` / ``jsonb_to_recordset``) keeps it fixed. Table and column
    names come from the model and the constants above, never from input; the values all
    travel as bound parameters.

    With ``messages``, each row's ``message`` column is an index into that list of
    [reason, code, params], a second JSON parameter, and the row is stored with those three
    columns instead. Rows keep their order, so their ids follow it as before.
    """
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    direct = [(c, t) for c, t in columns if not (messages is not None and c == "message")]
    names = [quote(c) for c, _ in direct]
    params: list = [decision_id, json.dumps(rows)]
    head = ""
    if connection.vendor == "postgresql":
        record = ", ".join(f"{c} {t}" for c, t in columns)
        picks = [f"r.{c}" for c, _ in direct]
        source = f"ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({record})) WITH ORDINALITY AS r"
        order = " ORDER BY r.ordinality"
        if messages is not None:
            # The cast parameter is one constant jsonb array; ``->`` indexes it per row.
            source += ", LATERAL (SELECT (%s::jsonb) -> r.message AS m) AS x"
            picks += ["x.m ->> 0", "x.m ->> 1", "x.m -> 2"]
    elif connection.vendor == "sqlite":
        picks = [
            f"json(json_extract(r.value, '$.{c}'))"
            if t == "jsonb"
            else f"json_extract(r.value, '$.{c}')"
            for c, t in direct
        ]
        source = "json_each(%s) AS r"
        order = " ORDER BY r.key"
        if messages is not None:
            # Materialised once, so SQLite parses the list once and joins by index.
            head = "WITH x AS MATERIALIZED (SELECT key, value FROM json_each(%s)) "
            source += " JOIN x ON x.key = json_extract(r.value, '$.message')"
            picks += [
                "json_extract(x.value, '$[0]')",
                "json_extract(x.value, '$[1]')",
                "json(json_extract(x.value, '$[2]'))",
            ]
    else:  # pragma: no cover - fedgov runs on SQLite and PostgreSQL only
        raise NotImplementedError(connection.vendor)
    if messages is not None:
        names += [quote(c) for c in _MESSAGE_COLUMNS]
        # Placeholders bind in the order they appear: the CTE's comes first.
        params.insert(0 if head else len(params), json.dumps(messages))
    sql = (
        f"{head}INSERT INTO {table} (decision_id, {', '.join(names)}) "  # noqa: S608
        f"SELECT %s, {', '.join(picks)} FROM {source}{order}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _insert_results(decision_id: int, verdict) -> None:
    """Insert every rule result of ``verdict`` in ONE statement, each distinct reason sent
    once.

    Most sites share most reasons, and the engine hands equal reasons out as one shared
    message (``training.gate.messages.english``), so (text, code, params object) finds the
    duplicates without serialising anything. Sending each reason once cut the statement
    from 1.8 MB to 0.77 MB at 200 sites (bench/gate.py's federation), and the insert's time
    on PostgreSQL by about 45%. The stored rows are the same: each gets its reason's text,
    code and params, in the same order.
    """
    messages: list[list] = []
    index: dict[tuple[str, str, int], int] = {}
    rows = []
    site_results = [(s.site_id, s.slug, s.results) for s in verdict.sites]
    for site_id, slug, results in (*site_results, (None, "", verdict.round_results)):
        for position, result in enumerate(results):
            key = (result.reason, result.code, id(result.params))
            n = index.get(key)
            if n is None:
                n = index[key] = len(messages)
                messages.append([result.reason, result.code, result.params])
            rows.append(
                {
                    "site_id": site_id,
                    "site_slug": slug,
                    "position": position,
                    "rule_id": result.rule_id,
                    "article": result.article,
                    "ok": result.ok,
                    "message": n,
                }
            )
    _insert_set(GateResult, decision_id, rows, _RESULT_COLUMNS, messages=messages)


def _valid_round_no(run: TrainingRun, round_no: object) -> int:
    if isinstance(round_no, bool) or not isinstance(round_no, int):
        raise InvalidInput({"round_no": [_("must be a whole number")]})
    if not 1 <= round_no <= run.num_rounds:
        raise InvalidInput(
            {
                "round_no": [
                    format_lazy(_("must be between 1 and {last} for this run"), last=run.num_rounds)
                ]
            }
        )
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
            # Lazy, like every refusal here: the API answers in its reader's language.
            raise TransitionNotAllowed(
                format_lazy(
                    _("run {run} is {status}"), run=locked_run.name, status=locked_run.status
                )
            )
        round_, _created = Round.objects.get_or_create(
            run=locked_run,
            number=round_no,
            defaults={"requested_by": actor.user, "requested_by_name": actor.label},
        )
        if round_.state != RoundState.PLANNED:
            raise TransitionNotAllowed(
                format_lazy(
                    _("round {number} of {run} is {state}; only a planned round can be gated"),
                    number=round_no,
                    run=locked_run.name,
                    state=round_.state,
                )
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
        _insert_results(decision.pk, verdict)
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
            raise TransitionNotAllowed(
                format_lazy(
                    _("round {number} of {run} changed meanwhile"),
                    number=round_no,
                    run=locked_run.name,
                )
            )
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
