"""Celery tasks that move rounds forward: a round id in, one orchestrator service call.

Each is safe to run twice and after a worker died mid-step (``acks_late`` redelivers it):
the services claim every transition with a conditional update on the persisted state.
"""

from __future__ import annotations

from django.conf import settings

from fedgov.actors import Actor
from fedgov.errors import TemporaryError
from fedgov.tasks import fedgov_task
from training.models import Round, TrainingRun
from training.ports import WorkloadError
from training.services import orchestrate
from training.services.handoff import HAND_OFF
from training.services.processes import orphans_reap
from training.services.recovery import runs_recover_abandoned

ACTOR = Actor.system("orchestrator")


class ZoneUnavailable(TemporaryError):
    """An OpenNebula zone failed in a way that may pass (``permanent=False``)."""


# Provisioning waits for VMs to reach RUNNING, which can take minutes on a real zone.
@fedgov_task(name="training.round_advance", soft_time_limit=900, time_limit=960)
def round_advance(round_id: int, expected: str | None = None) -> dict:
    try:
        result = orchestrate.round_advance(actor=ACTOR, round_id=round_id, expected=expected)
    except WorkloadError as exc:
        if exc.permanent:
            raise
        raise ZoneUnavailable(str(exc)) from exc
    return {"round_id": result.round_id, "before": result.before, "after": result.after}


@fedgov_task(name="training.round_release_workloads", soft_time_limit=300, time_limit=360)
def round_release_workloads(round_id: int, reason: str) -> int:
    round_ = Round.objects.select_related("run").get(pk=round_id)
    return orchestrate.round_release_workloads(actor=ACTOR, round=round_, reason=reason)


@fedgov_task(name="training.sweep_stalled_rounds", soft_time_limit=1800, time_limit=1860)
def sweep_stalled_rounds() -> list[int]:
    results = orchestrate.rounds_sweep_stalled(
        actor=ACTOR, older_than_seconds=settings.FEDGOV_ROUND_STALL_SECONDS
    )
    return [r.round_id for r in results if r.moved]


@fedgov_task(name="training.reap_orphaned_processes", soft_time_limit=60, time_limit=90)
def reap_orphaned_processes() -> int:
    # On the worker's own host: Flower processes whose owner died and whose watchdog did too.
    return len(orphans_reap(actor=ACTOR))


@fedgov_task(name="training.recover_abandoned_runs", soft_time_limit=600, time_limit=660)
def recover_abandoned_runs() -> list[int]:
    # Runs whose in-process ``manage.py federate`` died on this host: their rounds end.
    return [r.pk for r in runs_recover_abandoned(actor=ACTOR)]


@fedgov_task(name="training.run_start", soft_time_limit=900, time_limit=960)
def run_start(run_id: int, round_no: int) -> dict:
    """Gate round ``round_no`` of a run a person just created, then drive it to a hand-off."""
    run = TrainingRun.objects.get(pk=run_id)
    round_ = orchestrate.round_start(actor=ACTOR, run=run, round_no=round_no)
    return round_drive(round_.pk)


@fedgov_task(name="training.round_drive", soft_time_limit=900, time_limit=960)
def round_drive(round_id: int) -> dict:
    """Move a round until people (approval) or Flower (training) must act, or it ends."""
    try:
        round_ = orchestrate.round_drive(actor=ACTOR, round_id=round_id, until=HAND_OFF)
    except WorkloadError as exc:
        if exc.permanent:
            raise
        raise ZoneUnavailable(str(exc)) from exc
    return {"round_id": round_.pk, "state": round_.state}
