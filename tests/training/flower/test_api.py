"""The Flower REST API: tickets from the real gate, update records, exclusion lists."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from sites.models import Consent, SiteSteward
from tests.training.flower.conftest import governed_scenario, kept
from training.choices import RoundState
from training.models import ModelUpdate, Round

HASH = "ab" * 32


@pytest.fixture
def service(make_user):
    return make_user(roles.SERVICE, username="flower-service")


def ticket_url(run, n):
    return f"/api/v1/runs/{run.pk}/rounds/{n}/ticket"


def test_ticket_endpoint_gates_the_round_and_returns_a_signed_ticket(api, service):
    run, _sites, _ = governed_scenario()
    response = api(service).post(ticket_url(run, 1))

    assert response.status_code == 201, response.json()
    body = json.loads(response.json()["ticket"]["body"])
    assert [s["slug"] for s in body["sites"]] == ["de-legal", "es-blogs", "pl-news"]
    # Placed on this host (the local deployment's record), then running under the ticket.
    assert Round.objects.get(run=run, number=1).state == RoundState.RUNNING
    assert LedgerEntry.objects.filter(event_type="round.placement_verified").count() == 1
    assert LedgerEntry.objects.filter(event_type="gate.decided").count() == 1
    assert LedgerEntry.objects.filter(event_type="ticket.issued").count() == 1


def test_ticket_endpoint_returns_refusal_with_failed_rules_when_gate_blocks(api, service):
    run, _sites, datasets = governed_scenario()
    for ds in datasets:
        Consent.objects.filter(dataset=ds).update(withdrawn_at=timezone.now())

    response = api(service).post(ticket_url(run, 1))

    assert response.status_code == 200
    data = response.json()
    assert data["allowed"] is False
    assert data["state"] == RoundState.BLOCKED
    assert data["on_refusal"] == "skip"
    assert data["failed_rules"], data
    assert all({"site", "rule_id", "article", "reason"} <= set(r) for r in data["failed_rules"])
    assert not LedgerEntry.objects.filter(event_type="ticket.issued").exists()


def test_ticket_endpoint_refuses_round_outside_run(api, service):
    run, _, _ = governed_scenario(num_rounds=2)
    response = api(service).post(ticket_url(run, 3))
    assert response.status_code == 400
    assert "round" in response.json()


def test_ticket_endpoint_is_for_the_service_role_only(api, operator):
    run, _, _ = governed_scenario()
    assert api(operator).post(ticket_url(run, 1)).status_code == 403


def test_updates_from_nodes_outside_the_ticket_are_rejected_and_logged(api, service):
    run, sites, _ = governed_scenario()
    api(service).post(ticket_url(run, 1))
    report = {
        "updates": [
            {"node_id": "1000", "update_hash": HASH, "num_examples": 9,
             "metrics": {"train_loss": 0.5}, **kept(run, 1, "1000", excluded=1)},
            {"node_id": "777", "update_hash": "cd" * 32, "num_examples": 5},
        ],
        "aggregate_hash": "ef" * 32,
    }  # fmt: skip
    response = api(service).post(f"/api/v1/runs/{run.pk}/rounds/1/updates", report, format="json")

    assert response.status_code == 201, response.json()
    rows = ModelUpdate.objects.filter(round__run=run)
    accepted = rows.get(kind="site", accepted=True)
    assert (accepted.site_id, accepted.update_hash, accepted.records_excluded) == (
        sites[0].pk,
        HASH,
        1,
    )
    rejected = rows.get(accepted=False)
    assert rejected.node_id == "777" and "not named in ticket" in rejected.rejection_reason
    assert rows.get(kind="aggregate").update_hash == "ef" * 32
    events = list(LedgerEntry.objects.values_list("event_type", flat=True))
    assert events[-3:] == ["update.recorded", "update.rejected", "aggregate.recorded"]


@pytest.mark.parametrize(
    ("report", "field"),
    [
        ({"updates": "nope"}, "updates"),
        ({"updates": [{"node_id": "x", "update_hash": HASH, "num_examples": 1}]}, "updates[0]"),
        ({"updates": [{"node_id": "1", "update_hash": "zz", "num_examples": 1}]}, "updates[0]"),
        ({"updates": [{"node_id": "1", "update_hash": HASH, "num_examples": -1}]}, "updates[0]"),
        ({"updates": [], "aggregate_hash": "short"}, "aggregate_hash"),
        (
            {"updates": [{"node_id": "1", "update_hash": HASH, "num_examples": 1,
                          "metrics": {"loss": "high"}}]},
            "updates[0]",
        ),
    ],
)  # fmt: skip
def test_bad_update_reports_get_400_naming_the_field_and_write_nothing(api, service, report, field):
    run, _, _ = governed_scenario()
    api(service).post(ticket_url(run, 1))
    before = LedgerEntry.objects.count()
    response = api(service).post(f"/api/v1/runs/{run.pk}/rounds/1/updates", report, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert LedgerEntry.objects.count() == before
    assert not ModelUpdate.objects.exists()


def test_updates_without_ticket_are_refused_with_409(api, service):
    run, _, _ = governed_scenario()
    from fedgov.actors import Actor
    from training.services.gate import round_gate

    round_gate(actor=Actor.system("test"), run=run, round_no=1)
    response = api(service).post(
        f"/api/v1/runs/{run.pk}/rounds/1/updates", {"updates": []}, format="json"
    )
    assert response.status_code == 409


def test_exclusions_list_withdrawn_subjects_and_match_the_ticket_digest(api, service):
    run, _sites, datasets = governed_scenario()
    Consent.objects.filter(
        dataset=datasets[1], subject_pseudonym__in=["es-blogs-s0002", "es-blogs-s0005"]
    ).update(withdrawn_at=timezone.now())
    ticket = json.loads(api(service).post(ticket_url(run, 1)).json()["ticket"]["body"])

    response = api(service).get(f"/api/v1/runs/{run.pk}/rounds/1/exclusions?site=es-blogs")

    assert response.status_code == 200
    data = response.json()
    assert data["pseudonyms"] == ["es-blogs-s0002", "es-blogs-s0005"]
    es = next(s for s in ticket["sites"] if s["slug"] == "es-blogs")
    assert data["digest"] == es["exclusion_digest"]
    assert es["excluded_count"] == 2


def test_steward_reads_own_site_exclusions_but_not_another_sites(api, service, make_user):
    run, sites, _ = governed_scenario()
    api(service).post(ticket_url(run, 1))
    steward = make_user(roles.SITE_STEWARD, username="steward-de")
    SiteSteward.objects.create(user=steward, site=sites[0])
    base = f"/api/v1/runs/{run.pk}/rounds/1/exclusions?site="
    assert api(steward).get(base + "de-legal").status_code == 200
    assert api(steward).get(base + "es-blogs").status_code == 403
    assert api(steward).get(base + "nowhere").status_code == 400


def test_supernode_registration_is_recorded_and_unregistration_locks_the_site_out(api, service):
    run, _sites, _ = governed_scenario()
    client = api(service)
    assert client.post("/api/v1/sites/de-legal/supernode", {"node_id": "55"}).status_code == 201
    assert client.post("/api/v1/sites/es-blogs/supernode", {"node_id": "55"}).status_code == 400
    response = client.delete(
        "/api/v1/sites/de-legal/supernode", {"reason": "dataset withdrawn"}, format="json"
    )
    assert response.status_code == 204
    ticket = json.loads(client.post(ticket_url(run, 1)).json()["ticket"]["body"])
    assert [s["slug"] for s in ticket["sites"]] == ["es-blogs", "pl-news"]
    events = list(LedgerEntry.objects.values_list("event_type", flat=True))
    assert "supernode.registered" in events and "supernode.unregistered" in events


def test_dataset_withdrawal_unregisters_the_site_and_leaves_it_out_of_the_next_ticket(api, service):
    from sites.services import dataset_withdraw

    run, sites, datasets = governed_scenario()
    assert api(service).post(ticket_url(run, 1)).status_code == 201
    dataset_withdraw(actor=Actor.system("site"), dataset=datasets[2], reason="site leaves")

    response = api(service).post(ticket_url(run, 2))

    assert response.status_code == 201, response.json()
    body = json.loads(response.json()["ticket"]["body"])
    assert [s["slug"] for s in body["sites"]] == ["de-legal", "es-blogs"]
    sites[2].refresh_from_db()
    assert sites[2].flower_node_id == ""
    event = LedgerEntry.objects.get(event_type="supernode.unregistered")
    payload = json.loads(event.payload)
    assert payload["site_id"] == sites[2].pk and payload["node_id"] == "1002"
    assert "reason" not in payload and len(payload["reason_sha256"]) == 64


def test_dataset_withdrawal_stops_the_run_when_too_few_sites_remain(api, service):
    from sites.services import dataset_withdraw

    run, _sites, datasets = governed_scenario(on_refusal="stop")
    run.policy.min_eligible_sites = 3
    run.policy.save()
    dataset_withdraw(actor=Actor.system("site"), dataset=datasets[0], reason="site leaves")

    data = api(service).post(ticket_url(run, 1)).json()

    assert data["allowed"] is False
    assert data["on_refusal"] == "stop"


def _store_schema2_ticket(round_, message_type: str):
    """A ticket as fedgov stored it before schema 3 (no message type, no Flower run),
    signed by fedgov's key and newer than any other: what an upgraded database holds."""
    import base64
    from datetime import timedelta

    import rfc8785

    from audit.keys import active_key
    from training.models import RoundTicket

    issued = timezone.now().replace(microsecond=0) + timedelta(seconds=5)
    body = rfc8785.dumps({
        "schema": 2, "run_id": round_.run_id, "round": round_.number,
        "issued_at": issued.isoformat().replace("+00:00", "Z"),
        "expires_at": (issued + timedelta(minutes=15)).isoformat().replace("+00:00", "Z"),
        "decision_hash": "d" * 64,
        "sites": [{"site_id": 1, "slug": "de-legal", "node_id": "1000",
                   "exclusion_digest": "e" * 64, "excluded_count": 0,
                   "allowed_digest": "", "allowed_count": 0}],
    })  # fmt: skip
    key = active_key()
    return RoundTicket.objects.create(
        round=round_, body=body.decode(), signature=base64.b64encode(key.sign(body)).decode(),
        key_id=key.key_id, issued_at=issued, expires_at=issued + timedelta(minutes=15),
        message_type=message_type,
    )  # fmt: skip


def test_a_stored_schema_2_ticket_is_never_served_nor_recorded_against(api, service):
    run, _, _ = governed_scenario()
    first = api(service).post(ticket_url(run, 1), {"flower_run_id": "5"}, format="json")
    assert first.status_code == 201, first.json()
    round_ = Round.objects.get(run=run, number=1)
    old = _store_schema2_ticket(round_, "train")

    again = api(service).post(ticket_url(run, 1), {"flower_run_id": "5"}, format="json")
    assert again.status_code == 201, again.json()
    served = again.json()["ticket"]
    assert served["id"] != old.pk and json.loads(served["body"])["schema"] == 3

    # Updates are checked against the newest ticket sites accept, not the stored one.
    report = {
        "updates": [{"node_id": "1000", "update_hash": HASH, "num_examples": 9,
                     **kept(run, 1, "1000", excluded=1)}],
        "aggregate_hash": "ef" * 32,
    }  # fmt: skip
    response = api(service).post(f"/api/v1/runs/{run.pk}/rounds/1/updates", report, format="json")
    assert response.status_code == 201, response.json()


def test_a_round_whose_only_evaluate_ticket_is_schema_2_gets_a_reason_then_a_new_ticket(
    api, service
):
    run, _, _ = governed_scenario()
    api(service).post(ticket_url(run, 1), {"flower_run_id": "5"}, format="json")
    round_ = Round.objects.get(run=run, number=1)
    _store_schema2_ticket(round_, "evaluate")
    before = LedgerEntry.objects.count()

    response = api(service).post(
        f"/api/v1/runs/{run.pk}/rounds/1/evaluations", {"evaluations": []}, format="json"
    )
    assert response.status_code == 409
    text = json.dumps(response.json())
    assert "schema 2" in text and "ask fedgov for a new ticket" in text
    assert LedgerEntry.objects.count() == before

    renewed = api(service).post(
        ticket_url(run, 1), {"message_type": "evaluate", "flower_run_id": "5"}, format="json"
    )
    assert renewed.status_code == 201, renewed.json()
    body = json.loads(renewed.json()["ticket"]["body"])
    assert (body["schema"], body["message_type"]) == (3, "evaluate")
    assert LedgerEntry.objects.filter(event_type="ticket.issued").count() == 2
