"""SuperNode admission: TLS + --enable-supernode-auth, keys registered by fedgov, lock-out.

Real flower-superlink / flower-supernode processes. ``manage.py flower up --tls`` makes a
local CA, one key per site, registers each key with the SuperLink and records it in the
ledger; a whole-dataset withdrawal then unregisters that site's SuperNode at the
SuperLink as well as in fedgov.
"""

from __future__ import annotations

import json
import time

import pytest
from django.core.management import call_command

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from sites.services import dataset_withdraw
from tests.factories import UserFactory
from tests.training.flower.conftest import governed_scenario
from training.flower.admission import configured_admin
from training.flower.supervisor import free_port_block

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _wait_until(predicate, what: str, limit: float = 60.0):
    # A bound on waiting for processes, not a timing assertion.
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.5)


def test_fedgov_admits_supernodes_over_tls_and_locks_out_a_withdrawn_site(settings, tmp_path, api):
    settings.VAR_DIR = tmp_path
    settings.FEDGOV_LOCAL_HOST_COUNTRY = "DE"  # where flower up's SuperNodes run
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    run, sites, datasets = governed_scenario()
    for site in sites:
        site.flower_node_id = ""
        site.save()
    try:
        port = free_port_block(4, first=18570, last=18579)
        call_command("flower", "up", "--tls", "--base-port", str(port))
        admin = configured_admin(tmp_path / "flower")
        assert admin is not None
        for site in sites:
            site.refresh_from_db()
        node_of = {s.slug: s.flower_node_id for s in sites}
        assert all(node_of.values())
        registered = LedgerEntry.objects.filter(event_type="supernode.registered")
        payloads = [json.loads(e.payload) for e in registered]
        assert sorted(p["node_id"] for p in payloads) == sorted(node_of.values())
        assert all(len(p["public_key_sha256"]) == 64 for p in payloads)

        def all_online():
            status = {n["node-id"]: n["status"] for n in admin.nodes()}
            return all(status.get(node) == "online" for node in node_of.values())

        _wait_until(all_online, "three authenticated SuperNodes online")

        dataset_withdraw(actor=Actor.system("site"), dataset=datasets[2], reason="leaves")
        service = UserFactory(username="svc", roles=[roles.SERVICE])
        response = api(service).post(f"/api/v1/runs/{run.pk}/rounds/1/ticket")
        assert response.status_code == 201, response.json()
        ticket = json.loads(response.json()["ticket"]["body"])
        assert [s["slug"] for s in ticket["sites"]] == ["de-legal", "es-blogs"]

        def locked_out():
            status = {n["node-id"]: n["status"] for n in admin.nodes()}
            return status.get(node_of["pl-news"]) == "unregistered"

        _wait_until(locked_out, "pl-news unregistered at the SuperLink")
        event = LedgerEntry.objects.get(event_type="supernode.unregistered")
        payload = json.loads(event.payload)
        assert payload["node_id"] == node_of["pl-news"]
        assert payload["superlink_unregistered"] is True
    finally:
        call_command("flower", "down")
