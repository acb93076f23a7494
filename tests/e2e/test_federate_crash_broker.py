"""kill -9 of ``manage.py federate`` driving a real Celery worker, on PostgreSQL and Redis.

In broker mode ``federate`` gates the round, approves it (the scripted second operator),
serves fedgov's API (the ticket is issued there) and submits the Flower run; a worker
runs provisioning, placement, aggregation and the close. So the kill lands in federate
by the point of the step it performs (``FEDGOV_CRASH_AT`` only in federate's env), or,
for a step the worker performs, by ``federate.saw.<state>``: federate dies the moment it
reads that state (``fedgov/faults.py``). Provisioning outlasts no poll by construction,
so the test holds the workload table, on which the worker's VM records wait, until
federate has died. The worker lives on and finishes whatever step it was in,
against zones that died with federate: that race is the case under test.

The restart is ``manage.py federate --recover`` or, for every other step, the beat tasks
on the same live worker (``training.reap_orphaned_processes``,
``training.recover_abandoned_runs``, ``audit.checkpoint_if_new``). Each case then holds
what ``test_federate_crash_points.py`` holds in-process on SQLite: no Flower process,
no workload running, every round ended with a reason naming what died, no step recorded
twice, and a ledger that verifies.

Each case gets its own database, copied from one migrated template
(``CREATE DATABASE … TEMPLATE``), and the Redis database ``FEDGOV_E2E_CRASH_BROKER``
(default 13): CI's PostgreSQL pass uses 15 for ``CELERY_BROKER_URL``, other worker tests
14, 10 and 2, and this test empties its own before each case.

No case relies on a queued message arriving. A message can be lost (a process dies
between a commit and its publish, a broker drops it, a purge removes it), so federate
queues a step again once its round has sat still for ``FEDGOV_ROUND_STALL_SECONDS``,
the stalled-round sweep's limit, set short here (``STALL``). The last test deletes
federate's first ``round_advance`` from the Redis queue before any worker could take it,
and the round still closes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from celery import Celery
from django.conf import settings

from tests.e2e.test_federate import wait_for_no_processes

REPO = Path(settings.BASE_DIR)
MANAGE = [sys.executable, str(REPO / "manage.py")]
BROKER = os.environ.get("FEDGOV_E2E_CRASH_BROKER", "redis://127.0.0.1:6379/13")
TERMINAL = {"closed", "failed", "aborted", "rejected", "blocked"}
# Seconds a round may sit still before federate queues its step again (and before the
# sweep advances it): a lost message costs this long, not the round timeout.
STALL = "3"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(
        os.environ.get("CELERY_BROKER_URL") == BROKER,
        reason="FEDGOV_E2E_CRASH_BROKER must differ from the suite's CELERY_BROKER_URL",
    ),
]

# The eight steps of the issue: the crash point federate dies at, where it fires (f:
# federate's own step, w: a worker's step federate waits on), how the dead federate is
# recovered, and the state the round ends in (None: killed inside the gate, no round).
# Provisioning ends blocked: the worker's step goes on against the dead stand-in zones
# and too few sites place; recovery finds it ended and leaves it so.
STEPS = {
    "gate": ("gate.decided", "restart", None),
    "approval": ("round.approved", "beat", "aborted"),
    "provisioning": ("federate.saw.provisioning", "restart", "blocked"),
    "placement": ("federate.saw.placement_verified", "beat", "failed"),
    "ticket": ("ticket.issued", "restart", "failed"),
    "flower-round": ("flower.round", "beat", "failed"),
    "aggregation": ("federate.saw.aggregated", "restart", "closed"),
    "close": ("federate.saw.closed", "beat", "closed"),
}


def _db_url(name: str) -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


def _admin() -> psycopg.Connection:
    return psycopg.connect(_db_url("postgres"), autocommit=True)


def _env(var: Path, database: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fedgov.settings",
        "FEDGOV_VAR_DIR": str(var),
        "DATABASE_URL": _db_url(database),
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "FEDGOV_ROUND_STALL_SECONDS": STALL,
    }
    for name in ("FEDGOV_CRASH_AT", "FEDGOV_CRASH_SKIP", "FEDGOV_KEY_DIR"):
        env.pop(name, None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def broker_to_ourselves():
    """Hold the broker's Redis database for this module's run, or fail at once.

    Each case purges the queue, and its worker takes whatever is queued there: a second
    run on the same Redis database (another checkout, a manual reproduction) deletes this
    run's messages and runs them against its own database. That is a lost message no
    retry should have to hide, so it is refused with its cause, not left to flake.
    """
    queue = redis.Redis.from_url(BROKER)
    key = "fedgov:e2e:crash-broker:owner"
    mine = f"{os.getpid()}@{os.uname().nodename}"
    if not queue.set(key, mine, nx=True, ex=1800):
        holder = (queue.get(key) or b"").decode()
        pid, _, host = holder.partition("@")
        if host == os.uname().nodename and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            queue.set(key, mine, ex=1800)  # left by a run that was killed on this machine
        else:
            queue.close()
            pytest.fail(
                f"{BROKER} is in use by another run ({holder}): set FEDGOV_E2E_CRASH_BROKER"
            )
    try:
        yield
    finally:
        if queue.get(key) == mine.encode():
            queue.delete(key)
        queue.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory, broker_to_ourselves):
    """One migrated database; each case's database is a copy (migrating costs more)."""
    name = f"{settings.DATABASES['default']['NAME']}_fcrash_tpl"
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    var = tmp_path_factory.mktemp("fcrash-template")
    subprocess.run([*MANAGE, "migrate", "-v0"], env=_env(var, name), check=True, timeout=600)
    yield name
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def case_db(template, request):
    callspec = getattr(request.node, "callspec", None)
    case = callspec.id if callspec is not None else "lost_message"
    name = f"{settings.DATABASES['default']['NAME']}_fcrash_{case}"
    name = name.replace("-", "_")
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield name
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Worker:
    """One ``celery -A fedgov worker`` process group, outside the var dir it shares."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.client = Celery(broker=BROKER, backend=BROKER)
        _empty_queue(self.client)
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("celery")),
                    "-A", "fedgov", "worker", "--pool", "solo", "--loglevel", "INFO",
                    "--without-heartbeat", "--without-gossip", "--without-mingle",
                ],
                cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def run(self, task: str, timeout: float = 180):
        # Solo pool, one queue: when this returns, every task queued before it has run.
        return self.client.send_task(task).get(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        _empty_queue(self.client)
        self.client.close()


def _empty_queue(client: Celery) -> None:
    """No message of an earlier case may reach this one's worker, queued or unacknowledged.

    A worker SIGKILLed inside an ``acks_late`` task leaves its message in kombu's
    ``unacked`` hash; a later worker's ``restore_visible`` puts it back on the queue once
    the visibility timeout has passed (kombu/transport/redis.py, ``QoS``), where it would
    act on a later case's round of the same id. Purging the queue does not touch it.
    """
    client.control.purge()
    with redis.Redis.from_url(BROKER) as queue:
        queue.delete("unacked", "unacked_index", "unacked_mutex")


@pytest.fixture
def own_broker(monkeypatch):
    # Celery reads CELERY_BROKER_URL and CELERY_RESULT_BACKEND from the environment
    # before any broker given in code (celery.app.utils.Settings.broker_url), and CI's
    # PostgreSQL pass sets the first: without this, the test's client would send (and
    # purge) on the suite's broker, not on the worker's.
    monkeypatch.setenv("CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", BROKER)


@pytest.fixture
def worker(tmp_path, case_db, own_broker):
    w = Worker(_env(tmp_path / "var", case_db), tmp_path / "worker.log")
    yield w
    w.stop()


def _rows(database: str, query: str) -> list[tuple]:
    with psycopg.connect(_db_url(database)) as db:
        return db.execute(query).fetchall()


def _duplicates(database: str) -> list[tuple]:
    """Anything recorded twice that a round records once."""
    return _rows(
        database,
        # One transition event per round and state; one ticket per round.
        "SELECT event_type, subject_id, count(*) FROM audit_ledgerentry "
        "WHERE event_type LIKE 'round.%' OR event_type = 'ticket.issued' "
        "GROUP BY event_type, subject_id HAVING count(*) > 1 "
        "UNION ALL "
        # One update per site and round, one aggregate per round.
        "SELECT kind, round_id::text, count(*) FROM training_modelupdate "
        "GROUP BY kind, round_id, site_id HAVING count(*) > 1 "
        "UNION ALL "
        "SELECT message_type, round_id::text, count(*) FROM training_roundticket "
        "GROUP BY round_id, message_type HAVING count(*) > 1 "
        "UNION ALL "
        # One VM per (zone, vm id).
        "SELECT 'workload', zone_endpoint || ' ' || vm_id, count(*) FROM opennebula_workload "
        "GROUP BY zone_endpoint, zone_id, vm_id HAVING count(*) > 1",
    )


@pytest.mark.parametrize("step", list(STEPS))
def test_kill_9_of_federate_driving_a_worker_at_each_step_then_recovery_ends_cleanly(
    step, worker, case_db, tmp_path
):
    point, recovery, expected = STEPS[step]
    var = tmp_path / "var"
    env = _env(var, case_db)
    hold = None
    if step == "provisioning":
        # The worker's VM records wait on this: the round cannot leave provisioning before
        # federate has died, whatever the worker's pace.
        hold = psycopg.connect(_db_url(case_db))
        hold.execute("LOCK TABLE opennebula_workload IN EXCLUSIVE MODE")
    try:
        killed = subprocess.run(
            [*MANAGE, "federate", "--rounds", "1", "--ports", "18890-18919",
             "--local-epochs", "1", "--round-timeout", "120"],
            env={**env, "FEDGOV_CRASH_AT": point}, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
    finally:
        if hold is not None:
            hold.close()  # the worker's step goes on, against dead zones
    # It died by SIGKILL at the point, not by finishing or failing some other way.
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]

    if recovery == "restart":
        # The worker is alive and may still be inside the round's step.
        restart = subprocess.run(
            [*MANAGE, "federate", "--recover"], env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert restart.returncode == 0, restart.stdout[-3000:] + restart.stderr[-3000:]
    else:
        worker.run("training.reap_orphaned_processes")
        worker.run("training.recover_abandoned_runs")
        worker.run("audit.checkpoint_if_new")
    # What federate had queued, and the stalled-round sweep, run on the live worker too.
    worker.run("training.sweep_stalled_rounds")

    assert wait_for_no_processes(var) == []
    assert wait_for_no_processes(tmp_path) == []
    rounds = _rows(case_db, "SELECT number, state, state_reason FROM training_round")
    if expected is None:
        # Killed inside the gate's transaction: the round was never created.
        assert rounds == []
    else:
        assert [(n, s) for n, s, _ in rounds] == [(1, expected)], rounds
    for _number, state, reason in rounds:
        assert state in TERMINAL and reason.strip(), (state, reason)
        if state in ("failed", "aborted"):
            assert "federate" in reason and "killed" in reason, reason
        if state == "blocked":
            # The worker's placement found the zones federate served gone.
            assert "placement" in reason and "cannot connect" in reason, reason
    assert _rows(case_db, "SELECT site_slug FROM opennebula_workload WHERE state = 'running'") == []
    assert _duplicates(case_db) == []
    if expected == "closed":
        assert _rows(
            case_db, "SELECT count(*) FROM training_modelupdate WHERE kind = 'aggregate'"
        ) == [(1,)]
    verify = subprocess.run(
        [*MANAGE, "ledger_verify", "--no-progress"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _take_queued(queue: redis.Redis, task: str, timeout: float) -> dict:
    """Remove the first queued message of ``task`` from the Celery queue; returns its headers.

    kombu's Redis transport keeps a queue as a list named after it (``celery``), one JSON
    message per item (kombu/transport/redis.py: ``_put`` LPUSHes, the worker BRPOPs).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in queue.lrange("celery", 0, -1):
            headers = json.loads(raw).get("headers", {})
            if headers.get("task") == task and queue.lrem("celery", 1, raw) == 1:
                return headers
        time.sleep(0.05)
    raise AssertionError(f"federate queued no {task} within {timeout:g} s")


def test_a_round_advance_lost_from_the_queue_is_queued_again_and_the_round_closes(
    case_db, tmp_path, own_broker
):
    var = tmp_path / "var"
    env = _env(var, case_db)
    client = Celery(broker=BROKER, backend=BROKER)
    _empty_queue(client)
    queue = redis.Redis.from_url(BROKER)
    log = tmp_path / "federate.log"
    worker = None
    with log.open("wb") as sink:
        # No worker yet: nothing can take federate's first message before it is deleted.
        federate = subprocess.Popen(
            [*MANAGE, "federate", "--rounds", "1", "--ports", "18890-18919",
             "--local-epochs", "1", "--round-timeout", "120"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            lost = _take_queued(queue, "training.round_advance", timeout=240)
            # The one federate queued after the gate, for the round's first step.
            assert "'gated'" in lost.get("argsrepr", ""), lost
            worker = Worker(env, tmp_path / "worker.log")
            code = federate.wait(timeout=400)
        finally:
            if federate.poll() is None:
                federate.kill()
                federate.wait()
            if worker is not None:
                worker.stop()
            queue.close()
    output = log.read_text()
    assert code == 0, output[-4000:]
    assert "still gated after" in output and "queued again" in output, output[-4000:]
    rounds = _rows(case_db, "SELECT number, state FROM training_round")
    assert rounds == [(1, "closed")], rounds
    assert _duplicates(case_db) == []
    assert _rows(case_db, "SELECT site_slug FROM opennebula_workload WHERE state = 'running'") == []
    assert wait_for_no_processes(var) == []
    assert wait_for_no_processes(tmp_path) == []
    verify = subprocess.run(
        [*MANAGE, "ledger_verify", "--no-progress"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
