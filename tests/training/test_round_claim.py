"""One caller advances a round at a time; the claim ends with its holder, never by timing.

The second ``round_advance`` queued while a step runs used to take the next step itself
(issue the ticket, start the round) before the Flower round was there to train it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.locks import exclusive
from tests.factories import RoundFactory, RunFactory
from training.choices import RoundState
from training.models import Round
from training.services.orchestrate import round_advance

REPO = Path(__file__).resolve().parents[2]
ACTOR = Actor.system("claim-test")

pytestmark = pytest.mark.django_db(transaction=True)


class Holder(threading.Thread):
    """Holds a claim from another thread, hence another database connection."""

    def __init__(self, key: int) -> None:
        super().__init__(daemon=True)
        self.key = key
        self.held = threading.Event()
        self.release = threading.Event()
        self.got: bool | None = None

    def run(self) -> None:
        try:
            with exclusive("round-advance", self.key) as got:
                self.got = got
                self.held.set()
                self.release.wait(30)
        finally:
            connection.close()
            self.held.set()


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def test_a_second_caller_comes_back_unmoved_while_the_first_holds_the_round():
    round_ = RoundFactory(run=RunFactory(), number=1, state=RoundState.PLANNED)
    entries = LedgerEntry.objects.count()
    holder = Holder(round_.pk)
    holder.start()
    assert holder.held.wait(10) and holder.got is True

    result = round_advance(actor=ACTOR, round_id=round_.pk)

    assert not result.moved
    assert result.note == "another worker is advancing this round"
    assert Round.objects.get(pk=round_.pk).state == RoundState.PLANNED
    assert LedgerEntry.objects.count() == entries
    holder.release.set()
    holder.join(10)

    # Released: the next caller takes the step (the gate runs and records a decision).
    assert round_advance(actor=ACTOR, round_id=round_.pk).moved
    assert Round.objects.get(pk=round_.pk).state != RoundState.PLANNED


def test_claims_on_different_rounds_do_not_block_each_other():
    holder = Holder(101)
    holder.start()
    assert holder.held.wait(10) and holder.got
    try:
        with exclusive("round-advance", 102) as got:
            assert got
        with exclusive("round-advance", 101) as got:
            assert not got
    finally:
        holder.release.set()
        holder.join(10)


def test_a_claim_held_by_a_killed_process_is_free_at_once(settings, tmp_path):
    env = {**os.environ, "FEDGOV_VAR_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        env.pop("DATABASE_URL", None)
    holder = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "shell", "--no-imports", "-c",
         "from fedgov.locks import exclusive; import time\n"
         "with exclusive('round-advance', 7) as got:\n"
         "    print('held' if got else 'busy', flush=True); time.sleep(120)"],
        env=env, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with exclusive("round-advance", 7) as got:
            assert not got, "the claim should be the other process's"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 10
        while True:
            with exclusive("round-advance", 7) as got:
                if got:
                    break
            assert time.monotonic() < deadline, "a dead holder's claim was never released"
            time.sleep(0.1)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
