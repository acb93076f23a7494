"""The round state machine and four-eyes approval."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from sites.models import SiteSteward
from tests.factories import (
    DatasetFactory,
    PolicyFactory,
    RoundFactory,
    RunFactory,
    verified,
    verified_actor,
)
from training.choices import RoundState
from training.models import Approval, Round
from training.services.rounds import (
    round_abort,
    round_approve,
    round_check_approvals_current,
    round_reject,
    round_route_after_gate,
    round_transition,
)
from training.statemachine import ALLOWED_TRANSITIONS, can_transition

pytestmark = pytest.mark.django_db


def _awaiting_round(requester, **policy_fields):
    policy = PolicyFactory(requires_approval=True, **policy_fields)
    run = RunFactory(policy=policy, requested_by=requester, requested_by_name=requester.username)
    return RoundFactory(
        run=run,
        number=1,
        state=RoundState.AWAITING_APPROVAL,
        requested_by=requester,
        requested_by_name=requester.username,
    )


def test_no_transition_leaves_a_terminal_state():
    for terminal in ("rejected", "closed", "failed", "aborted"):
        assert terminal not in ALLOWED_TRANSITIONS
        assert not can_transition(terminal, "running")
    # Issue #18: a blocked round may only be re-gated (back to planned, a new decision).
    assert ALLOWED_TRANSITIONS["blocked"] == {"planned"}


def test_approval_by_second_operator_approves_round(make_user):
    requester = make_user(roles.OPERATOR, username="alice")
    approver = make_user(roles.OPERATOR, username="bob")
    round_ = _awaiting_round(requester)

    round_approve(actor=verified_actor(approver), round=round_, reason="checked the gate table")

    round_.refresh_from_db()
    assert round_.state == RoundState.APPROVED
    events = list(LedgerEntry.objects.values_list("event_type", flat=True))
    assert events == ["round.approval_recorded", "round.approved"]


def test_requester_may_not_approve_own_round(make_user):
    requester = make_user(roles.OPERATOR, username="alice")
    round_ = _awaiting_round(requester)

    with pytest.raises(InvalidInput) as err:
        round_approve(actor=verified_actor(requester), round=round_, reason="looks fine")

    assert "approver" in err.value.errors
    round_.refresh_from_db()
    assert round_.state == RoundState.AWAITING_APPROVAL
    assert not Approval.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_user_without_operator_role_may_not_approve(make_user):
    requester = make_user(roles.OPERATOR, username="alice")
    legal = make_user(roles.LEGAL, username="lena")
    round_ = _awaiting_round(requester)

    with pytest.raises(InvalidInput):
        round_approve(actor=verified_actor(legal), round=round_, reason="ok")


def test_policy_asking_two_approvals_waits_for_a_second_distinct_person(make_user):
    requester = make_user(roles.OPERATOR, username="alice")
    bob = make_user(roles.OPERATOR, username="bob")
    carol = make_user(roles.DPO, username="carol")
    round_ = _awaiting_round(requester, approvals_required=2)

    round_approve(actor=verified_actor(bob), round=round_, reason="first look")
    round_.refresh_from_db()
    assert round_.state == RoundState.AWAITING_APPROVAL
    with pytest.raises(InvalidInput):
        round_approve(actor=verified_actor(bob), round=round_, reason="again, same person")

    round_approve(actor=verified_actor(carol), round=round_, reason="second look")
    round_.refresh_from_db()
    assert round_.state == RoundState.APPROVED


def test_policy_asking_controller_dpos_waits_for_each_controller(make_user):
    requester = make_user(roles.OPERATOR, username="alice")
    operator = make_user(roles.OPERATOR, username="bob")
    dpo_de = make_user(roles.DPO, username="dpo-de")
    round_ = _awaiting_round(requester, requires_controller_dpo_approval=True)
    dataset = DatasetFactory(site__slug="de-legal")
    round_.run.datasets.add(dataset)
    SiteSteward.objects.create(user=dpo_de, site=dataset.site)

    round_approve(actor=verified_actor(operator), round=round_, reason="operator ok")
    round_.refresh_from_db()
    assert round_.state == RoundState.AWAITING_APPROVAL

    round_approve(actor=verified_actor(dpo_de), round=round_, reason="controller DPO ok")
    round_.refresh_from_db()
    assert round_.state == RoundState.APPROVED


def test_expired_approval_sends_round_back_to_awaiting(make_user, settings):
    requester = make_user(roles.OPERATOR, username="alice")
    approver = make_user(roles.OPERATOR, username="bob")
    round_ = _awaiting_round(requester)
    round_approve(actor=verified_actor(approver), round=round_, reason="ok")
    Approval.objects.update(expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    round_.refresh_from_db()

    round_check_approvals_current(actor=Actor.system("test"), round=round_)

    round_.refresh_from_db()
    assert round_.state == RoundState.AWAITING_APPROVAL
    assert "expired" in round_.state_reason


def test_reject_ends_round_with_reason(make_user):
    requester = make_user(roles.OPERATOR, username="alice")
    approver = make_user(roles.OPERATOR, username="bob")
    round_ = _awaiting_round(requester)

    round_reject(actor=verified_actor(approver), round=round_, reason="DPIA out of date")

    round_.refresh_from_db()
    assert round_.state == RoundState.REJECTED
    assert "DPIA out of date" in round_.state_reason


def test_abort_is_refused_after_the_round_ended(make_user):
    operator = make_user(roles.OPERATOR, username="bob")
    round_ = RoundFactory(state=RoundState.RUNNING)

    round_abort(actor=Actor.of(operator), round=round_, reason="site called")
    round_.refresh_from_db()
    assert round_.state == RoundState.ABORTED
    with pytest.raises(TransitionNotAllowed):
        round_abort(actor=Actor.of(operator), round=round_, reason="twice")
    assert LedgerEntry.objects.filter(event_type="round.aborted").count() == 1


def test_transition_outside_the_table_is_refused():
    round_ = RoundFactory(state=RoundState.PLANNED)
    with pytest.raises(TransitionNotAllowed):
        round_transition(
            actor=Actor.system("test"), round=round_, target=RoundState.RUNNING, reason="skip"
        )
    round_.refresh_from_db()
    assert round_.state == RoundState.PLANNED


def test_gated_round_waits_for_people_when_policy_asks():
    round_ = RoundFactory(state=RoundState.GATED, run__policy__requires_approval=True)
    round_route_after_gate(actor=Actor.system("test"), round=round_)
    round_.refresh_from_db()
    assert round_.state == RoundState.AWAITING_APPROVAL


def test_gated_round_is_approved_when_policy_needs_no_person():
    round_ = RoundFactory(state=RoundState.GATED, run__policy__requires_approval=False)
    round_route_after_gate(actor=Actor.system("test"), round=round_)
    round_.refresh_from_db()
    assert round_.state == RoundState.APPROVED


def _race(workers):
    barrier = threading.Barrier(len(workers))
    outcomes = []

    def run(fn):
        barrier.wait()
        try:
            fn()
            outcomes.append("ok")
        except (InvalidInput, TransitionNotAllowed) as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_approvals_give_exactly_one_transition(make_user):
    requester = make_user(roles.OPERATOR, username="alice")
    approvers = [make_user(roles.OPERATOR, username=f"op{i}") for i in range(20)]
    round_ = _awaiting_round(requester)

    # Each approver passed the second factor before the race, as in their own session.
    actors = [verified_actor(u) for u in approvers]
    outcomes = _race(
        [(lambda a=a: round_approve(actor=a, round=round_, reason="race")) for a in actors]
    )

    round_.refresh_from_db()
    assert round_.state == RoundState.APPROVED
    assert outcomes.count("ok") == 1
    assert outcomes.count("TransitionNotAllowed") == 19
    assert LedgerEntry.objects.filter(event_type="round.approved").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_starts_give_exactly_one_transition():
    round_ = RoundFactory(state=RoundState.APPROVED)

    outcomes = _race(
        [
            lambda: round_transition(
                actor=Actor.system("worker"),
                round=round_,
                target=RoundState.PROVISIONING,
                reason="start",
            )
        ]
        * 20
    )

    assert outcomes.count("ok") == 1
    assert Round.objects.get(pk=round_.pk).state == RoundState.PROVISIONING
    assert LedgerEntry.objects.filter(event_type="round.provisioning").count() == 1


def test_api_approve_by_second_operator_returns_new_state(make_user, api):
    requester = make_user(roles.OPERATOR, username="alice")
    approver = make_user(roles.OPERATOR, username="bob")
    round_ = _awaiting_round(requester)
    url = f"/api/v1/runs/{round_.run_id}/rounds/1/approve"

    response = api(verified(approver)).post(url, {"reason": "gate table reviewed"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == RoundState.APPROVED


def test_api_self_approval_is_a_400_naming_the_approver(make_user, api):
    requester = make_user(roles.OPERATOR, username="alice")
    round_ = _awaiting_round(requester)
    url = f"/api/v1/runs/{round_.run_id}/rounds/1/approve"

    response = api(verified(requester)).post(url, {"reason": "mine"}, format="json")

    assert response.status_code == 400
    assert "approver" in response.json()


def test_api_approve_without_reason_is_a_400(make_user, api):
    requester = make_user(roles.OPERATOR, username="alice")
    approver = make_user(roles.OPERATOR, username="bob")
    round_ = _awaiting_round(requester)
    url = f"/api/v1/runs/{round_.run_id}/rounds/1/approve"

    response = api(approver).post(url, {}, format="json")

    assert response.status_code == 400
    assert "reason" in response.json()


def test_api_abort_of_ended_round_is_a_409(make_user, api):
    operator = make_user(roles.OPERATOR, username="bob")
    round_ = RoundFactory(state=RoundState.CLOSED, number=1)
    url = f"/api/v1/runs/{round_.run_id}/rounds/1/abort"

    response = api(operator).post(url, {"reason": "late"}, format="json")

    assert response.status_code == 409


@pytest.mark.parametrize("role", [roles.LEGAL, roles.AUDITOR, roles.SITE_STEWARD, roles.SERVICE])
def test_api_round_actions_refused_to_other_roles(make_user, api, role):
    requester = make_user(roles.OPERATOR, username="alice")
    other = make_user(role, username="someone")
    round_ = _awaiting_round(requester)
    for action in ("approve", "reject", "abort"):
        url = f"/api/v1/runs/{round_.run_id}/rounds/1/{action}"
        assert api(other).post(url, {"reason": "x"}, format="json").status_code == 403
    assert api().post(url, {"reason": "x"}, format="json").status_code in (401, 403)
