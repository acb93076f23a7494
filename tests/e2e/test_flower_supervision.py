"""manage.py flower up / status / down with the real Flower binaries: nothing survives down."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.factories import SiteFactory
from training.flower.supervisor import Supervisor, _descendants, free_port_block

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1][0] != "Z"


def test_flower_up_status_down_leaves_no_process(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    SiteFactory(slug="de-legal")
    SiteFactory(slug="es-blogs")
    try:
        call_command(
            "flower", "up", "--base-port", str(free_port_block(3, first=18560, last=18564))
        )
        out = StringIO()
        call_command("flower", "status", stdout=out)
        status = json.loads(out.getvalue())
        assert sorted(status) == ["superlink", "supernode-de-legal", "supernode-es-blogs"]
        assert all(s["alive"] for s in status.values())
        supervisor = Supervisor(tmp_path / "flower")
        family = set()
        for name in supervisor.names():
            family |= {supervisor.pid(name)} | _descendants(supervisor.pid(name))
    finally:
        call_command("flower", "down")
    assert not [p for p in family if _alive(p)]
    assert (tmp_path / "flower" / "logs" / "superlink.log").exists()


def test_ctrl_c_on_flower_up_foreground_stops_every_process(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {
        **os.environ,
        "FEDGOV_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "FEDGOV_KEY_DIR": str(tmp_path / "keys"),
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    make_site = "from tests.factories import SiteFactory; SiteFactory(slug='de-legal')"
    subprocess.run([*manage, "shell", "-c", make_site], env=env, check=True)
    port = free_port_block(2, first=18565, last=18569)
    up = subprocess.Popen(
        [*manage, "flower", "up", "--foreground", "--base-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    supervisor = Supervisor(tmp_path / "flower")
    try:
        assert f"SuperLink on 127.0.0.1:{port}" in up.stdout.readline()
        family = set()
        for name in supervisor.names():
            family |= {supervisor.pid(name)} | _descendants(supervisor.pid(name))
        assert len(supervisor.names()) == 2
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
        supervisor.stop_all()
    time.sleep(0.2)
    assert not [p for p in family if _alive(p)]
    assert supervisor.names() == []
