"""A report requested through the service is built by a real Celery worker on Redis."""

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
from reports import services
from reports.choices import ReportStatus
from reports.models import Report

REPO = Path(__file__).resolve().parents[2]
# Celery lets CELERY_BROKER_URL override a client's own broker argument, so the test
# client and its worker must both use it when it is set (CI sets it).
BROKER = os.environ.get("CELERY_BROKER_URL") or os.environ.get(
    "FEDGOV_TEST_REPORTS_BROKER", "redis://127.0.0.1:6379/10"
)


@pytest.mark.postgres
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_worker_builds_the_report_the_service_queued(played_run, settings, monkeypatch, tmp_path):
    run, *_ = played_run
    client = Celery(broker=BROKER, backend=BROKER)
    client.control.purge()
    sent = []
    monkeypatch.setattr(
        services, "_enqueue", lambda pk: sent.append(client.send_task("reports.build", args=[pk]))
    )
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "FEDGOV_VAR_DIR": str(tmp_path / "worker-var"),
        "FEDGOV_KEY_DIR": str(settings.FEDGOV_KEY_DIR),
        "FEDGOV_REPORT_DIR": str(settings.FEDGOV_REPORT_DIR),
        "PYTHONPATH": str(REPO),
    }
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
        report = services.report_generate(actor=Actor.system("tests"), run=run)
        assert sent, "the service did not enqueue the build after commit"
        status = sent[0].get(timeout=180)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        client.close()

    done = Report.objects.get(pk=report.pk)
    assert status == ReportStatus.DONE == done.status
    assert (settings.FEDGOV_REPORT_DIR / done.pdf_name).is_file()
