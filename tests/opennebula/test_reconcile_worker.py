"""The beat task ``opennebula.reconcile`` through a real Celery worker on a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from fedgov.actors import Actor
from opennebula.choices import WorkloadState
from opennebula.services import workload_ensure
from tests.opennebula.conftest import SECRET, live_vms
from training.choices import RunStatus

REPO = Path(__file__).resolve().parents[2]
# Celery lets CELERY_BROKER_URL override a client's own broker argument, so the test
# client and its worker must both use it when it is set (CI sets it).
BROKER = os.environ.get("CELERY_BROKER_URL") or os.environ.get(
    "FEDGOV_TEST_ONE_BROKER", "redis://127.0.0.1:6379/14"
)


@pytest.mark.postgres
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_worker_runs_the_sweep_and_terminates_a_finished_runs_vm(standin, make_site, run, tmp_path):
    site = make_site(0)
    workload = workload_ensure(
        actor=Actor.system("test"), site=site, run=run, allowed_countries=["EEA"]
    )
    assert workload.state == WorkloadState.RUNNING
    run.status = RunStatus.FINISHED
    run.save()

    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "FEDGOV_VAR_DIR": str(tmp_path / "worker-var"),
        "FEDGOV_TEST_ONE_0": SECRET,
        "PYTHONPATH": str(REPO),
    }
    client = Celery(broker=BROKER, backend=BROKER)
    client.control.purge()
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("celery")),
            "-A", "fedgov", "worker", "--pool", "solo", "--loglevel", "WARNING",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        result = client.send_task("opennebula.reconcile").get(timeout=120)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        client.close()
    assert result["terminated"] == [[0, workload.vm_id]]
    assert result["errors"] == []
    workload.refresh_from_db()
    assert workload.state == WorkloadState.TERMINATED
    assert live_vms(standin.zones[0]) == []
