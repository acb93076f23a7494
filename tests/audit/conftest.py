"""Fixtures of the ledger tests: keys in a temporary folder, quick appends, guards lifted."""

from __future__ import annotations

import contextlib

import pytest
from django.db import connection, transaction

from audit import triggers
from audit.services import LedgerEvent, checkpoint_create, ledger_append_many
from fedgov.actors import Actor


@pytest.fixture(autouse=True)
def key_dir(settings, tmp_path):
    """Tests never write keys into the repository's var/."""
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    return settings.FEDGOV_KEY_DIR


@pytest.fixture
def system_actor() -> Actor:
    return Actor.system("tests")


@pytest.fixture
def append(db, system_actor):
    """``append(n)`` writes n events (``subject_id`` = their number) in one transaction."""

    def _append(count: int, event_type: str = "test.happened", start: int = 0):
        events = [
            LedgerEvent(event_type, "thing", start + i, {"n": start + i, "digest": f"{i:064x}"})
            for i in range(count)
        ]
        with transaction.atomic():
            return ledger_append_many(actor=system_actor, events=events)

    return _append


@pytest.fixture
def checkpoint(db, system_actor):
    return lambda: checkpoint_create(actor=system_actor)


@contextlib.contextmanager
def guards_down():
    """Drop the append-only triggers to tamper behind them; put them back afterwards."""
    triggers.uninstall(connection)
    try:
        yield connection
    finally:
        triggers.install(connection)


@pytest.fixture
def tamper():
    return guards_down
