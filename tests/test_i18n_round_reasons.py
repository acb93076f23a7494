"""A round's state reason is data too: fedgov writes a code with params (issue 19, part 2).

The stored English text and the ledger's copy stay what they were; admin, dashboard, API
(on request) and the PDF render the code in the reader's language; a person's typed words
stay as typed; a row from before codes shows its stored text.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import translation

from audit.models import LedgerEntry
from fedgov import roles
from tests.factories import RunFactory, UserFactory, login_verified, verified_actor
from training.choices import RoundState
from training.gate.messages import render
from training.models import Round
from training.reasons import round_reason_in
from training.services.rounds import round_abort, round_route_after_gate

pytestmark = pytest.mark.django_db

TYPED = "Zeugenaussage fehlt – bitte prüfen"  # a person's words, in whatever language


@pytest.fixture
def gated_round():
    run = RunFactory(num_rounds=2)
    run.policy.requires_approval = True
    run.policy.save()
    return Round.objects.create(run=run, number=1, state=RoundState.GATED)


@pytest.fixture
def operator():
    return UserFactory(username="op-rr", is_staff=True, roles=[roles.OPERATOR, roles.DPO])


def test_fedgovs_reason_is_stored_as_a_code_and_its_english_text(gated_round, operator):
    with translation.override("pl"):  # the writer's language never matters
        round_ = round_route_after_gate(actor=verified_actor(operator), round=gated_round)
    round_.refresh_from_db()
    policy = round_.run.policy
    english = f"policy {policy.name} v{policy.version} requires human approval"
    assert round_.state_reason == english  # as before codes: search and logs unchanged
    assert round_.state_reason_code == "round.requires_approval"
    assert round_.state_reason_params == {"policy": policy.name, "version": policy.version}
    assert render({"code": round_.state_reason_code, "params": round_.state_reason_params}) == (
        english
    )
    entry = LedgerEntry.objects.filter(event_type="round.awaiting_approval").latest("seq")
    assert json.loads(entry.payload)["reason"] == english  # the ledger: English, no code


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("de", "verlangt eine Freigabe durch Menschen"),
        ("es", "exige aprobación humana"),
        ("pl", "wymaga zatwierdzenia przez człowieka"),
        ("fr", "exige une validation humaine"),
    ],
)
def test_the_round_reason_renders_in_each_language(gated_round, operator, lang, text):
    round_ = round_route_after_gate(actor=verified_actor(operator), round=gated_round)
    assert text in round_reason_in(lang, round_)
    assert "requires human approval" not in round_reason_in(lang, round_)


def test_a_persons_typed_reason_stays_as_typed_inside_the_translation(gated_round, operator):
    actor = verified_actor(operator)
    round_ = round_abort(actor=actor, round=gated_round, reason=f"  {TYPED} ")
    round_.refresh_from_db()
    assert round_.state_reason_code == "round.aborted_by"
    assert round_.state_reason == f"aborted by {actor.label}: {TYPED}"
    assert round_reason_in("fr", round_) == f"interrompu par {actor.label} : {TYPED}"
    assert round_reason_in("de", round_) == f"abgebrochen von {actor.label}: {TYPED}"


@pytest.mark.parametrize(
    ("code", "params", "english"),
    [
        # Written out: the stored English text must not change with codes.
        ("round.closed", {}, "round closed; a checkpoint covers its events"),
        ("round.ticket_issued", {"ticket": 12345}, "ticket 12345 issued"),
        (
            "round.provisioning_workloads",
            {},
            "provisioning SuperNode workloads for the eligible sites",
        ),
        (
            "round.placed_on_host_blocked",
            {
                "count": 2,
                "host": "h1",
                "country": "DE",
                "blocked": [
                    {
                        "code": "round.site_blocked",
                        "params": {"site": "pl-news", "why": {"code": "placement.not_on_host"}},
                    }
                ],
            },
            "2 sites placed on host h1 in DE; pl-news blocked: "
            "its SuperNode does not run on this host",
        ),
    ],
)
def test_codes_render_the_english_text_fedgov_always_stored(code, params, english):
    assert render({"code": code, "params": params}) == english


def test_a_ticket_id_is_not_grouped_for_a_reader():
    round_ = Round(
        state_reason="ticket 12345 issued",
        state_reason_code="round.ticket_issued",
        state_reason_params={"ticket": 12345},
    )
    assert round_reason_in("de", round_) == "Ticket 12345 ausgestellt"


def test_a_round_closed_before_codes_shows_its_stored_text(gated_round):
    Round.objects.filter(pk=gated_round.pk).update(
        state_reason="round closed; a checkpoint covers its events", state_reason_code=""
    )
    gated_round.refresh_from_db()
    assert round_reason_in("de", gated_round) == "round closed; a checkpoint covers its events"
    Round.objects.filter(pk=gated_round.pk).update(state_reason_code="round.retired")
    gated_round.refresh_from_db()
    assert round_reason_in("pl", gated_round) == "round closed; a checkpoint covers its events"


@pytest.mark.parametrize(
    ("lang", "text"),
    [("de", "verlangt eine Freigabe durch Menschen"), ("pl", "wymaga zatwierdzenia")],
)
def test_admin_and_dashboard_show_the_round_reason_in_the_readers_language(
    gated_round, operator, lang, text
):
    round_route_after_gate(actor=verified_actor(operator), round=gated_round)
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    login_verified(client, UserFactory(username=f"rr-{lang}", is_staff=True, roles=[roles.DPO]))
    for url in (
        f"/admin/training/round/{gated_round.pk}/change/",
        "/admin/training/round/",
        "/dashboard/",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.content.decode()
        assert text in html, url
        assert "requires human approval" not in html, url


def test_the_api_renders_the_round_reason_only_on_request(api, gated_round, operator, make_user):
    round_route_after_gate(actor=verified_actor(operator), round=gated_round)
    client = api(make_user(roles.DPO))
    url = f"/api/v1/rounds/{gated_round.pk}"
    neutral = client.get(url).json()
    assert neutral["state_reason_code"] == "round.requires_approval"
    assert neutral["state_reason"].endswith("requires human approval")
    assert neutral["state_reason_rendered"] is None
    asked = client.get(url + "?lang=es").json()
    assert "exige aprobación humana" in asked["state_reason_rendered"]
    assert asked["state_reason"] == neutral["state_reason"]
