"""The round state machine's transitions and the four-eyes approval.

Every transition is claimed with a conditional UPDATE (``state IN (sources)``), so when
twenty requests race on one round exactly one of them moves it and the others get
``TransitionNotAllowed``; the ledger event is written in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.services import ledger_append
from fedgov import clock, roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.faults import crash_point
from fedgov.second_factor import require_second_factor
from fedgov.tasks import enqueue
from sites.models import SiteSteward
from training.choices import ApprovalDecision, RoundState
from training.gate.messages import Message, english_text, is_message, msg
from training.models import Approval, Round
from training.statemachine import ABORTABLE, sources_of


def reason_columns(reason: str | Message) -> dict:
    """``state_reason`` (English) with the code and params a reader's language renders.

    A plain string (a reason fedgov does not yet write as a code, or one that comes from
    outside: Flower, OpenNebula) is stored as it is, with no code.
    """
    if is_message(reason):
        message = dict(reason)  # type: ignore[arg-type]
        return {
            "state_reason": english_text(message),
            "state_reason_code": message["code"],
            "state_reason_params": dict(message.get("params") or {}),
        }
    return {
        "state_reason": english_text(reason),
        "state_reason_code": "",
        "state_reason_params": {},
    }


def _claim(
    *,
    actor: Actor,
    round_id: int,
    target: str,
    reason: str | Message,
    event_type: str,
    payload: dict | None = None,
    sources: Iterable[str] | None = None,
) -> Round:
    """Move the round to ``target`` if it is in one of ``sources``; write the event.

    Runs in the caller's transaction. Raises ``TransitionNotAllowed`` when another
    request got there first or the round is in a state that does not lead to ``target``.
    """
    allowed = frozenset(sources) if sources is not None else sources_of(target)
    columns = reason_columns(reason)
    moved = Round.objects.filter(pk=round_id, state__in=allowed).update(
        state=target, updated_at=clock.now(), **columns
    )
    round_ = Round.objects.select_related("run").get(pk=round_id)
    if moved != 1:
        # Lazy: the admin shows it after "refused —" in its reader's language; the log
        # and an API client without a language read English.
        raise TransitionNotAllowed(
            format_lazy(
                _("round {round} is {state}; cannot become {target}"),
                round=f"{round_.run.name}#{round_.number}",
                state=round_.state,
                target=target,
            )
        )
    ledger_append(
        event_type=event_type,
        actor=actor,
        subject_type="round",
        subject_id=round_.pk,
        payload={
            "round_id": round_.pk,
            "run_id": round_.run_id,
            "round_number": round_.number,
            "state": target,
            # The English text: the ledger stays language-neutral and its payload keys
            # as they were (audit/events.py).
            "reason": columns["state_reason"],
            **(payload or {}),
        },
    )
    crash_point(event_type)  # crash tests only: inert unless FEDGOV_CRASH_AT names it
    return round_


def round_transition(
    *,
    actor: Actor,
    round: Round,
    target: str,
    reason: str | Message,
    payload: dict | None = None,
) -> Round:
    """Move ``round`` to ``target`` along the state machine, in its own transaction.

    Raises ``TransitionNotAllowed``. Writes ledger event ``round.<target>``.
    """
    with transaction.atomic(durable=True):
        return _claim(
            actor=actor,
            round_id=round.pk,
            target=target,
            reason=reason,
            event_type=f"round.{target}",
            payload=payload,
        )


def round_route_after_gate(*, actor: Actor, round: Round) -> Round:
    """A gated round either waits for people (policy asks for approval) or is approved.

    Raises ``TransitionNotAllowed`` unless the round is gated. Writes
    ``round.awaiting_approval`` or ``round.approved``.
    """
    policy = round.run.policy
    if policy.requires_approval or policy.requires_controller_dpo_approval:
        return round_transition(
            actor=actor,
            round=round,
            target=RoundState.AWAITING_APPROVAL,
            reason=msg("round.requires_approval", policy=policy.name, version=policy.version),
        )
    return round_transition(
        actor=actor,
        round=round,
        target=RoundState.APPROVED,
        reason=msg("round.requires_no_approval", policy=policy.name, version=policy.version),
    )


def _not_awaiting(round_: Round):
    return format_lazy(
        _("round {round} is {state}, not awaiting approval"),
        round=f"{round_.run.name}#{round_.number}",
        state=round_.state,
    )


def _requesters(round_: Round) -> set[int]:
    return {uid for uid in (round_.requested_by_id, round_.run.requested_by_id) if uid}


def _check_may_decide(actor: Actor, round_: Round) -> None:
    if actor.user is None:
        raise InvalidInput({"approver": [_("only a person can approve or reject a round")]})
    require_second_factor(actor, act=_("approving or rejecting a round"))
    if not roles.has_role(actor.user, roles.OPERATOR, roles.DPO):
        raise InvalidInput({"approver": [_("only an Operator or a DPO may decide on a round")]})
    if actor.user.pk in _requesters(round_):
        # Four-eyes: the person who asked for the run or the round cannot also allow it.
        raise InvalidInput(
            {"approver": [_("the requester of a round may not approve or reject it")]}
        )


def valid_approvals(round_: Round, at: datetime) -> list[Approval]:
    """Approvals that still count: not expired, not from a requester."""
    requesters = _requesters(round_)
    return [
        a
        for a in round_.approvals.filter(decision=ApprovalDecision.APPROVE, expires_at__gt=at)
        if a.approver_id not in requesters
    ]


def approvals_missing(round_: Round, at: datetime) -> list[Message]:
    """What the policy still asks for before this round may start, as reasons (codes with
    params, rendered for each reader); empty when satisfied."""
    policy = round_.run.policy
    approvals = valid_approvals(round_, at)
    missing = []
    distinct = {a.approver_id for a in approvals}
    if len(distinct) < policy.approvals_required:
        missing.append(
            msg(
                "approvals.more_distinct",
                more=policy.approvals_required - len(distinct),
                have=len(distinct),
                needed=policy.approvals_required,
            )
        )
    if policy.requires_controller_dpo_approval:
        site_ids = set(round_.run.datasets.values_list("site_id", flat=True))
        dpo_sites = set(
            SiteSteward.objects.filter(
                user_id__in=distinct, site_id__in=site_ids, user__groups__name=roles.DPO
            ).values_list("site__slug", flat=True)
        )
        all_slugs = set(round_.run.datasets.values_list("site__slug", flat=True))
        for slug in sorted(all_slugs - dpo_sites):
            missing.append(msg("approvals.controller_dpo", site=slug))
    return missing


def round_drive_later(round_id: int) -> None:
    """After an approval or a re-gate commits: a worker moves the round on as far as it goes.

    Without a broker nothing is queued; whoever drives the embedded default moves it.
    """
    enqueue("training.tasks.round_drive", round_id)


def round_approve(*, actor: Actor, round: Round, reason: str) -> Approval:
    """Record one approval; approve the round once the policy's approvals are complete.

    Raises ``InvalidInput`` (no reason, requester approving, not an operator/DPO, a
    second approval by the same person), ``SecondFactorRequired`` (the approver's session
    passed no second factor) and ``TransitionNotAllowed`` (round not awaiting approval).
    Writes ``round.approval_recorded`` and, when complete, ``round.approved``.
    """
    if not reason or not reason.strip():
        raise InvalidInput({"reason": [_("a reason is required")]})
    now = clock.now()
    try:
        with transaction.atomic(durable=True):
            # Lock the round so concurrent approvals are counted one after another.
            round_ = (
                Round.objects.select_for_update().select_related("run__policy").get(pk=round.pk)
            )
            if round_.state != RoundState.AWAITING_APPROVAL:
                raise TransitionNotAllowed(_not_awaiting(round_))
            _check_may_decide(actor, round_)
            approval = Approval.objects.create(
                round=round_,
                decision=ApprovalDecision.APPROVE,
                approver=actor.user,
                approver_name=actor.label,
                reason=reason.strip(),
                created_at=now,
                expires_at=now + settings.FEDGOV_APPROVAL_TTL,
            )
            ledger_append(
                event_type="round.approval_recorded",
                actor=actor,
                subject_type="round",
                subject_id=round_.pk,
                payload={
                    "round_id": round_.pk,
                    "approval_id": approval.pk,
                    "approver_id": actor.user_id,
                    "expires_at": approval.expires_at.isoformat(),
                },
            )
            missing = approvals_missing(round_, now)
            if not missing:
                _claim(
                    actor=actor,
                    round_id=round_.pk,
                    target=RoundState.APPROVED,
                    reason=msg("round.approved_by", actor=actor.label, reason=reason.strip()),
                    event_type="round.approved",
                    payload={"approval_ids": [a.pk for a in valid_approvals(round_, now)]},
                )
                # No service role needed: once this commits a worker moves the round on.
                round_id = round_.pk
                transaction.on_commit(lambda: round_drive_later(round_id))
            return approval
    except IntegrityError as exc:
        raise InvalidInput({"approver": [_("you have already decided on this round")]}) from exc


def round_reject(*, actor: Actor, round: Round, reason: str) -> Approval:
    """Reject the round: it ends in ``rejected`` with the reason.

    Raises ``InvalidInput`` and ``TransitionNotAllowed`` as ``round_approve`` does.
    Writes ``round.rejected``.
    """
    if not reason or not reason.strip():
        raise InvalidInput({"reason": [_("a reason is required")]})
    now = clock.now()
    with transaction.atomic(durable=True):
        round_ = Round.objects.select_for_update().select_related("run").get(pk=round.pk)
        if round_.state != RoundState.AWAITING_APPROVAL:
            raise TransitionNotAllowed(_not_awaiting(round_))
        _check_may_decide(actor, round_)
        approval = Approval.objects.create(
            round=round_,
            decision=ApprovalDecision.REJECT,
            approver=actor.user,
            approver_name=actor.label,
            reason=reason.strip(),
            created_at=now,
            expires_at=now + settings.FEDGOV_APPROVAL_TTL,
        )
        _claim(
            actor=actor,
            round_id=round_.pk,
            target=RoundState.REJECTED,
            reason=msg("round.rejected_by", actor=actor.label, reason=reason.strip()),
            event_type="round.rejected",
            payload={"approval_id": approval.pk},
        )
        return approval


def round_check_approvals_current(*, actor: Actor, round: Round) -> Round:
    """Before compute starts: send an approved round back if its approvals expired.

    Returns the round, moved to ``awaiting_approval`` when approvals lapsed.
    """
    policy = round.run.policy
    if not (policy.requires_approval or policy.requires_controller_dpo_approval):
        return round
    missing = approvals_missing(round, clock.now())
    if not missing:
        return round
    return round_transition(
        actor=actor,
        round=round,
        target=RoundState.AWAITING_APPROVAL,
        reason=msg("round.approvals_expired", missing=missing),
    )


def round_abort(*, actor: Actor, round: Round, reason: str | Message) -> Round:
    """An operator stops the round; its run's workloads are terminated after commit.

    ``reason`` is what the operator typed, or fedgov's own reason as a message (recovery
    aborting a round whose ``manage.py federate`` died). Raises ``InvalidInput`` (no
    reason) and ``TransitionNotAllowed`` (already ended).
    Writes ``round.aborted``.
    """
    typed = reason if is_message(reason) else str(reason or "").strip()
    if not typed:
        raise InvalidInput({"reason": [_("a reason is required")]})
    with transaction.atomic(durable=True):
        aborted = _claim(
            actor=actor,
            round_id=round.pk,
            target=RoundState.ABORTED,
            reason=msg("round.aborted_by", actor=actor.label, reason=typed),
            event_type="round.aborted",
            sources=ABORTABLE,
        )
        # The run's SuperNode VMs go once the abort is durable (issue 6): on a worker, or
        # here without a broker; a failure is left to workloads_reconcile.
        transaction.on_commit(
            lambda: enqueue(
                "training.tasks.round_release_workloads",
                aborted.pk,
                aborted.state_reason,
                inline=True,
            ),
            robust=True,
        )
        return aborted
