"""PostgreSQL-only: concurrent writers serialise on the tree head; a real Celery worker signs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from audit import keys, merkle, note
from audit.models import Checkpoint, LedgerEntry, SubtreeHash, TreeHead
from audit.services import ledger_append
from fedgov.actors import Actor

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_writers_leave_no_gap_no_duplicate_and_a_valid_tree():
    writers = 20
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            barrier.wait()
            with transaction.atomic(durable=True):
                ledger_append(
                    event_type="test.concurrent",
                    actor=Actor.system(f"writer-{number}"),
                    subject_type="writer",
                    subject_id=number,
                    payload={"writer": number},
                )
        except BaseException as exc:  # collected and asserted on the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = list(LedgerEntry.objects.order_by("seq").values_list("seq", "subject_id"))
    assert [seq for seq, _ in rows] == list(range(writers))
    assert sorted(int(subject) for _, subject in rows) == list(range(writers))
    leaves = [bytes(e.leaf_hash) for e in LedgerEntry.objects.order_by("seq")]
    node = merkle.nodes_from_leaves(leaves)
    for stored in SubtreeHash.objects.all():
        assert bytes(stored.hash) == node(stored.level, stored.idx)
    assert SubtreeHash.objects.count() == writers - bin(writers).count("1")
    assert TreeHead.objects.get().size == writers
    call_command("ledger_verify", "--no-progress")


def _database_url() -> str:
    db = connection.settings_dict
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


@pytest.mark.postgres
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_beat_task_runs_through_a_real_celery_worker_on_the_broker(append, key_dir, tmp_path):
    if not settings.CELERY_BROKER_URL:
        pytest.skip("needs a broker: set CELERY_BROKER_URL=redis://…")
    from audit.tasks import checkpoint_if_new

    append(7)
    keys.active_key()  # the worker signs with the key this test then trusts
    queue = f"ledger-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "FEDGOV_KEY_DIR": str(key_dir),
        "FEDGOV_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "fedgov", "worker", "--pool=solo",
            "--queues", queue, "--hostname", f"{queue}@localhost", "--loglevel=WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        checkpoint_if_new.apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while not Checkpoint.objects.exists() and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stderr.read()
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    cp = Checkpoint.objects.get()
    assert cp.size == 8  # seven events and the key the worker trusted on first use
    assert cp.created_by == "system:celery-beat"
    assert note.open_note(cp.note, keys.public_keys(), settings.FEDGOV_LEDGER_ORIGIN)
