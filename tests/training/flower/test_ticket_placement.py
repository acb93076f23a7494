"""A ticket is signed only once placement is verified, for VMs and for ``flower up``'s host.

The local deployment's placement is this host, whose country is a configured fact
(``FEDGOV_LOCAL_HOST_COUNTRY``) checked against each dataset's processing countries and
the policy's areas, exactly as a VM's host label is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from sites.models import Dataset
from tests.training.flower.conftest import governed_scenario
from training.choices import RoundState
from training.models import Round, RoundTicket
from training.services.orchestrate import LOCAL_HOST_FILE, round_start
from training.services.rounds import round_route_after_gate

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


@pytest.fixture
def service(make_user):
    return make_user(roles.SERVICE, username="flower-service")


def approved_round(run):
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_ = round_route_after_gate(actor=ACTOR, round=round_)
    assert round_.state == RoundState.APPROVED
    return round_


def event(event_type: str) -> dict:
    return json.loads(LedgerEntry.objects.get(event_type=event_type).payload)


def ask(api, service, run):
    return api(service).post(f"/api/v1/runs/{run.pk}/rounds/1/ticket")


def test_approved_round_not_placed_gets_409_and_nothing_is_written(api, service):
    run, _sites, _ = governed_scenario()
    # No SuperNode of flower up on this host, and no VM placed: nothing verified placement.
    (Path(settings.VAR_DIR) / "flower" / LOCAL_HOST_FILE).unlink()
    round_ = approved_round(run)
    before = LedgerEntry.objects.count()

    response = ask(api, service, run)

    assert response.status_code == 409, response.json()
    assert response.json()["allowed"] is False
    assert "placement is verified" in response.json()["reason"]
    assert LedgerEntry.objects.count() == before
    assert not RoundTicket.objects.exists()
    assert Round.objects.get(pk=round_.pk).state == RoundState.APPROVED


def test_round_in_provisioning_gets_409_too(api, service):
    run, _sites, _ = governed_scenario()
    round_ = approved_round(run)
    Round.objects.filter(pk=round_.pk).update(state=RoundState.PROVISIONING)
    before = LedgerEntry.objects.count()

    assert ask(api, service, run).status_code == 409
    assert LedgerEntry.objects.count() == before
    assert not RoundTicket.objects.exists()


def test_local_host_in_germany_places_the_round_and_the_ticket_follows(api, service):
    run, sites, _ = governed_scenario()

    response = ask(api, service, run)

    assert response.status_code == 201, response.json()
    placed = event("round.placement_verified")
    assert placed["host_country"] == "DE"
    assert placed["site_ids"] == [s.pk for s in sites]
    order = list(LedgerEntry.objects.order_by("seq").values_list("event_type", flat=True))
    assert order.index("round.placement_verified") < order.index("ticket.issued")


def test_local_host_outside_the_datasets_countries_blocks_the_round(api, service, local_host):
    run, sites, datasets = governed_scenario()
    local_host([s.slug for s in sites], country="FR")
    # The policy allows the EEA, but the controller told the processor: Germany only.
    Dataset.objects.filter(pk__in=[d.pk for d in datasets]).update(processing_countries=["DE"])

    response = ask(api, service, run)

    assert response.status_code == 200
    assert response.json()["allowed"] is False
    round_ = Round.objects.get(run=run, number=1)
    assert round_.state == RoundState.BLOCKED
    assert "is in FR, outside DE" in round_.state_reason
    assert not RoundTicket.objects.exists()
    blocked = event("round.blocked")
    assert set(blocked["blocked_sites"]) == {s.slug for s in sites}


def test_local_host_outside_the_policy_areas_blocks_the_round(api, service, local_host):
    run, sites, _ = governed_scenario()
    local_host([s.slug for s in sites], country="US")

    response = ask(api, service, run)

    assert response.json()["allowed"] is False
    assert Round.objects.get(run=run, number=1).state == RoundState.BLOCKED
    assert not RoundTicket.objects.exists()


def test_unconfigured_host_country_is_never_assumed(api, service, local_host):
    run, sites, _ = governed_scenario()
    local_host([s.slug for s in sites], country="")

    response = ask(api, service, run)

    assert response.json()["allowed"] is False
    round_ = Round.objects.get(run=run, number=1)
    assert round_.state == RoundState.BLOCKED
    assert "FEDGOV_LOCAL_HOST_COUNTRY" in round_.state_reason
    assert not RoundTicket.objects.exists()


def test_site_whose_supernode_is_not_on_this_host_is_left_out(api, service, local_host):
    run, sites, _ = governed_scenario()
    local_host([s.slug for s in sites[:2]])

    response = ask(api, service, run)

    assert response.status_code == 201, response.json()
    placed = event("round.placement_verified")
    assert placed["site_ids"] == [s.pk for s in sites[:2]]
    assert sites[2].slug in placed["blocked_sites"]
    sites[2].refresh_from_db()
    assert sites[2].flower_node_id == ""  # unbound: no ticket can name it


def test_ticket_service_refuses_an_approved_round_however_it_is_called(three_sites):
    from tests.factories import RoundFactory
    from tests.training.flower.conftest import gate_round
    from training.services.flower import round_ticket_issue

    round_ = RoundFactory(number=1, state=RoundState.APPROVED)
    gate_round(round_, three_sites)
    from fedgov.errors import TransitionNotAllowed

    with pytest.raises(TransitionNotAllowed, match="placement is verified"):
        round_ticket_issue(actor=ACTOR, round=round_)
    assert not RoundTicket.objects.exists()
    assert not LedgerEntry.objects.filter(event_type="ticket.issued").exists()
