"""Round tickets: fedgov signs them, a site's pure verifier refuses anything not quite right."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.keys import active_key
from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.errors import TransitionNotAllowed
from fedgov_flower.ticket import TicketRefused, exclusion_digest, key_id_of, verify_ticket
from tests.factories import RoundFactory
from tests.training.flower.conftest import gate_round
from training.choices import GateOutcome, RoundState
from training.gate.context import exclusion_digest as gate_exclusion_digest
from training.services.flower import round_ticket_issue

ACTOR = Actor.system("test")


def verify(ticket, **kwargs):
    return verify_ticket(
        body=ticket.body,
        signature=ticket.signature,
        key_id=ticket.key_id,
        public_keys=active_key().public_key,
        **kwargs,
    )


def test_ticket_names_eligible_sites_with_nodes_and_exclusion_digests(approved_round, three_sites):
    ticket = round_ticket_issue(actor=ACTOR, round=approved_round)

    parsed = verify(ticket, run_id=approved_round.run_id, round_no=1, site_id=three_sites[1].pk)
    assert [(s.slug, s.node_id) for s in parsed.sites] == [
        ("de-legal", "1000"),
        ("es-blogs", "1001"),
        ("pl-news", "1002"),
    ]
    es = parsed.site_by_slug("es-blogs")
    assert es.excluded_count == 2
    assert es.exclusion_digest == exclusion_digest(["es-blogs-s0003", "es-blogs-s0007"])
    assert parsed.decision_hash == approved_round.gate_decisions.get().snapshot_hash
    # The body is RFC 8785 canonical JSON, byte for byte.
    assert ticket.body.encode() == rfc8785.dumps(json.loads(ticket.body))


def test_ticket_issue_writes_ledger_event_with_body_hash(approved_round):
    ticket = round_ticket_issue(actor=ACTOR, round=approved_round)

    event = LedgerEntry.objects.get(event_type="ticket.issued")
    payload = json.loads(event.payload)
    assert payload["ticket_id"] == ticket.pk
    assert payload["round_number"] == 1
    assert set(payload) == {
        "ticket_id", "run_id", "round_id", "round_number", "decision_id", "decision_hash",
        "body_sha256", "key_id", "site_ids", "node_ids", "sites_without_node", "expires_at",
        "dp_plan", "message_type", "flower_run_id",
    }  # fmt: skip
    assert "de-legal" not in event.payload  # ids and hashes only


def test_ticket_refused_when_latest_gate_decision_blocked(approved_round, three_sites):
    gate_round(approved_round, three_sites, outcome=GateOutcome.BLOCKED)
    with pytest.raises(TransitionNotAllowed, match="did not allow"):
        round_ticket_issue(actor=ACTOR, round=approved_round)
    assert not LedgerEntry.objects.filter(event_type="ticket.issued").exists()


def test_ticket_refused_for_round_not_yet_approved(three_sites):
    round_ = RoundFactory(number=1, state=RoundState.AWAITING_APPROVAL)
    gate_round(round_, three_sites)
    with pytest.raises(TransitionNotAllowed, match="placement is verified"):
        round_ticket_issue(actor=ACTOR, round=round_)


def test_ticket_leaves_out_ineligible_and_unregistered_sites(three_sites):
    three_sites[2].flower_node_id = ""
    three_sites[2].save()
    round_ = RoundFactory(number=2, state=RoundState.PLACEMENT_VERIFIED)
    gate_round(round_, three_sites, eligible={"es-blogs", "pl-news"})

    ticket = verify(round_ticket_issue(actor=ACTOR, round=round_))
    assert [s.slug for s in ticket.sites] == ["es-blogs"]


def test_gate_and_ticket_compute_the_same_exclusion_digest():
    names = ["pl-news-s0099", "pl-news-s0001", "pl-news-s0050"]
    assert exclusion_digest(names) == gate_exclusion_digest(names)


# R7: forged, expired and other-round tickets: 3 of 3 refused.


def test_site_refuses_forged_ticket(approved_round, three_sites):
    ticket = round_ticket_issue(actor=ACTOR, round=approved_round)
    body = json.loads(ticket.body)
    body["sites"].append({**body["sites"][0], "site_id": 999, "node_id": "4242"})
    forged = rfc8785.dumps(body).decode()
    with pytest.raises(TicketRefused) as refused:
        verify_ticket(
            body=forged,
            signature=ticket.signature,
            key_id=ticket.key_id,
            public_keys=active_key().public_key,
            site_id=999,
        )
    assert refused.value.code == "bad_signature"


def test_site_refuses_ticket_signed_by_another_key(approved_round):
    ticket = round_ticket_issue(actor=ACTOR, round=approved_round)
    other = Ed25519PrivateKey.generate()
    signature = base64.b64encode(other.sign(ticket.body.encode())).decode()
    with pytest.raises(TicketRefused) as refused:
        verify_ticket(
            body=ticket.body,
            signature=signature,
            key_id=key_id_of(other.public_key()),
            public_keys=active_key().public_key,
        )
    assert refused.value.code == "unknown_key"


def test_site_refuses_expired_ticket(approved_round):
    ticket = round_ticket_issue(actor=ACTOR, round=approved_round)
    with pytest.raises(TicketRefused) as refused:
        verify(ticket, now=ticket.expires_at + timedelta(seconds=1))
    assert refused.value.code == "expired"


def test_site_refuses_ticket_of_another_round(approved_round, three_sites):
    ticket = round_ticket_issue(actor=ACTOR, round=approved_round)
    with pytest.raises(TicketRefused) as refused:
        verify(ticket, run_id=approved_round.run_id, round_no=2, site_id=three_sites[0].pk)
    assert refused.value.code == "wrong_round"


def test_site_refuses_ticket_not_naming_it(approved_round):
    ticket = round_ticket_issue(actor=ACTOR, round=approved_round)
    with pytest.raises(TicketRefused) as refused:
        verify(ticket, site_id=123456)
    assert refused.value.code == "site_not_named"
