"""End to end: ``manage.py federate`` on the virt8ra scenario with real Flower processes.

The stand-in's process driver starts one real ``flower-supernode`` per RUNNING VM, a real
``flower-superlink`` serves them, and the ServerApp talks to fedgov's API over HTTP.
After the command, and after a Ctrl-C in the middle of a round, no process it started
and no VM is left.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from audit.models import Checkpoint, LedgerEntry
from fedgov.processes import mark_of
from opennebula.choices import WorkloadState
from opennebula.models import Workload
from training.choices import RoundState, UpdateKind
from training.models import ModelUpdate, Round

pytestmark = [pytest.mark.e2e]

SCENARIO = Path(settings.BASE_DIR) / "scenarios" / "virt8ra.toml"


def processes_under(directory: Path) -> list[str]:
    """Live processes that work in ``directory`` or name a path in it on their command line.

    Flower's processes and the stand-in's run with their working directory there; the site
    witnesses and the TSA run from the repository (``python -m``) but keep their keys,
    state and CA there (``--key``, ``--state``, ``--dir``), so both kinds are found.
    """
    found = []
    under = str(directory)
    # This test process's own watchdog (fedgov/processes.py) names its record folder, a
    # var dir's, and lives as long as the test process: not something a run left behind.
    own_watchdog = mark_of(os.getpid())

    def inside(path: str) -> bool:
        return path == under or path.startswith(under + "/")

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        zombie = stat[stat.rindex(")") + 2 :].split()[0] == "Z"
        if "watch" in argv and own_watchdog in argv:
            continue
        named = any(inside(arg) or inside(arg.partition("=")[2]) for arg in argv)
        if (inside(cwd) or named) and not zombie:
            found.append(f"{entry.name} {' '.join(argv)[:120]!r}")
    return found


def wait_for_no_processes(directory: Path) -> list[str]:
    # Killed groups take a moment to be reaped by init; this bounds a wait, not a speed.
    deadline = time.monotonic() + 15
    while (left := processes_under(directory)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.django_db(transaction=True)
def test_federate_runs_two_governed_rounds_of_virt8ra_and_leaves_nothing_behind(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    settings.FEDGOV_REPORT_DIR = tmp_path / "reports"
    # The in-process path: CI's PostgreSQL pass sets a broker, but no worker listens here
    # (broker mode runs with a real worker in tests/e2e/test_crash.py).
    settings.CELERY_BROKER_URL = ""
    out = io.StringIO()

    call_command(
        "federate", "--scenario", str(SCENARIO), "--rounds", "2", "--ports", "18710-18769",
        stdout=out,
    )  # fmt: skip

    text = out.getvalue()
    rounds = list(Round.objects.order_by("number"))
    assert [(r.number, r.state) for r in rounds] == [(1, RoundState.CLOSED), (2, RoundState.CLOSED)]
    for round_ in rounds:
        sites = ModelUpdate.objects.filter(round=round_, kind=UpdateKind.SITE, accepted=True)
        assert sorted(u.site.slug for u in sites) == ["de-legal", "es-blogs", "pl-news"]
        assert ModelUpdate.objects.filter(round=round_, kind=UpdateKind.AGGREGATE).count() == 1
        assert not ModelUpdate.objects.filter(round=round_, accepted=False).exists()
    # Five es-blogs subjects withdrew before round 2 (three records each in the corpus).
    es_2 = ModelUpdate.objects.get(round=rounds[1], site__slug="es-blogs", kind=UpdateKind.SITE)
    es_1 = ModelUpdate.objects.get(round=rounds[0], site__slug="es-blogs", kind=UpdateKind.SITE)
    assert es_2.records_excluded > 0 == es_1.records_excluded
    assert es_2.records_used < es_1.records_used
    # The US-hosted site never trained, and the gate says why.
    assert "nl-media" in text and "compute in US" in text
    assert "approved by demo-operator-2 (four-eyes)" in text
    assert "Held-out accuracy" in text
    # The scenario's budget is spent by noise actually added, round by round.
    assert "Privacy: central DP, C=1" in text and "of 3 at δ=1e-05 (Flower RDP)" in text
    accounted = [
        json.loads(e.payload) for e in LedgerEntry.objects.filter(event_type="privacy.accounted")
    ]
    assert [p["private"] for p in accounted] == [True, True]
    assert 0 < accounted[0]["epsilon"] < accounted[1]["epsilon"] <= 3.0
    assert "with central DP" in text and "without DP" in text
    assert f"Evidence bundle: {tmp_path / 'reports'}" in text
    for event in ("round.provisioning", "round.placement_verified", "round.running"):
        assert LedgerEntry.objects.filter(event_type=event).count() == 2, event
    approvals = [
        json.loads(e.payload) for e in LedgerEntry.objects.filter(event_type="round.approved")
    ]
    assert len(approvals) == 2
    head = LedgerEntry.objects.order_by("-seq").first().seq
    assert Checkpoint.objects.filter(size=head + 1).exists()
    assert not Workload.objects.filter(state=WorkloadState.RUNNING).exists()
    assert wait_for_no_processes(tmp_path) == []
    call_command("ledger_verify", "--no-progress", stdout=io.StringIO())


def test_ctrl_c_in_the_middle_of_a_round_aborts_it_and_stops_every_process(tmp_path):
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
            [*manage, "federate", "--rounds", "1", "--ports", "18770-18799"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 240
            while "Flower round on" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "federate never reached the Flower round"
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log.read_text()
    assert code != 0
    assert "interrupted" in output
    assert wait_for_no_processes(tmp_path) == []
    verify = subprocess.run(
        [*manage, "ledger_verify", "--no-progress"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    state = subprocess.run(
        [*manage, "shell", "-c",
         "from training.models import Round; from opennebula.models import Workload; "
         "print([r.state for r in Round.objects.all()], "
         "Workload.objects.filter(state='running').count())"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert state.stdout.strip().splitlines()[-1] == "['aborted'] 0"
