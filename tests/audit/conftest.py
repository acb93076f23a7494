"""Fixtures of the ledger tests: keys in a temporary folder, quick appends, guards lifted."""

from __future__ import annotations

import contextlib
import threading
from http.server import ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection, transaction

from audit import keys, note, triggers, trust, witness
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


class RunningWitness:
    def __init__(self, tmp_path, name: str, log_vkey: str, key=None, logs=None) -> None:
        self.name = name
        self.key = key or Ed25519PrivateKey.generate()
        self.state_path = tmp_path / f"{name.replace('/', '_')}.json"
        self.witness = witness.Witness(
            name=name,
            key=self.key,
            logs=list(logs.witness.logs.values()) if logs else [witness.LogKey.from_vkey(log_vkey)],
            state=witness.State(self.state_path),
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), witness.make_handler(self.witness))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def witnesses(settings, tmp_path):
    """``witnesses(n, k)``: n witnesses running, pinned, named in the policy, quorum k."""
    running: list[RunningWitness] = []

    def _start(count: int, quorum: int, pin: bool = True) -> list[RunningWitness]:
        vkey = note.verifier_key(settings.FEDGOV_LEDGER_ORIGIN, keys.active_key().public_key)
        for i in range(count):
            w = RunningWitness(tmp_path, f"site-{i}.example/witness", vkey)
            running.append(w)
            if pin:
                trust.key_trust(
                    actor=Actor.system("tests"),
                    role="witness",
                    name=w.name,
                    public_key=w.key.public_key(),
                    reason=f"site {i} runs a witness",
                )
        settings.FEDGOV_WITNESSES = [(w.name, w.url) for w in running]
        settings.FEDGOV_WITNESS_QUORUM = quorum
        settings.FEDGOV_WITNESS_TIMEOUT = 2.0
        return running

    yield _start
    for w in running:
        w.stop()
