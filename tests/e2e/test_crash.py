"""Crash at every step: SIGKILL a real Celery worker in the middle of a round step, restart it.

The worker runs ``training.round_advance`` on Redis against PostgreSQL and the in-process
oned stand-in. To kill it at a known point without any test hook in the product, the test
holds the ledger's tree-head row lock (every ledger append takes it): the worker's step
blocks on it inside its transaction, PostgreSQL shows the wait, and the worker is killed
there. Its transaction dies with its connection; the provisioning crash also leaves a VM
started but never recorded. A new worker then drives the round on; the Flower round is
played by recording updates as the strategy would. Afterwards: the round is closed, no
VM is left in the stand-in, exactly one update per site and one aggregate exist, and
``ledger_verify`` passes.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.core.management import call_command
from django.db import connection, connections, transaction

from audit.models import LedgerEntry, TreeHead
from opennebula.choices import WorkloadState
from opennebula.models import Workload
from tests.opennebula.conftest import (  # noqa: F401 - fixtures used by name
    SECRET,
    ZONES,
    live_vms,
    one_settings,
    standin,
)
from tests.training.flower.conftest import governed_scenario
from tests.training.test_orchestrate import play_flower_round
from training.choices import RoundState, UpdateKind
from training.models import ModelUpdate, Round
from training.services.orchestrate import round_start

REPO = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("CELERY_BROKER_URL", "")
S = RoundState

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not BROKER, reason="needs a broker: set CELERY_BROKER_URL"),
]


class Worker:
    """One ``celery worker`` process group, started and SIGKILLed by the test."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc = env, log, None

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("celery")),
                    "-A", "fedgov", "worker", "--pool", "solo", "--loglevel", "INFO",
                    "--without-heartbeat", "--without-gossip", "--without-mingle",
                ],
                cwd=REPO, env=self.env, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def worker(tmp_path, one_settings):  # noqa: F811
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "FEDGOV_VAR_DIR": str(tmp_path / "worker-var"),
        "FEDGOV_KEY_DIR": str(one_settings.FEDGOV_KEY_DIR),
        "FEDGOV_SIGNING_KEY_FILE": "",
        "FEDGOV_ONE_SUPERLINK_ADDRESS": one_settings.FEDGOV_ONE_SUPERLINK_ADDRESS,
        "FEDGOV_ONE_POLL_INITIAL": "0.02",
        "FEDGOV_ONE_POLL_MAX": "0.1",
        "FEDGOV_ONE_RUNNING_DEADLINE": "20",
        "PYTHONPATH": str(REPO),
        **{f"FEDGOV_TEST_ONE_{zone}": SECRET for zone in ZONES},
    }
    client = Celery(broker=BROKER, backend=BROKER)
    client.control.purge()
    w = Worker(env, tmp_path / "worker.log")
    w.client = client
    yield w
    w.kill()
    client.control.purge()
    client.close()


@pytest.fixture
def federation(standin, settings):  # noqa: F811
    run, sites, _datasets = governed_scenario(subjects=10, num_rounds=1)
    for site, zone_id in zip(sites, ZONES, strict=True):
        site.one_zone_endpoint = standin.endpoint(zone_id)
        site.one_zone_id = zone_id
        site.one_credentials_ref = f"env:FEDGOV_TEST_ONE_{zone_id}"
        site.one_template_id = 0
        site.save()
    return run, sites


def advance(worker: Worker, round_id: int) -> str:
    worker.client.send_task("training.round_advance", args=[round_id]).get(timeout=120)
    return Round.objects.get(pk=round_id).state


def wait_until(predicate, what: str, limit: float = 60) -> None:
    # A bound on waiting for the worker, not an assertion about its speed.
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def worker_waits_on_a_lock() -> bool:
    with connections["default"].cursor() as cursor:
        # Inside a transaction the activity view is a snapshot taken at first read.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def lock_ledger() -> None:
    # On a fresh ledger the head row does not exist yet; create it as the first append would.
    TreeHead.objects.bulk_create([TreeHead(pk=1)], ignore_conflicts=True)
    TreeHead.objects.select_for_update().get(pk=1)


def kill_while_blocked(worker: Worker, round_id: int, *, lock_when=None, lock=lock_ledger) -> None:
    """Block the round's next step on row locks the test holds, then kill the worker.

    ``lock`` takes the locks (default: the ledger head, which every ledger append needs).
    Without ``lock_when`` they are held before the step is sent; with it, the step is sent
    first and the locks taken once ``lock_when`` holds (a point inside the step).
    """
    if lock_when is None:
        with transaction.atomic():
            lock()
            worker.client.send_task("training.round_advance", args=[round_id])
            wait_until(worker_waits_on_a_lock, "the worker to block on the lock")
            worker.kill()
        return
    worker.client.send_task("training.round_advance", args=[round_id])
    wait_until(lock_when, "the step to reach the crash point")
    with transaction.atomic():
        lock()
        wait_until(worker_waits_on_a_lock, "the worker to block on the ledger lock")
        worker.kill()
    # The killed step is gone with its connection; nothing of it was committed.


def finish(worker: Worker, round_id: int) -> str:
    """Drive the round to its end on a fresh worker; play the Flower round when it runs."""
    worker.start()
    # The killed message, redelivered (Redis does so after its visibility timeout).
    advance(worker, round_id)
    for _ in range(12):
        state = Round.objects.get(pk=round_id).state
        if state == S.RUNNING and not ModelUpdate.objects.filter(round_id=round_id).exists():
            play_flower_round(Round.objects.get(pk=round_id))
        if state == S.CLOSED and _closed_checkpointed(round_id):
            break
        advance(worker, round_id)
    return Round.objects.get(pk=round_id).state


def _closed_checkpointed(round_id: int) -> bool:
    from audit.models import Checkpoint

    closed = LedgerEntry.objects.filter(event_type="round.closed", subject_id=str(round_id))
    return closed.exists() and Checkpoint.objects.filter(size__gt=closed.first().seq).exists()


def assert_clean_end(standin, run, round_id: int) -> None:  # noqa: F811
    round_ = Round.objects.get(pk=round_id)
    assert round_.state == S.CLOSED, round_.state_reason
    assert _closed_checkpointed(round_id)
    assert [vm for z in standin.zones.values() for vm in live_vms(z)] == []
    assert not Workload.objects.filter(run=run, state=WorkloadState.RUNNING).exists()
    site_updates = ModelUpdate.objects.filter(round=round_, kind=UpdateKind.SITE)
    assert site_updates.filter(accepted=True).count() == 3
    assert ModelUpdate.objects.filter(round=round_, kind=UpdateKind.AGGREGATE).count() == 1
    for event in ("round.provisioning", "round.placement_verified", "round.running"):
        assert LedgerEntry.objects.filter(event_type=event).count() == 1, event
    call_command("ledger_verify", "--no-progress", stdout=io.StringIO())


def test_crash_while_gating_a_planned_round(worker, federation, standin):  # noqa: F811
    run, _sites = federation
    round_ = Round.objects.create(run=run, number=1, requested_by_name="crash-test")
    worker.start()
    kill_while_blocked(worker, round_.pk)
    assert Round.objects.get(pk=round_.pk).state == S.PLANNED
    assert not round_.gate_decisions.exists()
    assert finish(worker, round_.pk) == S.CLOSED
    assert LedgerEntry.objects.filter(event_type="gate.decided").count() == 1
    assert_clean_end(standin, run, round_.pk)


def test_crash_while_routing_the_gated_round(worker, federation, standin):  # noqa: F811
    run, _sites = federation
    round_ = round_start(actor=_actor(), run=run, round_no=1)
    assert round_.state == S.GATED
    worker.start()
    kill_while_blocked(worker, round_.pk)
    assert Round.objects.get(pk=round_.pk).state == S.GATED
    assert finish(worker, round_.pk) == S.CLOSED
    assert_clean_end(standin, run, round_.pk)


def test_crash_while_claiming_provisioning(worker, federation, standin):  # noqa: F811
    run, _sites = federation
    round_ = round_start(actor=_actor(), run=run, round_no=1)
    worker.start()
    assert advance(worker, round_.pk) == S.APPROVED
    kill_while_blocked(worker, round_.pk)
    assert Round.objects.get(pk=round_.pk).state == S.APPROVED
    assert finish(worker, round_.pk) == S.CLOSED
    assert_clean_end(standin, run, round_.pk)


def test_crash_in_the_middle_of_provisioning_with_a_vm_started(
    worker,
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation
    for zone in standin.zones.values():
        zone.spec.step_seconds = 0.3  # VMs take a few steps to boot: room to lock in between
    round_ = round_start(actor=_actor(), run=run, round_no=1)
    worker.start()
    assert advance(worker, round_.pk) == S.APPROVED
    kill_while_blocked(
        worker,
        round_.pk,
        lock_when=lambda: LedgerEntry.objects.filter(event_type="workload.started").exists(),
    )
    assert Round.objects.get(pk=round_.pk).state == S.PROVISIONING
    started_vms = sum(len(live_vms(z)) for z in standin.zones.values())
    recorded = Workload.objects.filter(run=run).count()
    assert started_vms >= recorded >= 1
    assert finish(worker, round_.pk) == S.CLOSED
    # The VM started before the crash was found again, not doubled.
    assert LedgerEntry.objects.filter(event_type="workload.started").count() == 3
    assert_clean_end(standin, run, round_.pk)


def test_crash_while_issuing_the_ticket(worker, federation, standin):  # noqa: F811
    run, _sites = federation
    round_ = round_start(actor=_actor(), run=run, round_no=1)
    worker.start()
    advance(worker, round_.pk)
    assert advance(worker, round_.pk) == S.PLACEMENT_VERIFIED
    kill_while_blocked(worker, round_.pk)
    assert Round.objects.get(pk=round_.pk).state == S.PLACEMENT_VERIFIED
    assert finish(worker, round_.pk) == S.CLOSED
    assert LedgerEntry.objects.filter(event_type="ticket.issued").count() == 1
    assert_clean_end(standin, run, round_.pk)


def test_crash_while_recording_the_aggregation(worker, federation, standin):  # noqa: F811
    run, _sites = federation
    round_ = round_start(actor=_actor(), run=run, round_no=1)
    worker.start()
    for _ in range(3):
        advance(worker, round_.pk)
    assert Round.objects.get(pk=round_.pk).state == S.RUNNING
    play_flower_round(Round.objects.get(pk=round_.pk))
    kill_while_blocked(worker, round_.pk)
    assert Round.objects.get(pk=round_.pk).state == S.RUNNING
    assert finish(worker, round_.pk) == S.CLOSED
    assert_clean_end(standin, run, round_.pk)


def test_crash_while_closing_the_round(worker, federation, standin):  # noqa: F811
    run, _sites = federation
    round_ = round_start(actor=_actor(), run=run, round_no=1)
    worker.start()
    for _ in range(3):
        advance(worker, round_.pk)
    play_flower_round(Round.objects.get(pk=round_.pk))
    assert advance(worker, round_.pk) == S.AGGREGATED
    kill_while_blocked(worker, round_.pk)
    assert Round.objects.get(pk=round_.pk).state == S.AGGREGATED
    assert finish(worker, round_.pk) == S.CLOSED
    assert_clean_end(standin, run, round_.pk)


def test_crash_while_terminating_the_vms_after_the_close(
    worker,
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation
    round_ = round_start(actor=_actor(), run=run, round_no=1)
    worker.start()
    for _ in range(3):
        advance(worker, round_.pk)
    play_flower_round(Round.objects.get(pk=round_.pk))
    assert advance(worker, round_.pk) == S.AGGREGATED
    # The close commits and the first VM is terminated in its zone; marking its workload
    # row terminated waits on the rows the test holds, and the worker dies there.
    kill_while_blocked(
        worker,
        round_.pk,
        lock=lambda: list(Workload.objects.select_for_update().filter(run=run)),
    )
    # The first site's VM is gone from its zone while its row still says running.
    assert len([vm for z in standin.zones.values() for vm in live_vms(z)]) == 2
    assert Workload.objects.filter(run=run, state=WorkloadState.RUNNING).count() == 3
    assert Round.objects.get(pk=round_.pk).state == S.CLOSED
    assert finish(worker, round_.pk) == S.CLOSED
    assert_clean_end(standin, run, round_.pk)


def _actor():
    from fedgov.actors import Actor

    return Actor.system("crash-test")


# The eight steps of the issue, each by the crash point (fedgov/faults.py) the worker
# reaches inside that step's transaction; "flower-round" is the step that starts it.
CRASH_POINTS = {
    "gate": "gate.decided",
    "approval": "round.approved",
    "provisioning": "round.provisioning",
    "placement": "round.placement_verified",
    "ticket": "ticket.issued",
    "flower-round": "round.running",
    "aggregation": "round.aggregated",
    "close": "round.closed",
}


@pytest.mark.parametrize("step", list(CRASH_POINTS))
def test_worker_sigkilled_at_each_step_then_a_new_worker_finishes_cleanly(
    step,
    worker,
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation
    round_ = Round.objects.create(run=run, number=1, requested_by_name="crash-test")
    clean_env = worker.env
    worker.env = {**clean_env, "FEDGOV_CRASH_AT": CRASH_POINTS[step]}
    worker.start()
    died = False
    for _ in range(8):
        current = Round.objects.get(pk=round_.pk)
        if current.state == S.RUNNING and not current.updates.exists():
            play_flower_round(current)
        result = worker.client.send_task("training.round_advance", args=[round_.pk])
        wait_until(
            lambda r=result: r.ready() or worker.proc.poll() is not None,
            "the step to end or the worker to die",
            limit=120,
        )
        if worker.proc.poll() is not None:
            died = True
            break
    assert died, f"the worker never reached {CRASH_POINTS[step]}"
    # It killed itself with SIGKILL at the point: no handler, no clean-up ran.
    assert worker.proc.returncode == -signal.SIGKILL
    worker.proc = None
    worker.env = clean_env

    assert finish(worker, round_.pk) == S.CLOSED
    assert_clean_end(standin, run, round_.pk)
    assert LedgerEntry.objects.filter(event_type="gate.decided").count() == 1
    assert LedgerEntry.objects.filter(event_type="ticket.issued").count() == 1
