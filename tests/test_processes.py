"""No process fedgov starts outlives its owner: real processes, killed with SIGKILL.

The owner here is a small Python program that starts children the way the supervisor
and the stand-in do (``owned_env``), including a grandchild in a session of its own, as
Flower's SuperLink starts its SuperExec.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.processes import OWNER_ENV, _start_time, mark_of, marked_processes, owned_env
from training.services.processes import orphans_reap

REPO = Path(__file__).resolve().parent.parent

OWNER = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from fedgov.processes import owned_env
    env = owned_env({"PATH": "/usr/bin:/bin"})
    child = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    # A child that starts its own child in yet another session, as the SuperLink does.
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time;"
         "p = subprocess.Popen(['sleep', '300'], start_new_session=True);"
         "print(p.pid, flush=True); time.sleep(300)"],
        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    grandchild = int(parent.stdout.readline())
    print(json.dumps([child.pid, parent.pid, grandchild]), flush=True)
    time.sleep(300)
    """
)


@pytest.fixture(autouse=True)
def own_var_dir(tmp_path, monkeypatch, settings):
    """Owners started here and this test's restart share a var dir of the test's own."""
    monkeypatch.setenv("FEDGOV_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "fedgov.settings")
    settings.VAR_DIR = tmp_path


def running(pid: int) -> bool:
    return _start_time(pid) is not None


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def start_owner() -> tuple[subprocess.Popen, list[int]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(OWNER_ENV, None)
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], env=env, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    children = json.loads(owner.stdout.readline())
    assert all(running(pid) for pid in children)
    return owner, children


def watchdog_of(owner_pid: int) -> int:
    mark = mark_of(owner_pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"watch" in cmd and mark.encode() in cmd:
                return int(entry.name)
    raise AssertionError("no watchdog runs for the owner")


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_every_descendant_ends_when_the_owner_is_killed_outright():
    owner, children = start_owner()
    try:
        owner.kill()  # SIGKILL: no clean-up code of the owner's runs
        owner.wait()
        assert wait_until(lambda: not any(running(pid) for pid in children)), [
            pid for pid in children if running(pid)
        ]
    finally:
        kill_all(children)


def test_what_the_watchdog_ended_reaches_the_ledger_at_the_next_restart(db, tmp_path):
    owner, children = start_owner()
    try:
        owner.kill()
        owner.wait()
        assert wait_until(lambda: not any(running(pid) for pid in children))
        assert wait_until(lambda: list((tmp_path / "processes").glob("reaped-*.json")))
        assert not LedgerEntry.objects.filter(event_type="processes.orphans_reaped").exists()

        reaped = orphans_reap(actor=Actor.system("tests"))

        assert {p.pid for p in reaped} >= set(children)
        event = json.loads(LedgerEntry.objects.get(event_type="processes.orphans_reaped").payload)
        assert event["by"] == "watchdog" and event["owner_pids"] == [owner.pid]
        assert {"pid": children[0], "program": "sleep"} in event["processes"]
        # Recorded once: the record is gone, a second restart writes nothing.
        assert list((tmp_path / "processes").glob("reaped-*.json")) == []
        orphans_reap(actor=Actor.system("tests"))
        assert LedgerEntry.objects.filter(event_type="processes.orphans_reaped").count() == 1
    finally:
        kill_all(children)


def test_a_restart_ends_what_was_left_when_the_watchdog_died_too(db):
    owner, children = start_owner()
    watchdog = watchdog_of(owner.pid)
    try:
        os.kill(watchdog, signal.SIGKILL)
        owner.kill()
        owner.wait()
        assert wait_until(lambda: not running(watchdog))
        time.sleep(0.5)
        assert all(running(pid) for pid in children), "nothing should have ended them yet"

        reaped = orphans_reap(actor=Actor.system("tests"))

        assert {p.pid for p in reaped} >= set(children)
        assert wait_until(lambda: not any(running(pid) for pid in children))
        event = json.loads(LedgerEntry.objects.get(event_type="processes.orphans_reaped").payload)
        assert event["count"] == len(reaped)
        assert {"pid": children[0], "program": "sleep"} in event["processes"]
    finally:
        kill_all(children)


def test_a_restart_leaves_alone_what_a_live_owner_runs(db):
    ours = subprocess.Popen(["sleep", "300"], env=owned_env({"PATH": "/usr/bin:/bin"}))
    try:
        assert any(p.pid == ours.pid for p in marked_processes())

        reaped = orphans_reap(actor=Actor.system("tests"))

        assert ours.pid not in {p.pid for p in reaped}
        assert ours.poll() is None
        for entry in LedgerEntry.objects.filter(event_type="processes.orphans_reaped"):
            assert ours.pid not in {p["pid"] for p in json.loads(entry.payload)["processes"]}
    finally:
        ours.kill()
        ours.wait()


def test_a_recycled_pid_does_not_pass_for_the_owner(db):
    # The owner's pid exists (it is ours), but its start time is not the one in the mark.
    pid, start = mark_of(os.getpid()).split(":")
    forged = f"{pid}:{int(start) - 1}"
    orphan = subprocess.Popen(["sleep", "300"], env={"PATH": "/usr/bin:/bin", OWNER_ENV: forged})
    try:
        assert wait_until(lambda: any(p.pid == orphan.pid for p in marked_processes()))

        reaped = orphans_reap(actor=Actor.system("tests"))

        assert orphan.pid in {p.pid for p in reaped}
        orphan.wait(timeout=10)
    finally:
        orphan.kill()
        orphan.wait()


@pytest.mark.parametrize("mark", ["", "x:1", "²:1", "1", "-5:3"])
def test_a_malformed_mark_is_a_dead_owner(mark):
    from fedgov.processes import owner_alive

    assert owner_alive(mark) is False


# The demo's site witness and TSA, started by ``audit.local`` as ``manage.py federate``
# starts them: a kill -9 of the starter must not leave them serving (issue 16).
EVIDENCE_OWNER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import django
    django.setup()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from audit import local, note
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, mode=0o700)
    log = note.verifier_key("fedgov.test/ledger", Ed25519PrivateKey.generate().public_key())
    witness, _ = local._spawn(
        ["audit.witness", "--name", "w.test/witness", "--key", str(folder / "key.pem"),
         "--state", str(folder / "state.json"), "--log", log, "--listen", "127.0.0.1:0"],
        2,
    )
    tsa, _ = local._spawn(["audit.tsa_responder", "--dir", str(folder / "tsa")], 1)
    print(json.dumps([witness.pid, tsa.pid]), flush=True)
    time.sleep(300)
    """
)
PYTHON = Path(sys.executable).name
EVIDENCE_PROGRAMS = {f"{PYTHON} -m audit.witness", f"{PYTHON} -m audit.tsa_responder"}


def start_evidence_owner(folder: Path) -> tuple[subprocess.Popen, list[int]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(OWNER_ENV, None)
    owner = subprocess.Popen(
        [sys.executable, "-c", EVIDENCE_OWNER, str(folder)],
        env=env, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    line = owner.stdout.readline()
    assert line, "the owner did not start its witness and TSA"
    children = json.loads(line)
    assert all(running(pid) for pid in children)
    return owner, children


def test_witness_and_tsa_end_with_their_starter_killed_outright_and_reach_the_ledger(db, tmp_path):
    owner, children = start_evidence_owner(tmp_path / "evidence")
    try:
        owner.kill()  # SIGKILL: LocalEvidence.stop never runs
        owner.wait()
        assert wait_until(lambda: not any(running(pid) for pid in children)), [
            pid for pid in children if running(pid)
        ]
        assert wait_until(lambda: list((tmp_path / "processes").glob("reaped-*.json")))

        reaped = orphans_reap(actor=Actor.system("tests"))

        assert {p.pid for p in reaped} >= set(children)
        event = json.loads(LedgerEntry.objects.get(event_type="processes.orphans_reaped").payload)
        assert event["by"] == "watchdog" and event["owner_pids"] == [owner.pid]
        programs = {p["program"] for p in event["processes"] if p["pid"] in children}
        assert programs == EVIDENCE_PROGRAMS
    finally:
        kill_all([owner.pid, *children])


def test_a_restart_ends_witness_and_tsa_left_when_the_watchdog_died_too(db, tmp_path):
    owner, children = start_evidence_owner(tmp_path / "evidence")
    try:
        watchdog = watchdog_of(owner.pid)
        os.kill(watchdog, signal.SIGKILL)
        owner.kill()
        owner.wait()
        assert wait_until(lambda: not running(watchdog))
        time.sleep(0.5)
        assert all(running(pid) for pid in children), "nothing should have ended them yet"

        reaped = orphans_reap(actor=Actor.system("tests"))

        assert {p.pid for p in reaped} >= set(children)
        assert wait_until(lambda: not any(running(pid) for pid in children))
        event = json.loads(LedgerEntry.objects.get(event_type="processes.orphans_reaped").payload)
        assert event["by"] == "restart"
        programs = {p["program"] for p in event["processes"] if p["pid"] in children}
        assert programs == EVIDENCE_PROGRAMS
    finally:
        kill_all([owner.pid, *children])


@pytest.mark.parametrize(
    ("command", "program"),
    [
        (
            "/v/.venv/bin/python -m audit.witness --name a --key /secret/k.pem",
            "python -m audit.witness",
        ),
        ("/usr/bin/python3.11 /v/bin/flower-superlink --insecure", "python3.11 flower-superlink"),
        ("/v/bin/flower-supernode --node-config fedgov-site=x", "flower-supernode"),
        ("", "?"),
    ],
)
def test_the_ledger_names_a_program_never_its_arguments(command, program):
    from training.services.processes import program_name

    assert program_name(command) == program
