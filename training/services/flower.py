"""Flower write paths on fedgov's side: round tickets, update records, SuperNode registration.

The governed strategy (``training/flower/strategy.py``) reaches these through the REST API
in ``training/api/flower.py``; nothing here imports flwr.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import rfc8785
from django.conf import settings
from django.db import transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.keys import active_key
from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.faults import crash_point
from fedgov_flower.governance import UpdateRecord
from fedgov_flower.ticket import (
    MESSAGE_TYPES,
    Ticket,
    TicketSite,
    exclusion_digest,
    parse_unverified,
    schema_refusal,
    ticket_body,
    ticket_schema,
)
from sites import selectors as site_selectors
from sites.choices import LawfulBasis, SiteStatus
from sites.models import Site
from training.choices import ApprovalDecision, GateOutcome, RoundState, UpdateKind
from training.models import (
    GateDecision,
    ModelUpdate,
    Round,
    RoundTicket,
    SiteEligibility,
    TrainingRun,
)
from training.services import privacy as privacy_services

# A ticket is signed only once placement is verified: on OpenNebula VMs by the
# orchestrator's provisioning step, for ``manage.py flower up``'s SuperNodes by the local
# host placement (``orchestrate.round_place_on_host``). An approved round is not enough.
TICKET_STATES = frozenset({RoundState.PLACEMENT_VERIFIED, RoundState.RUNNING})
# Federated evaluation comes after training, also once the round's aggregate is recorded.
EVALUATE_TICKET_STATES = TICKET_STATES | {RoundState.AGGREGATED}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NODE_ID = re.compile(r"^[0-9]{1,20}$")


def ticket_ttl() -> timedelta:
    return timedelta(seconds=getattr(settings, "FEDGOV_TICKET_TTL_SECONDS", 900))


def latest_decision(round_: Round) -> GateDecision | None:
    return round_.gate_decisions.order_by("-evaluated_at", "-pk").first()


def round_ticket_issue(
    *, actor: Actor, round: Round, message_type: str = "train", flower_run_id: str = ""
) -> RoundTicket:
    """Sign a ticket that lets the round's eligible, registered sites train (or evaluate) it.

    The body is RFC 8785 JSON of run, round, the one message type it allows, the Flower
    run it is bound to, each allowed site (id, slug, Flower node id, exclusion digest and
    count), the facts a site's own policy checks (purpose, aggregator country, approvals),
    expiry and the gate decision's hash; the signature is
    Ed25519 by ``audit.keys.active_key()``. Eligible sites without a registered SuperNode
    are left out and named in the event. Raises ``TransitionNotAllowed`` when the round is
    not cleared to run, its latest gate decision did not allow it, or no allowed site has
    a node. Writes ledger event ``ticket.issued``.
    """
    if message_type not in MESSAGE_TYPES:
        raise InvalidInput({"message_type": [f"must be one of {', '.join(MESSAGE_TYPES)}"]})
    flower_run_id = str(flower_run_id or "")
    if flower_run_id and not _NODE_ID.match(flower_run_id):
        raise InvalidInput({"flower_run_id": ["must be a Flower run id (ASCII digits)"]})
    with transaction.atomic(durable=True):
        round_ = Round.objects.select_for_update().select_related("run").get(pk=round.pk)
        states = TICKET_STATES if message_type == "train" else EVALUATE_TICKET_STATES
        if round_.state not in states:
            raise TransitionNotAllowed(
                f"round {round_.run.name}#{round_.number} is {round_.state}; "
                "a ticket needs a round whose placement is verified"
            )
        if message_type == "evaluate":
            trained = latest_ticket(round_, "train")
            if trained is None or parse_unverified(trained.body).flower_run_id != flower_run_id:
                raise TransitionNotAllowed(
                    f"round {round_.run.name}#{round_.number} has no train ticket in Flower "
                    f"run {flower_run_id or '(none)'}: only what was trained is evaluated"
                )
        decision = latest_decision(round_)
        if decision is None or decision.outcome != GateOutcome.ALLOWED:
            raise TransitionNotAllowed(
                f"round {round_.run.name}#{round_.number}: the latest gate decision "
                "did not allow it"
            )
        eligibilities = list(
            SiteEligibility.objects.filter(decision=decision, eligible=True)
            .select_related("site")
            .order_by("site_id")
        )
        sites, without_node = [], []
        for elig in eligibilities:
            if not elig.site.flower_node_id:
                without_node.append(elig.site_id)
                continue
            sites.append(
                TicketSite(
                    site_id=elig.site_id,
                    slug=elig.site.slug,
                    node_id=elig.site.flower_node_id,
                    exclusion_digest=exclusion_digest(elig.excluded_pseudonyms),
                    excluded_count=len(elig.excluded_pseudonyms),
                    # The gate's digest, signed as it stands: the list is built when the
                    # site fetches it, and a list that no longer hashes to it is refused
                    # there (round_allowed) and by the site's client mod.
                    allowed_digest=elig.allowed_digest,
                    allowed_count=elig.allowed_count if elig.allowed_digest else 0,
                )
            )
        if not sites:
            raise TransitionNotAllowed(
                f"round {round_.run.name}#{round_.number}: no eligible site has a "
                "registered SuperNode"
            )
        dp_plan = privacy_services.ticket_dp_plan(run=round_.run, decision=decision)
        binding: dict[str, Any] = {
            "message_type": message_type,
            "flower_run_id": flower_run_id,
            "context": ticket_context(round_),
        }
        reusable = _reusable_ticket(round_, decision.snapshot_hash, sites, dp_plan, binding)
        if reusable is not None:
            # One ticket per round and site set: a repeated or concurrent request (the
            # round row is locked above) gets the same signed ticket and writes nothing.
            return reusable
        issued_at = clock.now().replace(microsecond=0)
        expires_at = issued_at + ticket_ttl()
        body = rfc8785.dumps(
            ticket_body(
                run_id=round_.run_id,
                round_no=round_.number,
                issued_at=issued_at,
                expires_at=expires_at,
                decision_hash=decision.snapshot_hash,
                sites=sites,
                dp=dp_plan,
                **binding,
            )
        )
        key = active_key()
        ticket = RoundTicket.objects.create(
            round=round_,
            body=body.decode("utf-8"),
            signature=base64.b64encode(key.sign(body)).decode("ascii"),
            key_id=key.key_id,
            issued_at=issued_at,
            expires_at=expires_at,
            message_type=message_type,
        )
        ledger_append(
            event_type="ticket.issued",
            actor=actor,
            subject_type="round",
            subject_id=round_.pk,
            payload={
                "ticket_id": ticket.pk,
                "run_id": round_.run_id,
                "round_id": round_.pk,
                "round_number": round_.number,
                "decision_id": decision.pk,
                "decision_hash": decision.snapshot_hash,
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "key_id": key.key_id,
                "site_ids": [s.site_id for s in sites],
                "node_ids": [s.node_id for s in sites],
                "sites_without_node": without_node,
                "expires_at": expires_at.isoformat(),
                "dp_plan": dp_plan,
                "message_type": message_type,
                "flower_run_id": flower_run_id,
            },
        )
        crash_point("ticket.issued")  # crash tests only: inert unless FEDGOV_CRASH_AT names it
    return ticket


def ticket_context(round_: Round) -> dict:
    """What a site's own policy checks, signed in the ticket: the run's purpose code, the
    aggregator's country and how many unexpired approvals the round carries."""
    now = clock.now()
    approvals = round_.approvals.filter(
        decision=ApprovalDecision.APPROVE, expires_at__gt=now
    ).count()
    return {
        "purpose": round_.run.purpose.code,
        "aggregator_country": round_.run.aggregator_country,
        "approvals": approvals,
    }


def latest_ticket(round_: Round, message_type: str = "train") -> RoundTicket | None:
    """The round's newest ticket for ``message_type`` messages that sites still accept.

    A ticket stored under an older schema (``fedgov_flower.ticket.schema_refusal``) is
    evidence, not a ticket: it is never handed out again nor recorded against, so the
    ticket endpoint signs a new one in its place.
    """
    tickets = round_.tickets.filter(message_type=message_type).order_by("-issued_at", "-pk")
    for ticket in tickets.iterator(chunk_size=8):
        if schema_refusal(ticket_schema(ticket.body)) is None:
            return ticket
    return None


def no_ticket_reason(round_: Round, message_type: str = "train") -> str:
    """Why ``round_`` has no ``message_type`` ticket to act on, naming an outdated one."""
    reason = f"round {round_.pk} has no {message_type} ticket"
    for body in round_.tickets.filter(message_type=message_type).values_list("body", flat=True):
        refusal = schema_refusal(ticket_schema(body))
        if refusal is not None:
            return f"{reason} sites accept: {refusal}"
    return reason


def _reusable_ticket(
    round_: Round, decision_hash: str, sites: list[TicketSite], dp_plan: Any, binding: dict
) -> RoundTicket | None:
    """The round's latest ticket, if it says exactly what a new one would (same message
    type, Flower run, sites and facts) and has at least half its lifetime left; a ticket
    near its end is renewed rather than handed out."""
    latest = latest_ticket(round_, binding["message_type"])
    if latest is None or latest.expires_at - clock.now() < ticket_ttl() / 2:
        return None
    signed = json.loads(latest.body)
    wanted = json.loads(
        rfc8785.dumps(
            ticket_body(
                run_id=round_.run_id,
                round_no=round_.number,
                issued_at=latest.issued_at,
                expires_at=latest.expires_at,
                decision_hash=decision_hash,
                sites=sites,
                dp=dp_plan,
                **binding,
            )
        )
    )
    return latest if signed == wanted else None


@dataclass(frozen=True)
class ExclusionList:
    """The subjects one site must leave out of one round, with the digest the ticket holds."""

    site_slug: str
    round_id: int
    digest: str
    pseudonyms: list[str]


def round_exclusions(*, round: Round, site: Site) -> ExclusionList:
    """The site's exclusion list from the round's latest gate decision (read only).

    Raises ``InvalidInput`` when the round has no decision or the site was not a candidate.
    """
    decision = latest_decision(round)
    if decision is None:
        raise InvalidInput({"round": ["the round has not been gated"]})
    elig = SiteEligibility.objects.filter(decision=decision, site=site).first()
    if elig is None:
        raise InvalidInput({"site": [f"site {site.slug} was not a candidate of this round"]})
    pseudonyms = sorted(elig.excluded_pseudonyms)
    return ExclusionList(
        site_slug=site.slug,
        round_id=round.pk,
        digest=exclusion_digest(pseudonyms),
        pseudonyms=pseudonyms,
    )


def round_allowed(*, round: Round, site: Site) -> ExclusionList:
    """The only subjects the site may train on in the round (its allow-list; read only).

    Raises ``InvalidInput`` when the round has no decision, the site was not a candidate,
    or the gate did not let it train (a refused site has no list, so it trains nobody).
    """
    decision = latest_decision(round)
    if decision is None:
        raise InvalidInput({"round": ["the round has not been gated"]})
    elig = SiteEligibility.objects.filter(decision=decision, site=site).first()
    if elig is None:
        raise InvalidInput({"site": [f"site {site.slug} was not a candidate of this round"]})
    if not elig.eligible or not elig.allowed_digest:
        raise InvalidInput({"site": [f"site {site.slug} has no allow-list in this round"]})
    facts = next((f for f in json.loads(decision.snapshot)["sites"] if f["id"] == site.pk), None)
    # The datasets the gate drew the list from: consent-based, neither withdrawn nor left
    # without any consenting subject (training.gate.builder).
    dataset_ids = [
        d["id"]
        for d in (facts or {}).get("datasets", ())
        if d["lawful_basis"] == LawfulBasis.CONSENT
        and d["withdrawn_at"] is None
        and not d["all_subjects_withdrawn"]
    ]
    pseudonyms = site_selectors.allowed_pseudonyms(
        dataset_ids=dataset_ids, purpose_id=round.run.purpose_id, at=decision.evaluated_at
    )
    digest = exclusion_digest(pseudonyms)
    if digest != elig.allowed_digest:
        # A consent fact recorded late changed who was allowed at the gate's instant: the
        # signed digest no longer describes the list, so the round needs a new gate.
        raise TransitionNotAllowed(
            f"the allow-list of {site.slug} no longer matches the gate's digest; "
            "consent changed since the gate, gate the round again"
        )
    return ExclusionList(
        site_slug=site.slug,
        round_id=round.pk,
        digest=digest,
        pseudonyms=pseudonyms,
    )


# One reply as the strategy reports it: the same record the strategy sends
# (fedgov_flower.governance), here built only from a report that passed validation.
UpdateReport = UpdateRecord


def _check_metrics(value: Any, where: str, errors: dict[str, list[str]]) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.setdefault(where, []).append("metrics must be an object of numbers")
        return {}
    clean: dict[str, float] = {}
    for key, number in value.items():
        ok = isinstance(number, int | float) and not isinstance(number, bool)
        if not ok or not math.isfinite(number) or len(str(key)) > 64:
            errors.setdefault(where, []).append(f"metric {key!r} is not a finite number")
            continue
        clean[str(key)] = number
    return clean


def _check_count(value: Any, name: str, where: str, errors: dict[str, list[str]]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        errors.setdefault(where, []).append(f"{name} must be a non-negative integer")
        return 0
    return value


def _check_optional_count(
    value: Any, name: str, where: str, errors: dict[str, list[str]]
) -> int | None:
    """A count the site may have left out (None); the data contract decides, not the shape."""
    if value is None:
        return None
    return _check_count(value, name, where, errors)


def _check_digest(value: Any, name: str, where: str, errors: dict[str, list[str]]) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not _HEX64.match(value):
        errors.setdefault(where, []).append(f"{name} must be 64 lowercase hex digits")
        return ""
    return value


def parse_update_reports(items: Any) -> list[UpdateReport]:
    """Validate the ``updates`` list of a report. Raises ``InvalidInput`` naming each field."""
    if not isinstance(items, list):
        raise InvalidInput({"updates": ["must be a list"]})
    errors: dict[str, list[str]] = {}
    reports, seen = [], set()
    for i, item in enumerate(items):
        where = f"updates[{i}]"
        if not isinstance(item, dict):
            errors[where] = ["must be an object"]
            continue
        node_id = str(item.get("node_id", ""))
        if not _NODE_ID.match(node_id):
            errors.setdefault(where, []).append("node_id must be a Flower node id (digits)")
        elif node_id in seen:
            errors.setdefault(where, []).append(f"node {node_id} reported twice")
        seen.add(node_id)
        digest = item.get("update_hash")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            errors.setdefault(where, []).append("update_hash must be 64 lowercase hex digits")
        reports.append(
            UpdateReport(
                node_id=node_id,
                update_hash=digest if isinstance(digest, str) else "",
                num_examples=_check_count(item.get("num_examples"), "num_examples", where, errors),
                records_used=_check_optional_count(
                    item.get("records_used"), "records_used", where, errors
                ),
                records_excluded=_check_optional_count(
                    item.get("records_excluded"), "records_excluded", where, errors
                ),
                metrics=_check_metrics(item.get("metrics"), where, errors),
                filter_digest=_check_digest(
                    item.get("filter_digest"), "filter_digest", where, errors
                ),
                subjects_digest=_check_digest(
                    item.get("subjects_digest"), "subjects_digest", where, errors
                ),
            )
        )
    if errors:
        raise InvalidInput(errors)
    return reports


def _update_record(
    *, actor: Actor, round_: Round, event_type: str, row: dict[str, Any], payload: dict[str, Any]
) -> ModelUpdate:
    """Create one ModelUpdate row of the round and append its event, naming the row."""
    update = ModelUpdate.objects.create(round=round_, **row)
    ledger_append(
        event_type=event_type,
        actor=actor,
        subject_type="round",
        subject_id=round_.pk,
        payload={"update_id": update.pk, **payload},
    )
    return update


def data_contract_violations(ticket: Ticket, updates: list[UpdateReport]) -> list[str]:
    """Why a round's report breaks the site data contract; [] when it keeps it.

    Every update from a node the ticket names must state how many records it used and
    left out, and the digest of the subject list it filtered by must be the ticket's for
    that site: the allow-list's when the site holds consent-based data, else the
    exclusion list's. A site that trained on everyone reports neither, or another digest.
    """
    problems = []
    for report in updates:
        named = ticket.site_by_node(report.node_id)
        if named is None:
            continue  # recorded as rejected: not named in the ticket
        if report.records_used is None or report.records_excluded is None:
            problems.append(
                f"node {report.node_id} ({named.slug}) reported no counts of records used "
                "and left out"
            )
            continue
        expected = named.allowed_digest or named.exclusion_digest
        if report.filter_digest != expected:
            which = "allow-list" if named.allowed_digest else "exclusion list"
            problems.append(
                f"node {report.node_id} ({named.slug}) did not filter by the ticket's {which} "
                f"(reported digest {report.filter_digest[:12] or 'none'}, ticket "
                f"{expected[:12]})"
            )
    return problems


def _ticketed(round_: Round, ticket_id: int) -> dict[str, int]:
    """The keys every event of a ticketed round's evidence carries."""
    return {
        "round_id": round_.pk,
        "run_id": round_.run_id,
        "round_number": round_.number,
        "ticket_id": ticket_id,
    }


def _contract_refused(
    *, actor: Actor, round_: Round, ticket: RoundTicket, violations: list[str]
) -> None:
    """Ledger event ``updates.refused``: fedgov did not record the round, and why."""
    with transaction.atomic(durable=True):
        ledger_append(
            event_type="updates.refused",
            actor=actor,
            subject_type="round",
            subject_id=round_.pk,
            payload={
                **_ticketed(round_, ticket.pk),
                "reasons": violations,
            },
        )


def model_updates_record(
    *,
    actor: Actor,
    round: Round,
    updates: list[UpdateReport],
    aggregate_hash: str | None,
    rejected: list[UpdateReport] | None = None,
    dp: Any = None,
    site_refusals: Any = None,
) -> list[ModelUpdate]:
    """Record each site's update hash and the round's aggregate, against the latest ticket.

    An update from a node outside the ticket is stored as not accepted and logged
    (``update.rejected``); the strategy may also report replies it refused itself in
    ``rejected``. Raises ``TransitionNotAllowed`` when the round has no ticket or already
    has records, ``InvalidInput`` for a malformed aggregate hash or a ``dp`` release that
    is not the ticket's plan. Writes ``update.recorded`` per accepted update,
    ``update.rejected`` per refused one, ``aggregate.recorded`` and, for a run under DP
    or a budget, ``privacy.accounted`` (``training.services.privacy``), and
    ``site.refused`` per site whose own mod refused the ticket (e.g. its ε limit).
    A report that breaks the data contract (``data_contract_violations``) records
    nothing, writes ``updates.refused`` with the reasons and raises ``InvalidInput``.
    """
    if aggregate_hash is not None and not _HEX64.match(aggregate_hash):
        raise InvalidInput({"aggregate_hash": ["must be 64 lowercase hex digits"]})
    signed = latest_ticket(round)
    if signed is not None:
        violations = data_contract_violations(parse_unverified(signed.body), updates)
        if violations:
            _contract_refused(actor=actor, round_=round, ticket=signed, violations=violations)
            raise InvalidInput({"updates": violations})
    with transaction.atomic(durable=True):
        round_ = Round.objects.select_for_update().select_related("run").get(pk=round.pk)
        ticket = latest_ticket(round_)
        if ticket is None:
            raise TransitionNotAllowed(f"{no_ticket_reason(round_)}; nothing may be recorded")
        if round_.updates.filter(accepted=True).exists():
            raise TransitionNotAllowed(f"round {round_.pk} already has its updates recorded")
        allowed = parse_unverified(ticket.body)
        if data_contract_violations(allowed, updates):
            # A ticket renewed since the check above: the caller reports again.
            raise TransitionNotAllowed(f"round {round_.pk}: its ticket changed; report again")
        release = privacy_services.parse_release(
            dp, ticket_plan=allowed.dp, aggregate_hash=aggregate_hash
        )
        refusals = privacy_services.parse_site_refusals(site_refusals, ticket=allowed)
        now = clock.now()
        recorded: list[ModelUpdate] = []
        refused = [(r, "the strategy refused it") for r in rejected or []]
        for report in updates:
            named = allowed.site_by_node(report.node_id)
            if named is None:
                refused.append(
                    (report, f"node {report.node_id} is not named in ticket {ticket.pk}")
                )
                continue
            recorded.append(
                _update_record(
                    actor=actor,
                    round_=round_,
                    event_type="update.recorded",
                    row={
                        "kind": UpdateKind.SITE,
                        "site_id": named.site_id,
                        "node_id": report.node_id,
                        "update_hash": report.update_hash,
                        "num_examples": report.num_examples,
                        "records_used": report.records_used or 0,
                        "records_excluded": report.records_excluded or 0,
                        "metrics": report.metrics,
                        "recorded_at": now,
                    },
                    payload={
                        **_ticketed(round_, ticket.pk),
                        "site_id": named.site_id,
                        "node_id": report.node_id,
                        "update_hash": report.update_hash,
                        "num_examples": report.num_examples,
                        "records_used": report.records_used,
                        "records_excluded": report.records_excluded,
                        "filter_digest": report.filter_digest,
                        "subjects_digest": report.subjects_digest,
                    },
                )
            )
        for report, reason in refused:
            recorded.append(
                _update_record(
                    actor=actor,
                    round_=round_,
                    event_type="update.rejected",
                    row={
                        "kind": UpdateKind.SITE,
                        "node_id": report.node_id,
                        "update_hash": report.update_hash,
                        "num_examples": report.num_examples,
                        "accepted": False,
                        "rejection_reason": reason,
                        "recorded_at": now,
                    },
                    payload={
                        "round_id": round_.pk,
                        "ticket_id": ticket.pk,
                        "node_id": report.node_id,
                        "update_hash": report.update_hash,
                        "reason": reason,
                    },
                )
            )
        if aggregate_hash is not None:
            site_update_ids = [r.pk for r in recorded if r.accepted and r.site_id]
            recorded.append(
                _update_record(
                    actor=actor,
                    round_=round_,
                    event_type="aggregate.recorded",
                    row={
                        "kind": UpdateKind.AGGREGATE,
                        "update_hash": aggregate_hash,
                        "num_examples": sum(r.num_examples for r in updates),
                        "recorded_at": now,
                    },
                    payload={
                        **_ticketed(round_, ticket.pk),
                        "update_hash": aggregate_hash,
                        "site_update_ids": site_update_ids,
                    },
                )
            )
        for refusal in refusals:
            ledger_append(
                event_type="site.refused",
                actor=actor,
                subject_type="round",
                subject_id=round_.pk,
                payload={
                    **_ticketed(round_, ticket.pk),
                    **refusal,
                },
            )
        privacy_services.round_privacy_record(
            actor=actor,
            round_=round_,
            ticket=ticket,
            ticket_plan=allowed.dp,
            release=release,
            aggregate_hash=aggregate_hash,
            sampled_clients=sum(1 for r in recorded if r.accepted and r.site_id),
        )
    return recorded


def round_evaluations_record(
    *,
    actor: Actor,
    round: Round,
    evaluations: list[UpdateReport],
    rejected: list[UpdateReport] | None = None,
    site_refusals: Any = None,
) -> int:
    """Record a round's federated evaluation, done under its evaluate ticket.

    Each reply from a node the evaluate ticket names is checked against the data contract
    (``data_contract_violations``: a violation records nothing, writes
    ``updates.refused`` and raises ``InvalidInput``) and written as
    ``evaluation.recorded`` (metrics hash, counts, digests); replies from other nodes and
    replies the strategy refused as ``evaluation.rejected``; sites' own refusals as
    ``site.refused``. Raises ``TransitionNotAllowed`` without an evaluate ticket.
    Returns the number of evaluations recorded.
    """
    signed = latest_ticket(round, "evaluate")
    if signed is None:
        raise TransitionNotAllowed(no_ticket_reason(round, "evaluate"))
    ticket = parse_unverified(signed.body)
    violations = data_contract_violations(ticket, evaluations)
    if violations:
        _contract_refused(actor=actor, round_=round, ticket=signed, violations=violations)
        raise InvalidInput({"evaluations": violations})
    refusals = privacy_services.parse_site_refusals(site_refusals, ticket=ticket)
    count = 0
    with transaction.atomic(durable=True):
        round_ = Round.objects.select_for_update().get(pk=round.pk)
        base = _ticketed(round_, signed.pk)
        outsiders = [r for r in evaluations if ticket.site_by_node(r.node_id) is None]
        for report in evaluations:
            named = ticket.site_by_node(report.node_id)
            if named is None:
                continue
            count += 1
            ledger_append(
                event_type="evaluation.recorded",
                actor=actor,
                subject_type="round",
                subject_id=round_.pk,
                payload={
                    **base,
                    "site_id": named.site_id,
                    "node_id": report.node_id,
                    "metrics_hash": report.update_hash,
                    "num_examples": report.num_examples,
                    "records_used": report.records_used,
                    "records_excluded": report.records_excluded,
                    "filter_digest": report.filter_digest,
                    "subjects_digest": report.subjects_digest,
                    "metrics": report.metrics,
                },
            )
        for report in [*outsiders, *(rejected or [])]:
            ledger_append(
                event_type="evaluation.rejected",
                actor=actor,
                subject_type="round",
                subject_id=round_.pk,
                payload={**base, "node_id": report.node_id, "metrics_hash": report.update_hash},
            )
        for refusal in refusals:
            ledger_append(
                event_type="site.refused",
                actor=actor,
                subject_type="round",
                subject_id=round_.pk,
                payload={**base, "message_type": "evaluate", **refusal},
            )
    return count


def supernode_register(*, actor: Actor, site: Site, node_id: str, public_key: str = "") -> Site:
    """Bind the site to the Flower node id its SuperNode got (and its public key, if given).

    Raises ``InvalidInput`` for a malformed node id or one already bound to another site.
    Writes ledger event ``supernode.registered`` (key as SHA-256, not the PEM).
    """
    node_id = str(node_id)
    if not _NODE_ID.match(node_id):
        raise InvalidInput({"node_id": [_("must be a Flower node id (digits)")]})
    with transaction.atomic(durable=True):
        site_ = Site.objects.select_for_update().get(pk=site.pk)
        clash = Site.objects.filter(flower_node_id=node_id).exclude(pk=site_.pk).first()
        if clash is not None:
            # Lazy, as the other refusals an operator reads here (SupernodeView).
            raise InvalidInput(
                {
                    "node_id": [
                        format_lazy(
                            _("node {node} is bound to site {site}"), node=node_id, site=clash.slug
                        )
                    ]
                }
            )
        fields = ["flower_node_id"]
        site_.flower_node_id = node_id
        if public_key:
            site_.supernode_public_key = public_key
            fields.append("supernode_public_key")
        site_.save(update_fields=fields)
        ledger_append(
            event_type="supernode.registered",
            actor=actor,
            subject_type="site",
            subject_id=site_.pk,
            payload={
                "site_id": site_.pk,
                "node_id": node_id,
                "public_key_sha256": hashlib.sha256(site_.supernode_public_key.encode()).hexdigest()
                if site_.supernode_public_key
                else None,
            },
        )
    return site_


def supernode_admit(*, actor: Actor, site: Site, superlink, key) -> Site:
    """Register the site's SuperNode key with the SuperLink, then bind it in fedgov.

    ``superlink`` is a ``training.flower.admission.SuperlinkAdmin`` and ``key`` the site's
    ``SupernodeKey``. The SuperLink call happens first and outside fedgov's transaction:
    if it fails nothing is recorded. Raises what ``supernode_register`` raises and
    ``RuntimeError`` from the flwr CLI. Writes ``supernode.registered``.
    """
    node_id = superlink.register(key, site.slug)
    return supernode_register(actor=actor, site=site, node_id=node_id, public_key=key.public_text)


def supernode_unregister(*, actor: Actor, site: Site, reason: str, superlink=None) -> Site:
    """Unbind the site's SuperNode so no later ticket names it.

    With ``superlink`` (a ``SuperlinkAdmin``) the node is also unregistered at the
    SuperLink once fedgov's record commits, which locks it out of the federation.
    Raises ``InvalidInput`` without a reason, ``TransitionNotAllowed`` when none is bound.
    Writes ledger event ``supernode.unregistered``.
    """
    if not reason.strip():
        raise InvalidInput({"reason": [_("say why the SuperNode is locked out")]})
    with transaction.atomic(durable=True):
        site_ = Site.objects.select_for_update().get(pk=site.pk)
        if not site_.flower_node_id:
            raise TransitionNotAllowed(
                format_lazy(_("site {site} has no registered SuperNode"), site=site_.slug)
            )
        node_id = site_.flower_node_id
        site_.flower_node_id = ""
        site_.save(update_fields=["flower_node_id"])
        ledger_append(
            event_type="supernode.unregistered",
            actor=actor,
            subject_type="site",
            subject_id=site_.pk,
            # The reason is free text someone typed: the ledger keeps its hash only.
            payload={
                "site_id": site_.pk,
                "node_id": node_id,
                "reason_sha256": hashlib.sha256(reason.encode("utf-8")).hexdigest(),
                "superlink_unregistered": superlink is not None,
            },
        )
        if superlink is not None:
            transaction.on_commit(lambda: superlink.unregister(node_id))
    return site_


def supernodes_reconcile(*, actor: Actor, run: TrainingRun, superlink=None) -> list[Site]:
    """Unregister the SuperNodes of the run's sites that can no longer train at all.

    A site is locked out when it is suspended or every dataset it holds in the run was
    withdrawn from federation, by the DPO or because every subject withdrew consent
    (Art. 7(3)). Each unregistration is its own transaction and writes
    ``supernode.unregistered``. Returns the sites it unregistered.
    """
    datasets = list(run.datasets.select_related("site"))
    emptied = site_selectors.datasets_all_withdrawn(
        dataset_ids=[d.pk for d in datasets], at=clock.now()
    )
    by_site: dict[int, list] = {}
    for dataset in datasets:
        by_site.setdefault(dataset.site_id, []).append(dataset)
    locked_out = []
    for _site_id, held in sorted(by_site.items()):
        site = held[0].site
        if not site.flower_node_id:
            continue
        if site.status == SiteStatus.SUSPENDED:
            reason = f"site {site.slug} is suspended"
        elif all(d.withdrawn_at is not None or d.pk in emptied for d in held):
            reason = f"every dataset of site {site.slug} in run {run.pk} was withdrawn"
        else:
            continue
        locked_out.append(
            supernode_unregister(actor=actor, site=site, reason=reason, superlink=superlink)
        )
    return locked_out
