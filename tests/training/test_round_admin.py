"""Round admin for operators: evidence renders, decisions go through the round services."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    RoundFactory,
    RunFactory,
    SiteFactory,
    UserFactory,
    login_verified,
    verified_actor,
)
from training.choices import ApprovalDecision, RoundState
from training.models import Approval, Round
from training.services.gate import round_gate
from training.services.rounds import round_approve, round_route_after_gate

pytestmark = pytest.mark.django_db


def staff(username: str, *role_names: str):
    return UserFactory(username=username, is_staff=True, roles=role_names)


@pytest.fixture
def alice():
    """The operator who requested the run and its rounds."""
    return staff("alice", roles.OPERATOR)


@pytest.fixture
def bob():
    return staff("bob", roles.OPERATOR)


@pytest.fixture
def awaiting(alice) -> Round:
    """A round gated for real (one site in the EEA, one computing in the US), now waiting."""
    policy = PolicyFactory(requires_approval=True, approvals_required=1)
    run = RunFactory(policy=policy, requested_by=alice, requested_by_name="alice")
    DpiaFactory(run=run)
    eea = DatasetFactory(site=SiteFactory(slug="de-legal", country="DE"), record_count=3)
    us = DatasetFactory(site=SiteFactory(slug="nl-media", compute_country="US"), record_count=2)
    run.datasets.add(eea, us)
    for ds, n in ((eea, 3), (us, 2)):
        for _ in range(n):
            ConsentFactory(dataset=ds, purpose=run.purpose)
    decision = round_gate(actor=Actor.of(alice), run=run, round_no=1)
    round_route_after_gate(actor=Actor.of(alice), round=decision.round)
    decision.round.refresh_from_db()
    assert decision.round.state == RoundState.AWAITING_APPROVAL
    return decision.round


def change_url(round_: Round) -> str:
    return reverse("admin:training_round_change", args=[round_.pk])


def decide_url(round_: Round, decision: str) -> str:
    return reverse("admin:training_round_decide", args=[round_.pk, decision])


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_change_page_shows_state_gate_per_site_and_rule_and_what_is_missing(client, awaiting, bob):
    login_verified(client, bob)

    html = client.get(change_url(awaiting)).content.decode()

    assert "Awaiting approval" in html
    assert "requires human approval" in html  # the state reason
    # Latest gate decision, per site and rule, with article, verdict and reason.
    assert "de-legal" in html and "nl-media" in html
    assert "Art. 44 + policy" in html
    assert "compute in US is outside the policy" in html
    assert "✓ pass" in html and "✗ fail" in html
    # Eligibility and records: de-legal is eligible with its three consented records.
    assert 'id="eligibility"' in html
    assert "<td>3</td>" in html
    # Nothing approved yet, and the page says what is missing.
    assert "No approvals or rejections yet." in html
    assert "1 more approval from distinct operators (have 0 of 1)" in html
    # The decisions an operator may take here, and no save button.
    assert decide_url(awaiting, "approve") in html
    assert decide_url(awaiting, "reject") in html
    assert decide_url(awaiting, "abort") in html
    assert 'name="_save"' not in html
    # The round's history in the ledger.
    assert "gate.decided" in html and "round.awaiting_approval" in html


def test_changelist_renders_with_state_and_run_filters(client, awaiting, bob):
    RoundFactory(run=awaiting.run, number=2, state=RoundState.CLOSED)
    RoundFactory(number=1, state=RoundState.RUNNING)  # another run, so the run filter shows
    login_verified(client, bob)

    page = client.get(
        reverse("admin:training_round_changelist"), {"state__exact": "awaiting_approval"}
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert '<span class="fg-state fg-wait">Awaiting approval</span>' in html
    assert '<span class="fg-state fg-ok">Closed</span>' not in html
    assert "By state" in html and "By run" in html
    assert "approve_rounds" in html and "reject_rounds" in html and "abort_rounds" in html
    assert "delete_selected" not in html


def test_approve_action_asks_for_a_reason_first(client, awaiting, bob):
    login_verified(client, bob)
    url = reverse("admin:training_round_changelist")

    page = client.post(url, {"action": "approve_rounds", "_selected_action": [awaiting.pk]})

    assert page.status_code == 200
    assert 'name="reason"' in page.content.decode()
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.AWAITING_APPROVAL
    assert not Approval.objects.exists()


def test_approve_action_by_second_operator_moves_the_round(client, awaiting, bob):
    login_verified(client, bob)
    url = reverse("admin:training_round_changelist")

    response = client.post(
        url,
        {
            "action": "approve_rounds",
            "_selected_action": [awaiting.pk],
            "index": "0",
            "apply": "1",
            "reason": "gate table checked; nl-media excluded as expected",
        },
    )

    assert response.status_code == 302
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.APPROVED
    approval = Approval.objects.get()
    assert (approval.approver_name, approval.decision) == ("bob", ApprovalDecision.APPROVE)
    assert approval.reason == "gate table checked; nl-media excluded as expected"
    events = LedgerEntry.objects.order_by("seq").values_list("event_type", flat=True)
    assert list(events)[-2:] == ["round.approval_recorded", "round.approved"]
    assert any("now approved" in m for m in texts(response))


def test_requester_is_refused_with_a_message_not_an_error_page(client, awaiting, alice):
    login_verified(client, alice)
    page = client.get(change_url(awaiting)).content.decode()
    assert 'id="four-eyes"' in page and decide_url(awaiting, "approve") not in page

    response = client.post(decide_url(awaiting, "approve"), {"reason": "my own round is fine"})

    assert response.status_code == 302
    assert response["Location"] == change_url(awaiting)
    [message] = texts(response)
    assert "refused" in message and "the requester of a round may not approve" in message
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.AWAITING_APPROVAL
    assert not Approval.objects.exists()


def test_empty_reason_is_asked_again_and_nothing_is_written(client, awaiting, bob):
    login_verified(client, bob)
    before = LedgerEntry.objects.count()

    page = client.post(decide_url(awaiting, "approve"), {"reason": "   "})

    assert page.status_code == 200
    assert "This field is required." in page.content.decode()
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.AWAITING_APPROVAL
    assert LedgerEntry.objects.count() == before


def test_reject_from_the_round_page_ends_it_with_the_reason(client, awaiting, bob):
    login_verified(client, bob)
    assert 'name="reason"' in client.get(decide_url(awaiting, "reject")).content.decode()

    response = client.post(decide_url(awaiting, "reject"), {"reason": "DPIA under review"})

    assert response.status_code == 302
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.REJECTED
    assert awaiting.state_reason == "rejected by bob: DPIA under review"
    assert LedgerEntry.objects.filter(event_type="round.rejected").count() == 1


def test_abort_action_stops_a_running_round(client, bob):
    running = RoundFactory(number=1, state=RoundState.RUNNING)
    login_verified(client, bob)

    response = client.post(
        reverse("admin:training_round_changelist"),
        {
            "action": "abort_rounds",
            "_selected_action": [running.pk],
            "apply": "1",
            "reason": "site reported a data incident",
        },
    )

    assert response.status_code == 302
    running.refresh_from_db()
    assert running.state == RoundState.ABORTED
    assert "site reported a data incident" in running.state_reason
    assert LedgerEntry.objects.filter(event_type="round.aborted").count() == 1


def test_wrong_state_and_expired_approvals_show_as_messages(client, awaiting, bob, settings):
    closed = RoundFactory(number=5, state=RoundState.CLOSED)
    login_verified(client, bob)

    response = client.post(decide_url(closed, "abort"), {"reason": "too late"})

    assert response.status_code == 302
    assert any("refused" in m and "closed" in m for m in texts(response))
    closed.refresh_from_db()
    assert closed.state == RoundState.CLOSED

    # An approval that has lapsed is shown as such, and the page says it is missing again.
    settings.FEDGOV_APPROVAL_TTL = dt.timedelta(seconds=-1)
    awaiting.run.policy.approvals_required = 2
    awaiting.run.policy.save(update_fields=["approvals_required"])
    round_approve(actor=verified_actor(bob), round=awaiting, reason="first of two")
    html = client.get(change_url(awaiting)).content.decode()
    assert "expired" in html
    assert "2 more approvals from distinct operators (have 0 of 2)" in html


def test_rounds_refuse_add_change_and_delete(client, awaiting, bob):
    login_verified(client, bob)

    assert client.get(reverse("admin:training_round_add")).status_code == 403
    edit = client.post(change_url(awaiting), {"state": "closed", "state_reason": "edited"})
    assert edit.status_code == 403
    delete = client.post(reverse("admin:training_round_delete", args=[awaiting.pk]), {"post": 1})
    assert delete.status_code == 403
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.AWAITING_APPROVAL


def test_auditor_sees_rounds_but_may_not_decide(client, awaiting):
    auditor = staff("audrey", roles.AUDITOR)
    client.force_login(auditor)

    html = client.get(change_url(awaiting)).content.decode()
    assert "Latest gate decision" in html
    assert decide_url(awaiting, "approve") not in html
    assert client.get(decide_url(awaiting, "approve")).status_code == 403
    assert client.post(decide_url(awaiting, "approve"), {"reason": "x"}).status_code == 403
    listing = client.get(reverse("admin:training_round_changelist")).content.decode()
    assert "approve_rounds" not in listing
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.AWAITING_APPROVAL
