"""The human flow without the service role: the worker takes over where a person stops.

A person creates a run or approves a round; once that transaction commits, a Celery
worker gates and drives the round to the next point where people (approval) or Flower
(training) act. A blocked round can be gated again once its facts change: a new
decision, the old one kept as evidence. A run that can never pass its policy is refused
when it is created, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from fedgov.tasks import enqueue
from sites.models import Dataset, ResidencyPolicy
from training.choices import TERMINAL_ROUND_STATES, RoundState
from training.gate.messages import msg
from training.models import GateDecision, Round, TrainingRun
from training.services.gate import round_gate
from training.services.orchestrate import round_start
from training.services.rounds import _claim, round_drive_later

S = RoundState
# Where the worker stops for people. Otherwise it drives on through provisioning into
# running and stops by itself when nothing moves: the Flower round is under way.
HAND_OFF = frozenset({S.AWAITING_APPROVAL})


def run_policy_problems(*, policy: ResidencyPolicy, datasets: Iterable[Dataset]) -> list[Any]:
    """Reasons a run over ``datasets`` can never pass ``policy``, whatever changes later.

    Only facts the run itself fixes count: the number of distinct sites it can ever
    train on. Consent, DPIAs and agreements may still change, so they are the gate's.
    """
    problems = []
    sites = {d.site_id for d in datasets}
    if len(sites) < policy.min_eligible_sites:
        problems.append(
            format_lazy(
                _(
                    "policy {policy} v{version} needs at least {needed} eligible sites; this "
                    "run's datasets come from {found}"
                ),
                policy=policy.name,
                version=policy.version,
                needed=policy.min_eligible_sites,
                found=len(sites),
            )
        )
    return problems


def run_start_later(run_id: int) -> None:
    """After a run's creation commits: a worker gates its first round and drives it on.

    Without a broker nothing is queued; whoever drives the embedded default (the demo,
    ``manage.py federate``) gates the round itself.
    """
    enqueue("training.tasks.run_start", run_id, 1)


def round_regate(*, actor: Actor, round: Round, reason: str) -> GateDecision:
    """Gate a blocked round again, after its facts changed: blocked → planned → gated/blocked.

    The earlier decision stays as it was (decisions are evidence, never edited); the new
    one is another row for the same round, and the latest decides. Raises
    ``InvalidInput`` (no reason) and ``TransitionNotAllowed`` (the round is not blocked,
    or someone re-gated it first). Ledger: ``round.regate_requested``, then the gate's
    ``gate.decided`` and round event.
    """

    if not reason or not reason.strip():
        raise InvalidInput({"reason": [_("a reason is required")]})
    with transaction.atomic(durable=True):
        previous = round.gate_decisions.order_by("-evaluated_at", "-pk").first()
        reopened = _claim(
            actor=actor,
            round_id=round.pk,
            target=S.PLANNED,
            sources=[S.BLOCKED],
            reason=msg("round.regate_requested", actor=actor.label, reason=reason.strip()),
            event_type="round.regate_requested",
            payload={"previous_decision_id": previous.pk if previous else None},
        )
    decision = round_gate(actor=actor, run=reopened.run, round_no=reopened.number)
    if Round.objects.get(pk=decision.round_id).state == S.GATED:
        round_drive_later(decision.round_id)  # round_gate has committed: queue it now
    return decision


def run_next_round_start(*, actor: Actor, run: TrainingRun) -> Round:
    """Gate the run's next round now (an operator's "start next round"); the worker drives it.

    The next round is one past the highest existing one. Raises ``InvalidInput`` when
    the run has had all its rounds, or its latest round has not ended yet (rounds of a
    run train one after another). Ledger: the gate's ``gate.decided`` and round event.
    """
    latest = run.rounds.order_by("-number").first()
    if latest is not None and latest.state not in TERMINAL_ROUND_STATES:
        raise InvalidInput(
            {
                "round": [
                    format_lazy(
                        _("round {number} is {state}; start the next once it ends"),
                        number=latest.number,
                        state=latest.state,
                    )
                ]
            }
        )
    number = (latest.number if latest else 0) + 1
    if number > run.num_rounds:
        raise InvalidInput(
            {
                "round": [
                    format_lazy(_("the run has had all its {count} rounds"), count=run.num_rounds)
                ]
            }
        )
    round_ = round_start(actor=actor, run=run, round_no=number)
    if round_.state == S.GATED:
        round_drive_later(round_.pk)
    return round_
