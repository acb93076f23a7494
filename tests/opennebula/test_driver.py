"""The process driver starts a real flower-supernode for a RUNNING VM and kills it after."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from opennebula.client import OneClient
from opennebula.credentials import resolve
from opennebula.standin import config
from opennebula.standin.driver import supernode_command
from opennebula.standin.server import Standin
from tests.opennebula.conftest import SECRET, free_ports, zone_data


def test_command_follows_the_appliance_context_with_flwr_flags():
    context = {"ONEAPP_FL_SUPERLINK_ADDRESS": "10.1.1.1:9092", "FEDGOV_SITE_ID": "7"}
    assert supernode_command(context, 18460) == [
        "flower-supernode",
        "--insecure",
        "--superlink",
        "10.1.1.1:9092",
        "--host",
        "127.0.0.1",
        "--port",
        "18460",
        "--node-config",
        "site-id='7' fedgov-site-id=\"7\"",
    ]
    tls = supernode_command({**context, "ONEAPP_FL_TLS_ENABLED": "YES"}, 18460)
    assert "--insecure" not in tls
    with pytest.raises(ValueError):
        supernode_command({"FEDGOV_SITE_ID": "7"}, 18460)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(predicate, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.e2e
def test_running_vm_starts_a_real_supernode_and_terminate_kills_its_group(monkeypatch, tmp_path):
    monkeypatch.setenv("FEDGOV_TEST_ONE_0", SECRET)
    (port,) = free_ports(1)
    data = {
        "zones": [zone_data(0, "DE", port)],
        "driver": {"enabled": True, "ports": [18450, 18499]},
    }
    standin = Standin(config.parse(data), tmp_path / "oned").start()
    try:
        client = OneClient(standin.endpoint(0), resolve("env:FEDGOV_TEST_ONE_0"), timeout=2)
        extra = (
            'CONTEXT = [ ONEAPP_FL_SUPERLINK_ADDRESS = "127.0.0.1:18449", FEDGOV_SITE_ID = "5" ]\n'
            'SCHED_REQUIREMENTS = "COUNTRY = \\"DE\\""\n'
        )
        vm_id = client.template_instantiate(0, "sn", extra)
        assert _wait(lambda: client.vm_info(vm_id).is_running)
        assert _wait(lambda: standin.driver.pid(0, vm_id) is not None)
        pid = standin.driver.pid(0, vm_id)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"--superlink" in cmdline and b"127.0.0.1:18449" in cmdline
        assert b"site-id='5' fedgov-site-id=\"5\"" in cmdline
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"FEDGOV_SITE_ID=5" in environ
        assert not any(item.startswith(b"FEDGOV_TEST_ONE_0=") for item in environ)
        assert os.getpgid(pid) == pid  # its own process group
        assert _group_alive(pid)

        client.vm_action("terminate", vm_id)
        assert _wait(lambda: client.vm_info(vm_id).state_name == "DONE")
        assert _wait(lambda: not _group_alive(pid))
        assert standin.driver.pid(0, vm_id) is None
        assert (tmp_path / "oned" / "supernodes" / "zone0-vm0.log").exists()
    finally:
        standin.stop()
