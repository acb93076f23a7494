"""The round orchestrator: one service per step, and ``round_advance`` that performs the next.

Every step reads the round's persisted state, claims its transition with a conditional
UPDATE (``round_transition``) and writes its ledger event in that transaction, so calling
a step twice, or again after a worker died half-way, never moves a round twice. Calls to
OpenNebula run outside any transaction (a VM start takes seconds and must not hold
locks); ``workload_ensure`` finds a VM it already started, so a repeated provisioning
step re-uses it rather than starting a second one.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import translation

from audit.models import Checkpoint
from audit.services import checkpoint_create
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.locks import exclusive
from sites.models import Site
from sites.regions import expand, is_country
from training.choices import GateOutcome, RoundState, UpdateKind
from training.gate.messages import Message, english_text, msg, render
from training.models import Round, SiteEligibility, TrainingRun
from training.ports import WorkloadError, WorkloadStatus, workloads
from training.services import flower as flower_services
from training.services.gate import round_gate
from training.services.rounds import (
    round_check_approvals_current,
    round_route_after_gate,
    round_transition,
)
from training.statemachine import is_terminal

logger = logging.getLogger("fedgov.orchestrate")

S = RoundState
# States in which fedgov waits for something outside the orchestrator: people (approval)
# or the Flower round (its updates are reported through the API).
WAITING = frozenset({S.AWAITING_APPROVAL})


@dataclass
class StepResult:
    """What one ``round_advance`` call did: the state before and after, and a note."""

    round_id: int
    before: str
    after: str
    note: str = ""
    placements: list[dict] = field(default_factory=list)

    @property
    def moved(self) -> bool:
        return self.before != self.after


def _load(round_id: int) -> Round:
    return Round.objects.select_related("run__policy").get(pk=round_id)


def _placement_countries(run: TrainingRun, policy_areas: list[str]) -> dict[int, list[str]]:
    """Per site, the countries its SuperNode VM may land in (host, cluster and datastore).

    Both the controller's instruction and the policy bind the processor: the countries
    must lie in every one of the site's datasets' processing countries (Art. 28(3)(a),
    Art. 29) and in the policy's areas. A DE-only dataset may not run on a French host,
    even under an EEA policy. One query for the run's datasets.
    """
    allowed_by_policy = expand(policy_areas)
    per_site: dict[int, frozenset[str]] = {}
    rows = run.datasets.filter(withdrawn_at__isnull=True).values_list(
        "site_id", "processing_countries"
    )
    for site_id, processing in rows:
        countries = expand(list(processing or []))
        per_site[site_id] = per_site.get(site_id, allowed_by_policy) & countries
    return {site_id: sorted(countries) for site_id, countries in per_site.items()}


def _eligible_sites(round_: Round) -> list[Site]:
    decision = flower_services.latest_decision(round_)
    if decision is None or decision.outcome != GateOutcome.ALLOWED:
        return []
    rows = SiteEligibility.objects.filter(decision=decision, eligible=True).select_related("site")
    return [row.site for row in rows.order_by("site_id")]


CONTEXT_FILE = "supernode-context.json"


def _supernode_context(site: Site) -> dict[str, str]:
    """Extra CONTEXT for a site's SuperNode VM (fedgov API URL, SuperLink, site token).

    ``FEDGOV_SUPERNODE_CONTEXT`` holds what every site gets, ``FEDGOV_SUPERNODE_SITE_CONTEXT``
    (slug → dict) what one site gets; when neither is set, ``<VAR_DIR>/supernode-context.json``
    (``{"common": {...}, "sites": {slug: {...}}}``, written by ``manage.py federate`` for
    the workers it enqueues to) is read. All default to empty.
    """
    common = getattr(settings, "FEDGOV_SUPERNODE_CONTEXT", None)
    per_site = getattr(settings, "FEDGOV_SUPERNODE_SITE_CONTEXT", None)
    if common is None and per_site is None:
        path = Path(settings.VAR_DIR) / CONTEXT_FILE
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            common, per_site = data.get("common"), data.get("sites")
    return {**dict(common or {}), **dict((per_site or {}).get(site.slug, {}))}


# --- the steps -----------------------------------------------------------------------


def round_start(*, actor: Actor, run: TrainingRun, round_no: int) -> Round:
    """Gate round ``round_no`` of ``run`` (creating it): planned → gated or blocked.

    Safe to repeat: an already-gated round is returned as it is. Raises ``InvalidInput``
    for a round number outside the run. Ledger: ``gate.decided`` (and the round event).
    """
    existing = Round.objects.filter(run=run, number=round_no).first()
    if existing is not None and existing.state != S.PLANNED:
        return existing
    try:
        decision = round_gate(actor=actor, run=run, round_no=round_no)
    except TransitionNotAllowed:
        # Another worker gated it first, or the run stopped: the persisted state decides.
        existing = Round.objects.filter(run=run, number=round_no).first()
        if existing is None:
            raise
        return existing
    round_ = _load(decision.round_id)
    if round_.state == S.BLOCKED:
        # A blocked round trains nowhere: VMs kept from the run's earlier rounds go.
        round_release_workloads(actor=actor, round=round_, reason=round_.state_reason)
    return round_


def round_provision(*, actor: Actor, round: Round) -> StepResult:
    """approved → provisioning → placement_verified, or blocked when too few sites remain.

    For each eligible site the workload port (``training.ports.Workloads``) runs the
    site's SuperNode VM (outside any transaction) and reads where it landed; a site whose
    placement breaks residency or whose VM failed is blocked for this round, with the
    reason, and loses its SuperNode binding so no ticket names it. If fewer sites than
    the policy's ``min_eligible_sites`` remain, the round is blocked and its VMs
    terminated.

    Raises ``TransitionNotAllowed`` when the round is neither approved nor provisioning.
    Ledger: ``round.provisioning``, the workload events, ``round.placement_verified`` or
    ``round.blocked``.
    """
    round_ = _load(round.pk)
    before = round_.state
    started = _enter_provisioning(
        actor, round_, msg("round.provisioning_workloads"), "cannot provision"
    )
    if started is None:
        round_ = _load(round.pk)
        return StepResult(round_.pk, before, round_.state, round_.state_reason)
    round_ = started
    run = round_.run
    policy = run.policy
    placements, kept = [], []
    blocked: dict[str, str | Message] = {}
    eligible = _eligible_sites(round_)
    _release_ineligible(actor, round_, {site.pk for site in eligible})
    countries = _placement_countries(run, policy.allowed_areas)
    for site in eligible:
        allowed = countries.get(site.pk, [])
        if not allowed:
            why = msg("placement.no_country")
            blocked[site.slug] = why
            placements.append({"site": site.slug, "state": "unprovisioned", "reason": render(why)})
            continue
        try:
            workload = workloads().ensure(
                actor=actor,
                site=site,
                run=run,
                allowed_countries=allowed,
                context=_supernode_context(site),
            )
        except InvalidInput as exc:
            # A site fedgov cannot provision (no zone binding, bad credentials reference)
            # is blocked for the round like a misplaced one, not a crash of the round.
            error = _english(exc)
            blocked[site.slug] = msg("placement.cannot_provision", error=error)
            placements.append({"site": site.slug, "state": "unprovisioned", "reason": error})
            continue
        placements.append(_placement_row(site, workload))
        if workload.blocked:
            blocked[site.slug] = workload.reason or f"workload {workload.state}"
            _unbind_blocked(actor, round_, site)
        else:
            kept.append(site)
    payload = {
        "site_ids": [s.pk for s in kept],
        # The ledger keeps the English text, as before.
        "blocked_sites": {slug: english_text(why) for slug, why in sorted(blocked.items())},
    }
    if len(kept) < policy.min_eligible_sites:
        result = _with_blocked(
            "round.too_few_placed",
            "round.site_why",
            blocked,
            count=len(kept),
            needed=policy.min_eligible_sites,
        )
        after = _move(actor, round_, S.BLOCKED, result, payload)
        round_release_workloads(actor=actor, round=round_, reason=render(result))
        return StepResult(round_.pk, before, after.state, after.state_reason, placements)
    result = _with_blocked(
        "round.placed_inside",
        "round.site_blocked",
        blocked,
        count=len(kept),
        areas=", ".join(policy.allowed_areas),
    )
    after = _move(actor, round_, S.PLACEMENT_VERIFIED, result, payload)
    if is_terminal(after.state):
        # Aborted while its VMs were starting: the abort's release may have run before
        # the last VM came up, so release again now that provisioning has stopped.
        round_release_workloads(actor=actor, round=after, reason=after.state_reason)
    return StepResult(round_.pk, before, after.state, after.state_reason, placements)


LOCAL_HOST_FILE = "local-host.json"


def local_host_sites() -> frozenset[str]:
    """Slugs of the sites whose SuperNodes ``manage.py flower up`` runs on this host.

    ``flower up`` writes ``<VAR_DIR>/flower/local-host.json`` when it starts them and
    ``flower down`` removes it; no file, no local SuperNode.
    """
    path = Path(settings.VAR_DIR) / "flower" / LOCAL_HOST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    return frozenset(str(slug) for slug in data.get("sites", []) if isinstance(slug, str))


def round_place_on_host(*, actor: Actor, round: Round) -> StepResult:
    """approved → provisioning → placement_verified (or blocked) for SuperNodes on this host.

    The local deployment (``manage.py flower up``) runs every site's SuperNode on the
    machine fedgov runs on, so their placement is this host. Its country is the configured
    fact ``FEDGOV_LOCAL_HOST_COUNTRY``, never assumed, and is checked exactly as a VM's
    host: it must lie in each of the site's datasets' processing countries and in the
    policy's areas (``_placement_countries``). A site whose SuperNode is not on this host,
    or whose countries exclude it, is blocked for the round and loses its SuperNode
    binding so no ticket names it; too few sites left block the round.

    Raises ``TransitionNotAllowed`` when the round is neither approved nor provisioning.
    Ledger: ``round.provisioning``, then ``round.placement_verified`` or ``round.blocked``
    with the host, its country and each site's verdict.
    """
    round_ = _load(round.pk)
    before = round_.state
    started = _enter_provisioning(actor, round_, msg("round.placing_on_host"), "cannot place it")
    if started is None:
        round_ = _load(round.pk)
        return StepResult(round_.pk, before, round_.state, round_.state_reason)
    round_ = started
    policy = round_.run.policy
    host = socket.gethostname()[:128] or "localhost"
    country = str(getattr(settings, "FEDGOV_LOCAL_HOST_COUNTRY", "") or "").strip().upper()
    on_host = local_host_sites()
    countries = _placement_countries(round_.run, policy.allowed_areas)
    placements, kept, blocked = [], [], {}
    for site in _eligible_sites(round_):
        allowed = countries.get(site.pk, [])
        why: Message | None = None
        if site.slug not in on_host:
            why = msg("placement.not_on_host")
        elif not country or not is_country(country):
            why = msg("placement.host_country_unknown")
        elif country not in allowed:
            why = (
                msg(
                    "placement.host_outside", host=host, country=country, allowed=", ".join(allowed)
                )
                if allowed
                else msg("placement.host_outside_all", host=host, country=country)
            )
        reason = render(why) if why else ""
        placements.append(
            {"site": site.slug, "host": host, "host_country": country, "reason": reason}
        )
        if why:
            blocked[site.slug] = why
            _unbind_blocked(actor, round_, site)
        else:
            kept.append(site)
    payload = {
        "site_ids": [s.pk for s in kept],
        # The ledger keeps the English text, as before.
        "blocked_sites": {slug: render(why) for slug, why in sorted(blocked.items())},
        "host": host,
        "host_country": country,
    }
    if len(kept) < policy.min_eligible_sites:
        result = _with_blocked(
            "round.too_few_on_host",
            "round.site_why",
            blocked,
            count=len(kept),
            host=host,
            needed=policy.min_eligible_sites,
        )
        after = _move(actor, round_, S.BLOCKED, result, payload)
        return StepResult(round_.pk, before, after.state, after.state_reason, placements)
    result = _with_blocked(
        "round.placed_on_host",
        "round.site_blocked",
        blocked,
        count=len(kept),
        host=host,
        country=country,
    )
    after = _move(actor, round_, S.PLACEMENT_VERIFIED, result, payload)
    return StepResult(round_.pk, before, after.state, after.state_reason, placements)


def _enter_provisioning(actor: Actor, round_: Round, reason: Message, verb: str) -> Round | None:
    """approved → provisioning (after checking the approvals are still current); a round
    already provisioning stays. None when the approvals lapsed and the round moved back."""
    if round_.state == S.APPROVED:
        round_ = round_check_approvals_current(actor=actor, round=round_)
        if round_.state != S.APPROVED:
            return None
        round_transition(actor=actor, round=round_, target=S.PROVISIONING, reason=reason)
    elif round_.state != S.PROVISIONING:
        raise TransitionNotAllowed(f"round {round_.pk} is {round_.state}; {verb}")
    return round_


def _unbind_blocked(actor: Actor, round_: Round, site: Site) -> None:
    """A site placement blocked loses its SuperNode binding, so no ticket names it."""
    if site.flower_node_id:
        flower_services.supernode_unregister(
            actor=actor, site=site, reason=f"site blocked for round {round_.number}: placement"
        )


def _release_ineligible(actor: Actor, round_: Round, eligible_ids: set[int]) -> None:
    """Terminate the run's VMs of sites the gate no longer allows (e.g. consent withdrawn)."""
    running = set(workloads().running_site_ids(run=round_.run)) - eligible_ids
    for site in Site.objects.filter(pk__in=running).order_by("pk"):
        try:
            workloads().terminate(
                actor=actor,
                site=site,
                run=round_.run,
                reason=f"site {site.slug} is not eligible for round {round_.number}",
            )
        except WorkloadError as exc:
            logger.warning("run %s site %s: terminate failed: %s", round_.run_id, site.slug, exc)


def _placement_row(site: Site, workload: WorkloadStatus) -> dict:
    return {
        "site": site.slug,
        "state": workload.state,
        "zone_id": workload.zone_id,
        "vm_id": workload.vm_id,
        "host": workload.host,
        "host_country": workload.host_country,
        "reason": workload.reason,
    }


def _english(exc: Exception) -> str:
    """An error's text in English whatever language is active: a lazy reason raised
    inside a request would otherwise be stored in that reader's language."""
    with translation.override("en"):
        return str(exc)


def _with_blocked(
    code: str, site_code: str, blocked: Mapping[str, str | Message], **params: object
) -> Message:
    """A placement's reason as data: ``code``, or ``code + "_blocked"`` followed by each
    blocked site and why (a message of fedgov's own, or an outside system's text)."""
    if not blocked:
        return msg(code, **params)
    items = [msg(site_code, site=slug, why=why) for slug, why in sorted(blocked.items())]
    return msg(f"{code}_blocked", **params, blocked=items)


def _move(
    actor: Actor,
    round_: Round,
    target: str,
    reason: str | Message,
    payload: dict | None = None,
):
    try:
        return round_transition(
            actor=actor, round=round_, target=target, reason=reason, payload=payload
        )
    except TransitionNotAllowed:
        # Someone else moved it (a second worker, an operator's abort): not an error here.
        logger.info("round %s: %s not taken, state is now %s", round_.pk, target, _load(round_.pk))
        return _load(round_.pk)


def round_start_running(*, actor: Actor, round: Round) -> StepResult:
    """placement_verified → running, after issuing the round's signed ticket.

    A ticket already issued for the round is reused, so a retry after a crash between the
    ticket and the transition does not issue a second one. While no eligible site has a
    registered SuperNode yet the round waits (the ServerApp binds the nodes and asks for
    the ticket itself, which moves the round through ``round_mark_running``). Ledger:
    ``ticket.issued``, ``round.running``; ``round.failed`` when no ticket can be issued.
    """
    round_ = _load(round.pk)
    before = round_.state
    if round_.state != S.PLACEMENT_VERIFIED:
        raise TransitionNotAllowed(f"round {round_.pk} is {round_.state}; cannot start running")
    ticket = flower_services.latest_ticket(round_)
    if ticket is None or ticket.expires_at <= clock.now():
        if not any(site.flower_node_id for site in _eligible_sites(round_)):
            return StepResult(round_.pk, before, before, "waiting for SuperNodes to register")
        try:
            ticket = flower_services.round_ticket_issue(actor=actor, round=round_)
        except TransitionNotAllowed as exc:
            if _load(round_.pk).state != S.PLACEMENT_VERIFIED:
                return StepResult(round_.pk, before, _load(round_.pk).state)
            return round_fail(
                actor=actor, round=round_, reason=msg("round.no_ticket", error=_english(exc))
            )
    round_ = round_mark_running(actor=actor, round=round_, ticket_id=ticket.pk)
    return StepResult(round_.pk, before, round_.state, round_.state_reason)


def round_mark_running(*, actor: Actor, round: Round, ticket_id: int) -> Round:
    """placement_verified → running once a ticket for the round exists; a no-op otherwise.

    Called by the orchestrator and by the ticket endpoint, whichever issues the ticket.
    Ledger: ``round.running`` with the ticket id.
    """
    return _move(
        actor,
        round,
        S.RUNNING,
        msg("round.ticket_issued", ticket=ticket_id),
        {"ticket_id": ticket_id},
    )


def round_fail(*, actor: Actor, round: Round, reason: str | Message) -> StepResult:
    """Move a round that cannot go on to ``failed`` with ``reason``; release its run's VMs.

    Ledger: ``round.failed``, ``workload.terminated`` per VM.
    """
    before = _load(round.pk).state
    round_ = _move(actor, round, S.FAILED, reason)
    round_release_workloads(actor=actor, round=round_, reason=english_text(reason))
    return StepResult(round_.pk, before, round_.state, round_.state_reason)


def round_finish(*, actor: Actor, round: Round) -> StepResult:
    """running → aggregated once the Flower round's updates are recorded; failed if the
    ticket expired with nothing recorded, or nothing happened for
    ``FEDGOV_ROUND_PROGRESS_SECONDS``; nothing while the round still trains.

    Ledger: ``round.aggregated`` (with the aggregate hash and update ids) or
    ``round.failed``.
    """
    round_ = _load(round.pk)
    before = round_.state
    if round_.state != S.RUNNING:
        raise TransitionNotAllowed(f"round {round_.pk} is {round_.state}; not running")
    updates = list(round_.updates.order_by("pk"))
    aggregate = next((u for u in updates if u.kind == UpdateKind.AGGREGATE), None)
    accepted = [u for u in updates if u.kind == UpdateKind.SITE and u.accepted]
    if aggregate is None:
        now = clock.now()
        ticket = flower_services.latest_ticket(round_)
        if not accepted and (ticket is None or ticket.expires_at <= now):
            return round_fail(actor=actor, round=round_, reason=msg("round.ticket_expired"))
        # Progress is the last thing that happened to the round: its move to running, or
        # an update recorded since. A round that trains keeps recording; one whose Flower
        # round never started, or died, stops, and fails after the limit, not after the
        # ticket's whole lifetime.
        limit = settings.FEDGOV_ROUND_PROGRESS_SECONDS
        last = max([round_.updated_at, *(u.recorded_at for u in updates)])
        idle = (now - last).total_seconds()
        if idle < limit:
            return StepResult(round_.pk, before, before, "waiting for the Flower round")
        found = (
            msg("round.updates_no_aggregate", count=len(accepted))
            if accepted
            else msg("round.no_update")
        )
        reason = msg("round.no_progress", idle=int(idle), limit=limit, found=found)
        return round_fail(actor=actor, round=round_, reason=reason)
    round_ = _move(
        actor,
        round_,
        S.AGGREGATED,
        msg("round.aggregated", count=len(accepted)),
        {
            "aggregate_hash": aggregate.update_hash,
            "update_ids": [u.pk for u in accepted],
            "update_hashes": [u.update_hash for u in accepted],
        },
    )
    return StepResult(round_.pk, before, round_.state, round_.state_reason)


def round_close(*, actor: Actor, round: Round) -> StepResult:
    """aggregated → closed, then a signed checkpoint that covers the close event.

    The last round of a run also terminates the run's SuperNode VMs. A crash after the
    close but before the checkpoint is repaired by the next call (the checkpoint is
    signed for a closed round whose events no checkpoint covers yet).
    Ledger: ``round.closed`` (the checkpoint is not an event).
    """
    round_ = _load(round.pk)
    before = round_.state
    if round_.state == S.AGGREGATED:
        round_ = _move(actor, round_, S.CLOSED, msg("round.closed"))
    if round_.state != S.CLOSED:
        return StepResult(round_.pk, before, round_.state, round_.state_reason)
    checkpoint = checkpoint_create(actor=actor)
    if round_.number >= round_.run.num_rounds:
        round_release_workloads(actor=actor, round=round_, reason="the run's last round closed")
    return StepResult(round_.pk, before, round_.state, f"checkpoint at size {checkpoint.size}")


def round_release_workloads(*, actor: Actor, round: Round, reason: str) -> int:
    """Terminate every running SuperNode VM of the round's run; returns how many.

    Idempotent: with nothing running it does nothing. A zone that refuses is logged and
    left to ``workloads_reconcile`` (the run's rows stay running until it succeeds).
    Ledger: ``workload.terminated`` per VM.
    """
    run = round.run
    site_ids = workloads().running_site_ids(run=run)
    count = 0
    for site in Site.objects.filter(pk__in=site_ids).order_by("pk"):
        try:
            count += workloads().terminate(
                actor=actor, site=site, run=run, reason=reason or "round ended"
            )
        except WorkloadError as exc:
            logger.warning("run %s site %s: terminate failed: %s", run.pk, site.slug, exc)
    return count


# --- the driver ----------------------------------------------------------------------


def round_advance(*, actor: Actor, round_id: int, expected: str | None = None) -> StepResult:
    """Look at the round's persisted state and perform the next step, if there is one.

    Safe to call twice and after a crash mid-step: one caller at a time advances a round
    (a claim in the database that ends with its holder, ``fedgov.locks``), so a second
    task queued while a step runs comes back unmoved instead of racing it to the next
    step; each step also claims its transition with a conditional update and re-reads
    the state it acts on. A round waiting for people or for the Flower round comes back
    unmoved. A terminal round has its VMs released again
    (idempotent) in case a crash came between the transition and the termination.

    ``expected`` names the state the caller saw when it asked for the step; a round
    found in any other state comes back unmoved. A step queued again because its first
    message seemed lost (``manage.py federate``) may meet the first one after all: the
    later of the two must not take a second step nobody asked for.
    """
    with exclusive("round-advance", round_id) as claimed:
        if not claimed:
            state = _load(round_id).state
            return StepResult(round_id, state, state, "another worker is advancing this round")
        if expected is not None:
            state = _load(round_id).state
            if state != expected:
                return StepResult(round_id, state, state, f"asked for a step from {expected}")
        return _advance(actor, round_id)


def _advance(actor: Actor, round_id: int) -> StepResult:
    round_ = _load(round_id)
    state = round_.state
    actor_note = ""
    if state == S.PLANNED:
        after = round_start(actor=actor, run=round_.run, round_no=round_.number)
        return StepResult(round_id, state, after.state, after.state_reason)
    if state == S.GATED:
        try:
            after = round_route_after_gate(actor=actor, round=round_)
        except TransitionNotAllowed:
            after = _load(round_id)
        return StepResult(round_id, state, after.state, after.state_reason)
    if state in (S.APPROVED, S.PROVISIONING):
        return round_provision(actor=actor, round=round_)
    if state == S.PLACEMENT_VERIFIED:
        return round_start_running(actor=actor, round=round_)
    if state == S.RUNNING:
        return round_finish(actor=actor, round=round_)
    if state in (S.AGGREGATED, S.CLOSED):
        if state == S.CLOSED and _closed_and_checkpointed(round_):
            if round_.number >= round_.run.num_rounds:
                round_release_workloads(actor=actor, round=round_, reason="run finished")
            return StepResult(round_id, state, state, "closed")
        return round_close(actor=actor, round=round_)
    if is_terminal(state):
        if state != S.CLOSED:
            round_release_workloads(actor=actor, round=round_, reason=round_.state_reason)
        actor_note = round_.state_reason
    return StepResult(round_id, state, state, actor_note or "waiting")


def _closed_and_checkpointed(round_: Round) -> bool:
    from audit.models import LedgerEntry

    closed = (
        LedgerEntry.objects.filter(
            event_type="round.closed", subject_type="round", subject_id=str(round_.pk)
        )
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    if closed is None:
        return False
    # seq is 0-based: a checkpoint of size n covers the leaves 0..n-1.
    return Checkpoint.objects.filter(size__gte=closed + 1).exists()


def round_drive(*, actor: Actor, round_id: int, until: frozenset[str] | None = None) -> Round:
    """Call ``round_advance`` until the round stops moving or reaches a state in ``until``."""
    while True:
        round_ = _load(round_id)
        if until and round_.state in until:
            return round_
        result = round_advance(actor=actor, round_id=round_id)
        if not result.moved:
            return _load(round_id)


# States the orchestrator itself must move on from; planned and awaiting-approval rounds
# wait for people, terminal rounds only need their VMs released (round_advance does it).
SWEPT = frozenset({S.GATED, S.APPROVED, S.PROVISIONING, S.PLACEMENT_VERIFIED, S.RUNNING})
SWEPT_TERMINAL_CHECK = frozenset({S.AGGREGATED, S.CLOSED})


def rounds_sweep_stalled(*, actor: Actor, older_than_seconds: int) -> list[StepResult]:
    """Advance every round that has not moved for ``older_than_seconds``.

    A worker killed mid-step leaves its task message unacknowledged until the broker's
    visibility timeout (an hour on Redis); this sweep, run by Celery beat, finishes the
    step within one interval instead. Each round is advanced with ``round_advance``, so a
    round another worker is moving right now is left as it is (its transition claim wins).
    A failure on one round is logged and does not stop the others.
    """
    cutoff = clock.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        Round.objects.filter(state__in=SWEPT | SWEPT_TERMINAL_CHECK, updated_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    results = []
    for round_id in ids:
        try:
            results.append(round_advance(actor=actor, round_id=round_id))
        except (TransitionNotAllowed, InvalidInput, WorkloadError) as exc:
            logger.warning("sweep: round %s not advanced: %s", round_id, exc)
    return results
