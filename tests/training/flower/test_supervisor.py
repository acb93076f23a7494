"""Process supervision: stopping a group leaves no process behind, even a stubborn one."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from training.flower.supervisor import ProcessSpec, Supervisor, _descendants

# A leader that spawns a child ignoring SIGTERM in a new session (as Flower's SuperExec
# does) and a grandchild in its own group, then waits.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
subprocess.Popen([sys.executable, "-c", code])
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1][0] != "Z"


def test_stop_kills_the_whole_family_even_when_it_ignores_sigterm(tmp_path):
    supervisor = Supervisor(tmp_path)
    pid = supervisor.start(ProcessSpec("stubborn", [sys.executable, "-c", STUBBORN]))
    while len(_descendants(pid)) < 2:
        time.sleep(0.05)
    family = {pid} | _descendants(pid)

    supervisor.stop("stubborn", grace=0.5)

    assert not [p for p in family if _alive(p)]
    assert supervisor.names() == []
    assert (tmp_path / "logs" / "stubborn.log").exists()


def test_status_reports_a_dead_process_as_not_alive(tmp_path):
    supervisor = Supervisor(tmp_path)
    supervisor.start(ProcessSpec("short", [sys.executable, "-c", "pass"]))
    time.sleep(0.5)
    supervisor.stop("short")  # reaps it
    assert supervisor.status() == {}
    supervisor.start(ProcessSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"]))
    assert supervisor.status()["sleeper"]["alive"] is True
    with pytest.raises(RuntimeError, match="already runs"):
        supervisor.start(ProcessSpec("sleeper", [sys.executable, "-c", "pass"]))
    supervisor.stop_all()
    assert supervisor.status() == {}


@pytest.mark.django_db
def test_flower_up_without_sites_exits_non_zero_saying_why(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    with pytest.raises(CommandError, match="no active site"):
        call_command("flower", "up")
    with pytest.raises(CommandError, match="no active site nowhere"):
        from tests.factories import SiteFactory

        SiteFactory(slug="de-legal")
        call_command("flower", "up", "--site", "nowhere")
    with pytest.raises(CommandError, match="not up"):
        call_command("flower", "run", "1")
