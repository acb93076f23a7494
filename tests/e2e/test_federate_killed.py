"""kill -9 of ``manage.py federate`` in the middle of a Flower round leaves no process.

Its SuperLink, SuperExec, ServerApp, SuperNodes and ClientApps all carry its owner mark
(fedgov/processes.py); the watchdog ends them. A second federate on the same var dir then
runs a round to the end and also leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.e2e.test_federate import processes_under, wait_for_no_processes

pytestmark = [pytest.mark.e2e]


def test_kill_9_of_federate_mid_round_leaves_no_flower_process_and_a_rerun_works(tmp_path):
    env = {
        **os.environ,
        "FEDGOV_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "fedgov.settings",
    }
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=300)
    log = tmp_path / "federate.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*manage, "federate", "--rounds", "1", "--ports", "18800-18829"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            while "Flower round on" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "federate never reached the Flower round"
                time.sleep(0.2)
            assert len(processes_under(tmp_path)) >= 4, "no federation to leave behind"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()

    assert wait_for_no_processes(tmp_path) == []

    rerun = subprocess.run(
        [*manage, "federate", "--rounds", "1", "--ports", "18800-18829"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert wait_for_no_processes(tmp_path) == []
    verify = subprocess.run(
        [*manage, "ledger_verify", "--no-progress"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
