"""Runs and DPIAs: services, their ledger events, and the runs/DPIAs/rounds API."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from sites.choices import PolicyStatus
from tests.factories import (
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    PurposeFactory,
    RoundFactory,
    RunFactory,
    sha,
)
from training.choices import DpiaStatus
from training.models import Dpia, TrainingRun
from training.services.runs import dpia_approve, dpia_record, run_create

pytestmark = pytest.mark.django_db

TODAY = dt.date.today()


def last_event() -> LedgerEntry:
    return LedgerEntry.objects.order_by("-seq").first()


def run_kwargs(**overrides):
    purpose = PurposeFactory(code="topics")
    values = {
        "name": "topics-2026",
        "purpose": purpose,
        "datasets": [DatasetFactory(purposes=[purpose]), DatasetFactory(purposes=[purpose])],
        "policy": PolicyFactory(status=PolicyStatus.PUBLISHED),
        "aggregator_country": "DE",
        "num_rounds": 3,
    }
    values.update(overrides)
    return values


def test_run_create_records_requester_and_writes_run_created(operator):
    kwargs = run_kwargs()
    run = run_create(actor=Actor.of(operator), **kwargs)

    assert run.requested_by == operator
    assert run.requested_by_name == "operator"
    assert set(run.datasets.all()) == set(kwargs["datasets"])
    entry = last_event()
    assert entry.event_type == "run.created"
    payload = json.loads(entry.payload)
    assert payload["policy_content_hash"] == kwargs["policy"].content_hash
    assert payload["dataset_ids"] == sorted(d.pk for d in kwargs["datasets"])
    assert payload["purpose"] == "topics"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"aggregator_country": "XX"}, "aggregator_country"),
        ({"num_rounds": 0}, "num_rounds"),
        ({"dp_mechanism": "laplace"}, "dp_mechanism"),
        ({"dp_mechanism": "central", "dp_noise_multiplier": 1.0}, "dp_clipping_norm"),
        ({"dp_mechanism": "central", "dp_clipping_norm": 1.0}, "dp_noise_multiplier"),
        (
            {"dp_mechanism": "central", "dp_clipping_norm": -1.0, "dp_noise_multiplier": 1.0},
            "dp_clipping_norm",
        ),
        ({"dp_clipping_norm": 1.0}, "dp_clipping_norm"),
        ({"dp_target_epsilon": float("inf")}, "dp_target_epsilon"),
        ({"on_refusal": "panic"}, "on_refusal"),
        ({"datasets": []}, "datasets"),
        ({"name": ""}, "name"),
    ],
)
def test_run_create_refuses_bad_input(operator, overrides, field):
    with pytest.raises(InvalidInput) as exc:
        run_create(actor=Actor.of(operator), **run_kwargs(**overrides))
    assert field in exc.value.errors
    assert not TrainingRun.objects.exists()


def test_run_create_needs_a_published_policy_and_no_withdrawn_dataset(operator):
    with pytest.raises(InvalidInput) as exc:
        run_create(
            actor=Actor.of(operator),
            **run_kwargs(policy=PolicyFactory(status=PolicyStatus.DRAFT, published_at=None)),
        )
    assert "publish it first" in exc.value.errors["policy"][0]

    gone = DatasetFactory(withdrawn_at=dt.datetime.now(dt.UTC))
    with pytest.raises(InvalidInput) as exc:
        run_create(actor=Actor.of(operator), **run_kwargs(name="other", datasets=[gone]))
    assert "withdrawn" in exc.value.errors["datasets"][0]
    assert not TrainingRun.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_dpia_record_then_approve_by_another_person(operator, dpo):
    run = RunFactory(requested_by=operator)
    dpia = dpia_record(actor=Actor.of(dpo), run=run, reference="DPIA-7", document_hash=sha("d"))
    assert dpia.status == DpiaStatus.DRAFT
    assert last_event().event_type == "dpia.recorded"

    until = TODAY + dt.timedelta(days=180)
    dpia = dpia_approve(actor=Actor.of(dpo), dpia=dpia, valid_until=until)
    assert (dpia.status, dpia.valid_until, dpia.approved_by) == (DpiaStatus.APPROVED, until, dpo)
    payload = json.loads(last_event().payload)
    assert last_event().event_type == "dpia.approved"
    assert payload["valid_until"] == until.isoformat()

    with pytest.raises(TransitionNotAllowed):
        dpia_approve(actor=Actor.of(dpo), dpia=dpia, valid_until=until)
    with pytest.raises(TransitionNotAllowed):
        dpia_record(actor=Actor.of(dpo), run=run, reference="DPIA-8", document_hash=sha("e"))


def test_dpia_approval_refuses_the_requester_and_a_process(make_user):
    requester = make_user(roles.DPO, username="requester")
    run = RunFactory(requested_by=requester)
    dpia = DpiaFactory(run=run, status=DpiaStatus.DRAFT, approved_at=None, valid_until=None)
    future = TODAY + dt.timedelta(days=30)

    with pytest.raises(InvalidInput, match="four-eyes"):
        dpia_approve(actor=Actor.of(requester), dpia=dpia, valid_until=future)
    with pytest.raises(InvalidInput, match="person"):
        dpia_approve(actor=Actor.system("cron"), dpia=dpia, valid_until=future)
    with pytest.raises(InvalidInput) as exc:
        dpia_approve(actor=Actor.of(make_user(roles.DPO)), dpia=dpia, valid_until="yesterday")
    assert "valid_until" in exc.value.errors
    dpia.refresh_from_db()
    assert dpia.status == DpiaStatus.DRAFT


@pytest.mark.parametrize(
    ("days", "late"),
    # valid_until is the last day covered (the gate's dpia rule, Art. 35): today is not
    # late, yesterday is.
    [(-400, True), (-1, True), (0, False), (1, False)],
)
def test_an_already_expired_dpia_is_recorded_and_flagged_late(make_user, days, late):
    """Facts about the past: a DPO records a DPIA that already expired; the ledger says so,
    with who recorded it and when, and the gate refuses the run."""
    dpia = DpiaFactory(status=DpiaStatus.DRAFT, approved_at=None, valid_until=None)
    until = TODAY + dt.timedelta(days=days)
    dpia = dpia_approve(actor=Actor.of(make_user(roles.DPO)), dpia=dpia, valid_until=until)
    assert (dpia.status, dpia.valid_until) == (DpiaStatus.APPROVED, until)
    entry = last_event()
    assert entry.event_type == "dpia.approved"
    assert json.loads(entry.payload)["recorded_late"] == (["valid_until"] if late else [])
    assert entry.actor_repr and entry.created_at


def test_dpia_record_refuses_a_bad_hash():
    with pytest.raises(InvalidInput) as exc:
        dpia_record(actor=Actor.system("t"), run=RunFactory(), reference="R", document_hash="x")
    assert "document_hash" in exc.value.errors
    assert not Dpia.objects.exists()


# ------------------------------------------------------------------------------- API


def test_operator_creates_a_run_via_api(api, operator):
    kwargs = run_kwargs()
    body = {
        "name": "topics-api",
        "purpose": "topics",
        "datasets": [d.pk for d in kwargs["datasets"]],
        "policy": kwargs["policy"].pk,
        "aggregator_country": "DE",
        "num_rounds": 2,
    }
    response = api(operator).post("/api/v1/runs", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["requested_by_name"] == "operator"
    assert response.json()["policy_version"] == kwargs["policy"].version


def test_run_with_draft_policy_via_api_is_400(api, operator):
    kwargs = run_kwargs(policy=PolicyFactory(status=PolicyStatus.DRAFT, published_at=None))
    body = {
        "name": "x",
        "purpose": "topics",
        "datasets": [d.pk for d in kwargs["datasets"]],
        "policy": kwargs["policy"].pk,
        "aggregator_country": "DE",
    }
    response = api(operator).post("/api/v1/runs", body, format="json")
    assert response.status_code == 400
    assert "policy" in response.json()


def test_dpia_record_and_approve_via_api(api, dpo, make_user):
    run = RunFactory(requested_by=make_user(roles.OPERATOR, username="op2"))
    client = api(dpo)
    response = client.post(
        "/api/v1/dpias",
        {"run": run.pk, "reference": "DPIA-1", "document_hash": sha("doc")},
        format="json",
    )
    assert response.status_code == 201, response.content
    dpia_id = response.json()["id"]
    response = client.post(
        f"/api/v1/dpias/{dpia_id}/approve",
        {"valid_until": str(TODAY + dt.timedelta(days=90))},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    assert client.get(f"/api/v1/runs/{run.pk}").json()["dpia"]["status"] == "approved"


def test_an_expired_dpia_recorded_via_api_is_flagged_late(api, dpo, make_user):
    run = RunFactory(requested_by=make_user(roles.OPERATOR, username="op3"))
    client = api(dpo)
    dpia_id = client.post(
        "/api/v1/dpias",
        {"run": run.pk, "reference": "DPIA-old", "document_hash": sha("old")},
        format="json",
    ).json()["id"]
    past = TODAY - dt.timedelta(days=30)
    response = client.post(
        f"/api/v1/dpias/{dpia_id}/approve", {"valid_until": str(past)}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["valid_until"] == str(past)
    assert json.loads(last_event().payload)["recorded_late"] == ["valid_until"]


def test_rounds_are_listed_read_only_and_filter_by_run(api, operator):
    first = RoundFactory(number=1)
    RoundFactory(number=1)
    client = api(operator)
    response = client.get(f"/api/v1/rounds?run={first.run_id}")
    assert [r["id"] for r in response.json()["results"]] == [first.pk]
    # Permission runs before method dispatch: no role may write here (403).
    assert client.post("/api/v1/rounds", {}, format="json").status_code == 403


def dp_policy(**changes):
    values = {"privacy_budget_epsilon": 3.0, "privacy_budget_delta": 1e-5, **changes}
    return PolicyFactory(status=PolicyStatus.PUBLISHED, **values)


def test_run_create_derives_the_noise_multiplier_from_a_target_epsilon(operator):
    from fedgov_flower.dp import AccountingSpec, privacy_spent

    run = run_create(
        actor=Actor.of(operator),
        **run_kwargs(
            policy=dp_policy(),
            dp_mechanism="central",
            dp_clipping_norm=1.0,
            dp_target_epsilon=3.0,
        ),
    )
    # Two datasets on two sites: the accountant's population is 2.
    spec = AccountingSpec(delta=1e-5, population_size=2)
    z = run.dp_noise_multiplier
    assert privacy_spent(spec, [z] * 3).epsilon <= 3.0 < privacy_spent(spec, [z - 1e-4] * 3).epsilon
    payload = json.loads(last_event().payload)
    assert payload["dp_mechanism"] == "central" and payload["dp_noise_multiplier"] == z
    assert payload["dp_target_epsilon"] == 3.0 and "epsilon_per_round" not in payload


@pytest.mark.parametrize(
    ("policy_changes", "run_changes", "field", "reason"),
    [
        ({"privacy_budget_delta": None, "privacy_budget_epsilon": None},
         {"dp_noise_multiplier": 1.0}, "dp_mechanism", "sets no δ"),
        ({"privacy_budget_delta": None, "privacy_budget_epsilon": None},
         {"dp_target_epsilon": 1.0}, "dp_target_epsilon", "sets no δ"),
        ({}, {"dp_target_epsilon": 1.0, "dp_noise_multiplier": 1.0}, "dp_noise_multiplier",
         "exactly one"),
    ],
)  # fmt: skip
def test_run_create_refuses_dp_it_cannot_account(
    operator, policy_changes, run_changes, field, reason
):
    with pytest.raises(InvalidInput) as exc:
        run_create(
            actor=Actor.of(operator),
            **run_kwargs(
                policy=dp_policy(**policy_changes),
                dp_mechanism="central",
                dp_clipping_norm=1.0,
                **run_changes,
            ),
        )
    assert any(reason in r for r in exc.value.errors[field])
    assert not TrainingRun.objects.exists()


def test_run_api_creates_a_dp_run_and_names_a_bad_mechanism(api, make_user):
    operator = make_user(roles.OPERATOR)
    kwargs = run_kwargs(policy=dp_policy())
    body = {
        "name": "api-dp",
        "purpose": kwargs["purpose"].code,
        "datasets": [d.pk for d in kwargs["datasets"]],
        "policy": kwargs["policy"].pk,
        "aggregator_country": "DE",
        "num_rounds": 3,
        "dp_mechanism": "gaussian-ish",
        "dp_clipping_norm": 1.0,
        "dp_noise_multiplier": 1.0,
    }
    response = api(operator).post("/api/v1/runs", body, format="json")
    assert response.status_code == 400 and "dp_mechanism" in response.json()
    body["dp_mechanism"] = "local"
    response = api(operator).post("/api/v1/runs", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["dp_mechanism"] == "local"
