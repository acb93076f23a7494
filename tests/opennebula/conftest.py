"""Fixtures: a three-zone oned stand-in in-process on ports the OS picks; `free_ports` finds
ports in 18400-18449 for the tests that start oned as its own process."""

from __future__ import annotations

import socket
import time

import pytest

from opennebula.standin import config
from opennebula.standin.server import Standin
from tests.factories import RunFactory, SiteFactory

PORTS = range(18400, 18450)
SECRET = "fedgov:zone-secret-Xy7#q"
SECRET_PASSWORD = "zone-secret-Xy7#q"
ZONES = {0: "DE", 101: "FR", 102: "ES"}


def free_ports(count: int) -> list[int]:
    found = []
    for port in PORTS:
        with socket.socket() as probe:
            # The stand-in binds with SO_REUSEADDR; probe the same way, or ports whose
            # earlier connections sit in TIME_WAIT look taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("no free port in 18400-18449")


def zone_data(zone_id: int, country: str, port: int) -> dict:
    """A zone with two hosts: one in ``country`` and one labelled US in the same cluster."""
    return {
        "id": zone_id,
        "name": f"zone-{country.lower()}",
        "port": port,
        "credentials_ref": f"env:FEDGOV_TEST_ONE_{zone_id}",
        "step_seconds": 0.02,
        "clusters": [
            {"id": 100, "name": f"{country.lower()}-cluster", "attributes": {"COUNTRY": country}}
        ],
        "hosts": [
            {
                "id": 0,
                "name": f"{country.lower()}-kvm-01",
                "cluster": 100,
                "attributes": {"COUNTRY": country},
            },
            {"id": 1, "name": "us-kvm-99", "cluster": 100, "attributes": {"COUNTRY": "US"}},
        ],
        "datastores": [
            {
                "id": 0,
                "name": "system",
                "type": "system",
                "clusters": [100],
                "attributes": {"COUNTRY": country},
            },
            {
                "id": 1,
                "name": "default",
                "type": "image",
                "clusters": [100],
                "attributes": {"COUNTRY": country},
            },
        ],
        "templates": [
            {"id": 0, "name": "fedgov-supernode", "template": {"CPU": "1", "MEMORY": "512"}}
        ],
    }


@pytest.fixture
def one_settings(settings, tmp_path):
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_ONE_CALL_TIMEOUT = 2.0
    settings.FEDGOV_ONE_RUNNING_DEADLINE = 5.0
    settings.FEDGOV_ONE_POLL_INITIAL = 0.02
    settings.FEDGOV_ONE_POLL_MAX = 0.1
    settings.FEDGOV_ONE_SUPERLINK_ADDRESS = "127.0.0.1:18499"
    return settings


@pytest.fixture
def standin(monkeypatch, tmp_path, one_settings):
    for zone_id in ZONES:
        monkeypatch.setenv(f"FEDGOV_TEST_ONE_{zone_id}", SECRET)
    # Port 0: the OS picks each zone's port at bind time, so two test runs on one machine
    # cannot both probe a port free and then race to bind it (seen in CI: Errno 98).
    spec = config.parse({"zones": [zone_data(z, c, 0) for z, c in ZONES.items()]})
    server = Standin(spec, tmp_path / "oned").start()
    yield server
    server.stop()


@pytest.fixture
def make_site(db, standin):
    def _make(zone_id: int = 0, **overrides):
        fields = {
            "country": ZONES[zone_id],
            "one_zone_endpoint": standin.endpoint(zone_id),
            "one_zone_id": zone_id,
            "one_credentials_ref": f"env:FEDGOV_TEST_ONE_{zone_id}",
            "one_template_id": 0,
        }
        fields.update(overrides)
        return SiteFactory(**fields)

    return _make


@pytest.fixture
def run(db):
    return RunFactory()


def live_vms(zone) -> list:
    """VMs of a stand-in zone that are not DONE, once in-flight terminations finish."""
    deadline = time.monotonic() + 5
    while True:
        with zone.lock:
            zone.tick()
            alive = [vm for vm in zone.vms.values() if vm.state != 6]
            settling = [vm for vm in alive if vm.lcm_state in (11, 12)]
        if not settling or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)
