"""``manage.py run_oned``: serves a zone file, refuses a bad one with a clear reason."""

from __future__ import annotations

import io
import json
import stat

import pytest
from django.core.management import CommandError, call_command

from tests.opennebula.conftest import free_ports, zone_data


def test_run_oned_serves_the_zones_and_creates_local_credentials(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    (port,) = free_ports(1)
    zone = zone_data(0, "DE", port)
    zone["credentials_ref"] = "file:{VAR_DIR}/oned/credentials/de"
    zones = tmp_path / "zones.json"
    zones.write_text(json.dumps({"zones": [zone]}))
    out = io.StringIO()
    call_command("run_oned", "--zones", str(zones), "--for-seconds", "0.2", stdout=out)
    text = out.getvalue()
    assert f"zone 0 zone-de: http://127.0.0.1:{port}/RPC2" in text
    assert "stand-in stopped" in text
    secret = tmp_path / "oned" / "credentials" / "de"
    assert secret.read_text().startswith("fedgov:")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text().strip() not in text


def test_run_oned_refuses_a_bad_zone_file(tmp_path):
    zones = tmp_path / "zones.json"
    zones.write_text('{"zones": [{"id": 0}]}')
    with pytest.raises(CommandError, match="missing field 'port'"):
        call_command("run_oned", "--zones", str(zones))
    with pytest.raises(CommandError, match="cannot read zone file"):
        call_command("run_oned", "--zones", str(tmp_path / "absent.json"))


def test_shipped_zone_file_is_valid(tmp_path):
    from opennebula.management.commands.run_oned import DEFAULT_ZONES
    from opennebula.standin import config

    spec = config.load(DEFAULT_ZONES, tmp_path)
    assert [z.name for z in spec.zones] == ["virt8ra-de", "virt8ra-fr", "virt8ra-es"]
    assert all(z.credentials_ref.startswith(f"file:{tmp_path}") for z in spec.zones)
