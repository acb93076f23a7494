"""fedgov's side of the user's own Flower app: tickets bound to a message type and a Flower
run, the site data contract on every report, evaluation records, closing through the API."""

from __future__ import annotations

import json

import pytest

from audit.models import LedgerEntry
from fedgov import roles
from fedgov_flower.ticket import parse_unverified
from tests.training.flower.conftest import governed_scenario, kept
from training.choices import RoundState
from training.models import ModelUpdate, Round, RoundTicket

AGG = "ef" * 32


@pytest.fixture
def service(make_user):
    return make_user(roles.SERVICE, username="flower-service")


def ticket(api, service, run, n, **body):
    return api(service).post(f"/api/v1/runs/{run.pk}/rounds/{n}/ticket", body, format="json")


def updates(run, n, **overrides):
    rows = []
    for i in range(3):
        node = str(1000 + i)
        row = {"node_id": node, "update_hash": f"{i:02d}" * 32, "num_examples": 9,
               **kept(run, n, node)}  # fmt: skip
        row.update(overrides.get(node, {}))
        rows.append({k: v for k, v in row.items() if v is not None})
    return {"updates": rows, "aggregate_hash": AGG}


def test_a_ticket_names_its_message_type_and_flower_run(api, service):
    run, _, _ = governed_scenario()
    response = ticket(api, service, run, 1, message_type="train", flower_run_id="4242")
    assert response.status_code == 201, response.json()
    body = json.loads(response.json()["ticket"]["body"])
    assert (body["message_type"], body["flower_run_id"]) == ("train", "4242")
    assert body["context"]["purpose"] == run.purpose.code
    assert body["context"]["aggregator_country"] == run.aggregator_country
    # Another Flower run gets another ticket; the same run gets the same one back.
    again = ticket(api, service, run, 1, message_type="train", flower_run_id="4242")
    other = ticket(api, service, run, 1, message_type="train", flower_run_id="4243")
    assert again.json()["ticket"]["id"] == response.json()["ticket"]["id"]
    assert other.json()["ticket"]["id"] != response.json()["ticket"]["id"]


def test_an_evaluate_ticket_needs_the_rounds_train_ticket_in_the_same_flower_run(api, service):
    run, _, _ = governed_scenario()
    refused = ticket(api, service, run, 1, message_type="evaluate", flower_run_id="5")
    assert refused.status_code == 200 and refused.json()["allowed"] is False
    ticket(api, service, run, 1, message_type="train", flower_run_id="5")
    elsewhere = ticket(api, service, run, 1, message_type="evaluate", flower_run_id="6")
    assert elsewhere.json()["allowed"] is False
    granted = ticket(api, service, run, 1, message_type="evaluate", flower_run_id="5")
    assert granted.status_code == 201
    body = parse_unverified(granted.json()["ticket"]["body"])
    assert (body.message_type, body.flower_run_id) == ("evaluate", "5")
    assert RoundTicket.objects.filter(message_type="evaluate").count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("message_type", "query"),
        ("flower_run_id", "12a"),
        ("flower_run_id", "²"),
        ("flower_run_id", 10**30),
        ("flower_run_id", True),
    ],
)
def test_a_malformed_binding_gets_400(api, service, field, value):
    run, _, _ = governed_scenario()
    response = ticket(api, service, run, 1, **{field: value})
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not RoundTicket.objects.exists()


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"1001": {"filter_digest": "00" * 32}}, "did not filter by the ticket's allow-list"),
        ({"1001": {"filter_digest": None}}, "reported digest none"),
        ({"1002": {"records_used": None}}, "reported no counts"),
        ({"1000": {"records_excluded": None}}, "reported no counts"),
    ],
)
def test_a_report_that_breaks_the_data_contract_is_not_recorded(api, service, override, reason):
    run, _, _ = governed_scenario()
    ticket(api, service, run, 1, flower_run_id="3")
    url = f"/api/v1/runs/{run.pk}/rounds/1/updates"
    response = api(service).post(url, updates(run, 1, **override), format="json")

    assert response.status_code == 400
    assert any(reason in r for r in response.json()["updates"]), response.json()
    assert not ModelUpdate.objects.exists()
    event = LedgerEntry.objects.get(event_type="updates.refused")
    assert any(reason in r for r in json.loads(event.payload)["reasons"])
    # The honest report is then recorded.
    assert api(service).post(url, updates(run, 1), format="json").status_code == 201


def test_evaluations_are_recorded_under_the_evaluate_ticket(api, service):
    run, _, _ = governed_scenario()
    ticket(api, service, run, 1, flower_run_id="3")
    url = f"/api/v1/runs/{run.pk}/rounds/1/evaluations"
    body = {"evaluations": updates(run, 1)["updates"]}
    assert api(service).post(url, body, format="json").status_code == 409
    ticket(api, service, run, 1, message_type="evaluate", flower_run_id="3")
    response = api(service).post(url, body, format="json")
    assert response.status_code == 201 and response.json()["recorded"] == 3
    events = LedgerEntry.objects.filter(event_type="evaluation.recorded")
    assert events.count() == 3
    assert {"metrics_hash", "filter_digest", "records_used"} <= set(json.loads(events[0].payload))


def test_a_round_driven_by_flwr_run_alone_waits_for_four_eyes_then_closes(api, service, make_user):
    # The conftest's flower_up_here runs the sites' SuperNodes on this host, so the ticket
    # endpoint verifies their placement itself, as it must before a ticket.
    from fedgov.actors import Actor
    from tests.factories import verified_actor
    from training.services.orchestrate import rounds_sweep_stalled
    from training.services.rounds import round_approve

    run, _, _ = governed_scenario()
    run.policy.requires_approval = True
    run.policy.save()
    # 1-2. The ServerApp's first request gates the round; it waits for a person.
    waiting = ticket(api, service, run, 1, flower_run_id="3")
    assert waiting.json()["allowed"] is False
    round_ = Round.objects.get(run=run, number=1)
    assert round_.state == RoundState.AWAITING_APPROVAL
    # 3. A second person approves it (the admin action calls this service).
    approver = make_user(roles.OPERATOR, username="second-operator")
    round_approve(actor=verified_actor(approver), round=round_, reason="gate table checked")
    # 4. The ticket: the round runs.
    assert ticket(api, service, run, 1, flower_run_id="3").status_code == 201
    assert Round.objects.get(pk=round_.pk).state == RoundState.RUNNING
    # The sweep leaves a round that trains alone (no provisioning, no failure).
    rounds_sweep_stalled(actor=Actor.system("beat"), older_than_seconds=0)
    assert Round.objects.get(pk=round_.pk).state == RoundState.RUNNING
    close = f"/api/v1/runs/{run.pk}/rounds/1/close"
    early = api(service).post(close)
    assert early.status_code == 409 and early.json()["state"] == RoundState.RUNNING
    # 5. Training recorded; 6. closed through the API.
    url = f"/api/v1/runs/{run.pk}/rounds/1/updates"
    assert api(service).post(url, updates(run, 1), format="json").status_code == 201
    response = api(service).post(close)
    assert response.status_code == 200, response.json()
    assert Round.objects.get(pk=round_.pk).state == RoundState.CLOSED
    assert LedgerEntry.objects.filter(event_type="round.closed").count() == 1
