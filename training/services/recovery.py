"""What a killed ``manage.py federate`` left: its rounds ended with a reason, its VMs recorded.

In-process mode has no broker and no worker: the only thing that moves the run's rounds
is the ``federate`` process itself. Killed outright (``kill -9``, a lost machine), it
leaves a round wherever it was and the stand-in zones it served are gone with it. So
``federate`` writes an owner record (its process mark, its run, the stand-in endpoints)
beside its run's files, and removes it when it ends. A restarted ``federate``, and the
beat sweep, look for records whose owner is dead and end what they describe:

- a round whose work is recorded (an aggregate, or already aggregated or closed) is
  finished: aggregated, closed, checkpointed;
- any other round that has not ended is failed, or aborted where the state machine
  allows no failure (before approval), naming the state the owner died in;
- the run's workloads on the dead stand-in zones are marked terminated; VMs on a real
  zone are terminated through it by the same release every failed round gets.

The Flower processes are ended by ``training.services.processes.orphans_reap``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from django.conf import settings

from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.locks import exclusive
from fedgov.processes import mark_of, owner_alive
from training.choices import RoundState, UpdateKind
from training.gate.messages import TEMPLATES, Message, msg
from training.models import Round, TrainingRun
from training.ports import WorkloadError, workloads
from training.services import orchestrate
from training.services.rounds import round_abort
from training.statemachine import ABORTABLE, can_transition, is_terminal

logger = logging.getLogger("fedgov.recovery")
S = RoundState
OWNER_FILE = "owner.json"


def federate_root() -> Path:
    return Path(settings.VAR_DIR) / "federate"


def federate_claim(*, var: Path, run: TrainingRun, endpoints: list[str]) -> Path:
    """Record that this process drives ``run`` on the stand-in zones at ``endpoints``."""
    path = Path(var) / OWNER_FILE
    record = {"owner": mark_of(os.getpid()), "run_id": run.pk, "endpoints": sorted(endpoints)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _finishable(round_: Round) -> bool:
    if round_.state in (S.AGGREGATED, S.CLOSED):
        return True
    return round_.state == S.RUNNING and round_.updates.filter(kind=UpdateKind.AGGREGATE).exists()


def _killed(pid: str, state: str) -> Message:
    """Why recovery ends a round, as data: the dead owner and the state it left."""
    was = f"round.was.{state}"
    return msg(
        "round.owner_killed",
        pid=pid,
        was=msg(was) if was in TEMPLATES else msg("round.was", state=state),
    )


def _end_round(actor: Actor, round_: Round, pid: str, *, claim_wait: float) -> Round:
    """End one round of a dead owner, never beside a worker's step on it.

    With a broker, a worker may still be inside a step of this round (``federate`` only
    queued it). Failing the round under that step's feet lets the step write after the
    recovery: a VM row recorded running once its zone was marked gone, a transition lost.
    So the round ends under the same claim ``round_advance`` holds, waiting up to
    ``claim_wait`` seconds for the worker's step to end; the state is read under it.
    """
    deadline = time.monotonic() + claim_wait
    while True:
        with exclusive("round-advance", round_.pk) as claimed:
            if claimed:
                current = Round.objects.get(pk=round_.pk)
                if _finishable(current):
                    break
                if is_terminal(current.state):
                    return current
                reason = _killed(pid, current.state)
                if can_transition(current.state, S.FAILED):
                    orchestrate.round_fail(actor=actor, round=current, reason=reason)
                elif current.state in ABORTABLE:
                    round_abort(actor=actor, round=current, reason=reason)
                return Round.objects.get(pk=round_.pk)
        if time.monotonic() > deadline:
            raise RoundBusy(f"round {round_.pk}: a worker held it for {claim_wait:g} s")
        time.sleep(0.2)
    # Its Flower round's work is recorded: close it as a worker would have. Each step
    # takes the claim itself (a second claim from this process would refuse itself).
    while True:
        current = orchestrate.round_drive(actor=actor, round_id=round_.pk)
        if is_terminal(current.state) or time.monotonic() > deadline:
            return current
        time.sleep(0.2)


class RoundBusy(Exception):
    """A live worker kept stepping the round for longer than recovery waits."""


def runs_recover_abandoned(
    *, actor: Actor, root: Path | None = None, claim_wait: float = 60.0
) -> list[Round]:
    """End the rounds of every run whose ``federate`` died; returns the rounds it touched.

    A record whose owner still lives is left alone, and so is an unreadable one (logged).
    Each round ends in its own transactions, with the events its service writes
    (``round.failed``, ``round.aborted``, ``round.aggregated``, ``round.closed``); each
    workload left on a dead stand-in zone gets ``workload.terminated``. The record is
    removed once everything it names has ended. A round a live worker is stepping is
    ended after that step (``claim_wait``); one still busy after it is left for the next
    sweep, with its record.
    """
    touched: list[Round] = []
    for path in sorted((root or federate_root()).glob(f"*/{OWNER_FILE}")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            owner, run_id = str(record["owner"]), int(record["run_id"])
            endpoints = [str(e) for e in record.get("endpoints", [])]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("recovery: unreadable owner record %s: %s", path, exc)
            continue
        if owner_alive(owner):
            continue
        run = TrainingRun.objects.filter(pk=run_id).first()
        if run is None:
            path.unlink(missing_ok=True)
            continue
        pid = owner.partition(":")[0]
        why = f"manage.py federate (process {pid}) driving it was killed"
        ended = True
        for round_ in run.rounds.order_by("number"):
            try:
                after = _end_round(actor, round_, pid, claim_wait=claim_wait)
            except (TransitionNotAllowed, InvalidInput, WorkloadError, RoundBusy) as exc:
                logger.warning("recovery: round %s not ended: %s", round_.pk, exc)
                ended = False
                continue
            if after.pk != round_.pk or after.state != round_.state:
                touched.append(after)
            ended = ended and is_terminal(after.state)
        if endpoints:
            workloads().mark_gone(
                actor=actor,
                run=run,
                zone_endpoints=endpoints,
                reason=f"{why}: its oned stand-in zone, and the SuperNodes it ran, ended with it",
            )
        if ended:
            path.unlink(missing_ok=True)
    return touched
