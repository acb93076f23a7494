"""The human flow without the service role: the worker gates and moves rounds; re-gating.

The oned stand-in runs in-process; the worker's tasks are called synchronously, as a
worker would run them. Only the broker (outside this process) is replaced, by a recorder
that runs the queued task when the transaction's on-commit hooks fire.
"""

from __future__ import annotations

import pytest

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from sites.services import site_activate, site_suspend
from tests.factories import (
    DatasetFactory,
    PolicyFactory,
    PurposeFactory,
    SiteFactory,
    UserFactory,
    verified_actor,
)
from tests.opennebula.conftest import (  # noqa: F401 - fixtures used by name
    live_vms,
    one_settings,
    standin,
)
from tests.training.test_orchestrate import all_live_vms, federation  # noqa: F401
from training import tasks
from training.choices import RoundState
from training.models import GateDecision, Round, TrainingRun
from training.services.handoff import round_regate
from training.services.rounds import round_approve
from training.services.runs import run_create

pytestmark = pytest.mark.django_db
S = RoundState


@pytest.fixture
def broker(settings, monkeypatch):
    """A broker is configured; what is queued is recorded and run as the worker would."""
    settings.CELERY_BROKER_URL = "memory://"
    queued: list[tuple[str, tuple]] = []

    def recorder(task):
        def delay(*args):
            queued.append((task.name, args))
            return task(*args)

        return delay

    for task in (tasks.run_start, tasks.round_drive):
        monkeypatch.setattr(task, "delay", recorder(task))
    return queued


def test_a_run_that_can_never_pass_its_policy_is_refused_with_the_reason():
    policy = PolicyFactory(min_eligible_sites=3)
    purpose = PurposeFactory()
    site = SiteFactory()
    datasets = [DatasetFactory(site=site, purposes=[purpose]) for _ in range(2)]
    before = LedgerEntry.objects.count()
    operator = UserFactory(username="op", roles=[roles.OPERATOR])

    with pytest.raises(InvalidInput) as refused:
        run_create(
            actor=Actor.of(operator),
            name="doomed",
            purpose=purpose,
            datasets=datasets,
            policy=policy,
            aggregator_country="DE",
        )

    assert "needs at least 3 eligible sites; this run's datasets come from 1" in str(
        refused.value.errors["policy"]
    )
    assert not TrainingRun.objects.exists()
    assert LedgerEntry.objects.count() == before


def test_without_a_broker_creating_a_run_queues_nothing(
    settings, django_capture_on_commit_callbacks
):
    settings.CELERY_BROKER_URL = ""
    purpose = PurposeFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(
            actor=Actor.of(UserFactory(username="op", roles=[roles.OPERATOR])),
            name="quiet",
            purpose=purpose,
            datasets=[DatasetFactory(purposes=[purpose])],
            policy=PolicyFactory(),
            aggregator_country="DE",
        )
    assert not Round.objects.filter(run=run).exists()


def test_a_run_whose_creator_drives_its_rounds_queues_no_gate_even_with_a_broker(
    broker, django_capture_on_commit_callbacks
):
    # manage.py federate in broker mode approves the DPIA after creating the run: a
    # worker gating round 1 at once would block it on a draft DPIA (seen on PostgreSQL).
    purpose = PurposeFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(
            actor=Actor.of(UserFactory(username="op", roles=[roles.OPERATOR])),
            name="driven",
            purpose=purpose,
            datasets=[DatasetFactory(purposes=[purpose])],
            policy=PolicyFactory(),
            aggregator_country="DE",
            start_on_worker=False,
        )
    assert broker == []
    assert not Round.objects.filter(run=run).exists()


def test_the_worker_gates_a_new_run_and_moves_it_on_after_a_second_operators_approval(
    federation,  # noqa: F811
    standin,  # noqa: F811
    broker,
    django_capture_on_commit_callbacks,
):
    template, _sites = federation(requires_approval=True)
    requester = UserFactory(username="op-requester", roles=[roles.OPERATOR])
    # A person creates a run; nobody holds the service role.
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(
            actor=Actor.of(requester),
            name="by-hand",
            purpose=template.purpose,
            datasets=list(template.datasets.all()),
            policy=template.policy,
            aggregator_country="DE",
        )
    from training.services.runs import dpia_approve, dpia_record

    dpo = Actor.of(UserFactory(username="dpo", roles=[roles.DPO]))
    dpia = dpia_record(actor=dpo, run=run, reference="DPIA-hand", document_hash="a" * 64)
    dpia_approve(actor=dpo, dpia=dpia, valid_until=template.dpia.valid_until)
    assert broker == [("training.run_start", (run.pk, 1))]
    # The task ran before the DPIA existed: the gate blocked round 1 for that reason.
    round_ = Round.objects.get(run=run, number=1)
    assert round_.state == S.BLOCKED

    # The DPIA is now approved: re-gate. A new decision; the first one is kept.
    first = GateDecision.objects.get(round=round_)
    round_regate(actor=Actor.of(requester), round=round_, reason="DPIA approved")
    round_.refresh_from_db()
    assert round_.state == S.AWAITING_APPROVAL
    decisions = list(GateDecision.objects.filter(round=round_).order_by("pk"))
    assert decisions[0].pk == first.pk and len(decisions) == 2
    assert decisions[0].outcome == first.outcome and decisions[1].pk != first.pk
    assert all_live_vms(standin) == []

    second = UserFactory(username="op-second", roles=[roles.OPERATOR])
    with django_capture_on_commit_callbacks(execute=True):
        round_approve(actor=verified_actor(second), round=round_, reason="gate reviewed")

    assert broker[-1] == ("training.round_drive", (round_.pk,))
    round_.refresh_from_db()
    assert round_.state == S.RUNNING
    assert len(all_live_vms(standin)) == 3


def test_a_blocked_round_is_re_gated_as_a_new_decision_once_the_facts_change(
    federation,  # noqa: F811
    standin,  # noqa: F811
):
    run, sites = federation(min_eligible_sites=3)
    dpo = Actor.of(UserFactory(username="dpo", roles=[roles.DPO]))
    site_suspend(actor=dpo, site=sites[0], reason="agreement under review")
    tasks.run_start(run.pk, 1)
    round_ = Round.objects.get(run=run, number=1)
    assert round_.state == S.BLOCKED
    first = GateDecision.objects.get(round=round_)

    # Nothing changed yet: a re-gate is allowed, but blocks again with a second decision.
    round_regate(actor=dpo, round=round_, reason="try again")
    round_.refresh_from_db()
    assert round_.state == S.BLOCKED
    assert GateDecision.objects.filter(round=round_).count() == 2

    site_activate(actor=dpo, site=sites[0], reason="agreement renewed")
    decision = round_regate(actor=dpo, round=round_, reason="agreement renewed")

    round_.refresh_from_db()
    assert decision.outcome != first.outcome
    assert GateDecision.objects.filter(round=round_).count() == 3
    assert GateDecision.objects.get(pk=first.pk).outcome == first.outcome  # kept, unchanged
    assert LedgerEntry.objects.filter(event_type="round.regate_requested").count() == 2
    assert round_.state not in (S.BLOCKED, S.PLANNED)


@pytest.mark.parametrize("state", [S.AWAITING_APPROVAL, S.CLOSED, S.REJECTED, S.PLANNED])
def test_only_a_blocked_round_can_be_re_gated(state, federation):  # noqa: F811
    run, _sites = federation()
    round_ = Round.objects.create(run=run, number=1, state=state, requested_by_name="t")
    with pytest.raises(TransitionNotAllowed):
        round_regate(actor=Actor.system("t"), round=round_, reason="why not")
    assert not GateDecision.objects.filter(round=round_).exists()


def test_a_re_gate_needs_a_reason(federation):  # noqa: F811
    run, _sites = federation()
    round_ = Round.objects.create(run=run, number=1, state=S.BLOCKED, requested_by_name="t")
    with pytest.raises(InvalidInput):
        round_regate(actor=Actor.system("t"), round=round_, reason="  ")


def test_the_round_admin_offers_re_gate_on_a_blocked_round_and_it_makes_a_new_decision(
    client,
    federation,  # noqa: F811
    settings,
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    run, sites = federation(min_eligible_sites=3)
    dpo_user = UserFactory(username="dpo", is_staff=True, roles=[roles.DPO])
    auditor = UserFactory(username="aud", is_staff=True, roles=[roles.AUDITOR])
    site_suspend(actor=Actor.of(dpo_user), site=sites[0], reason="review")
    tasks.run_start(run.pk, 1)
    round_ = Round.objects.get(run=run, number=1)
    change = f"/admin/training/round/{round_.pk}/change/"
    regate = f"/admin/training/round/{round_.pk}/decide/regate/"

    client.force_login(auditor)
    assert regate not in client.get(change).content.decode()
    assert client.post(regate, {"reason": "auditor tries"}).status_code == 403

    client.force_login(dpo_user)
    assert regate in client.get(change).content.decode()
    site_activate(actor=Actor.of(dpo_user), site=sites[0], reason="renewed")
    assert client.post(regate, {"reason": "agreement renewed"}).status_code == 302
    assert GateDecision.objects.filter(round=round_).count() == 2


def test_an_operator_starts_the_next_round_in_the_admin_one_at_a_time(
    client,
    federation,  # noqa: F811
    settings,
    broker,
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    run, _sites = federation(num_rounds=1, requires_approval=True)
    operator = UserFactory(username="op", is_staff=True, roles=[roles.OPERATOR])
    client.force_login(operator)
    changelist = "/admin/training/trainingrun/"
    start = {"action": "start_next_rounds", "_selected_action": [run.pk]}

    client.post(changelist, start)
    round_ = Round.objects.get(run=run, number=1)
    # Gated in the request; the worker routed it on: it waits for a second operator.
    assert broker == [("training.round_drive", (round_.pk,))]
    assert round_.state == S.AWAITING_APPROVAL

    # Round 1 has not ended: no second round, and the reason is shown.
    page = client.post(changelist, start, follow=True).content.decode()
    assert "start the next once it ends" in page
    assert Round.objects.filter(run=run).count() == 1

    Round.objects.filter(pk=round_.pk).update(state=S.CLOSED)
    page = client.post(changelist, start, follow=True).content.decode()
    assert "the run has had all its 1 rounds" in page
    assert Round.objects.filter(run=run).count() == 1


def test_an_auditor_cannot_start_a_round(client, federation):  # noqa: F811
    run, _sites = federation()
    client.force_login(UserFactory(username="aud", is_staff=True, roles=[roles.AUDITOR]))
    client.post(
        "/admin/training/trainingrun/",
        {"action": "start_next_rounds", "_selected_action": [run.pk]},
    )
    assert not Round.objects.filter(run=run).exists()
