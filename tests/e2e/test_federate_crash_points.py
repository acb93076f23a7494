"""kill -9 of in-process ``manage.py federate`` inside a worker's steps, then a restart.

In-process, federate performs provisioning, placement, aggregation and the close itself;
with a broker a worker does (``test_federate_crash_broker.py`` covers all eight steps there).

``FEDGOV_CRASH_AT`` (``fedgov/faults.py``) makes federate SIGKILL itself at a named
point, inside the step's transaction, so each case dies at a known step and not after a
guessed delay. The restart is ``manage.py federate --recover``, the start-up half of
every federate: it reaps the dead owner's Flower processes and ends its rounds. Each
case then holds: no Flower process, no workload left running, no round that has not
ended, every ended round with its reason, and a ledger that verifies.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.e2e.test_federate import wait_for_no_processes

pytestmark = [pytest.mark.e2e]

MANAGE = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
TERMINAL = {"closed", "failed", "aborted", "rejected", "blocked"}
# The steps of the issue that only in-process federate performs itself, by the crash
# point each one reaches inside its transaction, and the state the restart leaves the
# round in: finished where its work was recorded, ended otherwise. Gate, approval,
# ticket and the Flower round are federate's own steps in broker mode too, at the same
# points: test_federate_crash_broker.py kills them there, on PostgreSQL with a live
# worker, so they are not run twice (CI's time budget).
STEPS = {
    "provisioning": ("round.provisioning", "failed"),
    "placement": ("round.placement_verified", "failed"),
    "aggregation": ("round.aggregated", "closed"),
    "close": ("round.closed", "closed"),
}


def _env(var: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FEDGOV_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "fedgov.settings"}
    # In-process mode, on the var dir's own SQLite: the gap this test closes.
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    env.pop("FEDGOV_CRASH_AT", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """One migrated var dir, copied for each case (migrating costs more than a case)."""
    var = tmp_path_factory.mktemp("federate-template")
    subprocess.run([*MANAGE, "migrate", "-v0"], env=_env(var), check=True, timeout=600)
    return var


def _rows(var: Path, query: str) -> list[tuple]:
    with sqlite3.connect(var / "fedgov.sqlite3") as db:
        return db.execute(query).fetchall()


@pytest.mark.parametrize("step", list(STEPS))
def test_kill_9_of_federate_at_each_step_then_restart_leaves_nothing(step, migrated, tmp_path):
    point, expected = STEPS[step]
    var = tmp_path / "var"
    shutil.copytree(migrated, var)
    killed = subprocess.run(
        [*MANAGE, "federate", "--rounds", "1", "--ports", "18830-18859", "--local-epochs", "1"],
        env=_env(var, FEDGOV_CRASH_AT=point), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    # It died by SIGKILL at the point, not by finishing or failing some other way.
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]

    restart = subprocess.run(
        [*MANAGE, "federate", "--recover"], env=_env(var), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert restart.returncode == 0, restart.stdout[-3000:] + restart.stderr[-3000:]

    assert wait_for_no_processes(var) == []
    assert wait_for_no_processes(tmp_path) == []
    rounds = _rows(var, "SELECT number, state, state_reason FROM training_round")
    assert [(n, s) for n, s, _ in rounds] == [(1, expected)], rounds
    for _number, state, reason in rounds:
        assert state in TERMINAL and reason.strip(), (state, reason)
        if state in ("failed", "aborted"):
            assert "federate" in reason and "killed" in reason, reason
    assert _rows(var, "SELECT id FROM opennebula_workload WHERE state = 'running'") == []
    verify = subprocess.run(
        [*MANAGE, "ledger_verify", "--no-progress"], env=_env(var), capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
