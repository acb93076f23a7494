"""The gate endpoints: roles, 201 with the decision, 404, 409 and 400."""

from __future__ import annotations

import pytest

from fedgov import roles
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    PurposeFactory,
    RunFactory,
    SiteFactory,
)
from training.models import GateDecision, Round

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    purpose = PurposeFactory()
    run = RunFactory(purpose=purpose, num_rounds=3)
    DpiaFactory(run=run)
    for slug, compute in (("de-legal", "DE"), ("nl-media", "US")):
        ds = DatasetFactory(
            site=SiteFactory(slug=slug, compute_country=compute), purposes=[purpose]
        )
        run.datasets.add(ds)
        ConsentFactory(dataset=ds, purpose=purpose, subject_pseudonym=f"{slug}-s0001")
    return run


def gate_url(run_id, n) -> str:
    return f"/api/v1/runs/{run_id}/rounds/{n}/gate"


def decision_url(run_id, n) -> str:
    return f"/api/v1/runs/{run_id}/rounds/{n}/decision"


@pytest.mark.parametrize("role", [roles.OPERATOR, roles.SERVICE, roles.DPO])
def test_gate_endpoint_returns_201_with_results_per_site_and_rule(api, make_user, run, role):
    response = api(make_user(role)).post(gate_url(run.pk, 1))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["outcome"] == "allowed"
    assert len(body["snapshot_hash"]) == 64
    assert [s["slug"] for s in body["eligible_sites"]] == ["de-legal"]
    nl = next(s for s in body["sites"] if s["slug"] == "nl-media")
    assert nl["eligible"] is False
    residency = next(r for r in nl["results"] if r["rule_id"] == "residency")
    assert residency == {
        "rule_id": "residency",
        "article": "Art. 44 + policy",
        "ok": False,
        "reason": "compute in US is outside the policy's areas (EEA)",
        "code": "residency.outside_policy",
        "params": {
            "place": {"code": "residency.place.compute", "params": {}},
            "country": "US",
            "areas": "EEA",
        },
    }
    assert len(nl["results"]) == 12  # with criminal-data (Art. 10)
    assert body["round_results"][0]["rule_id"] == "min-sites"


@pytest.mark.parametrize("role", [roles.LEGAL, roles.AUDITOR, roles.SITE_STEWARD])
def test_gate_endpoint_refuses_roles_that_may_not_gate(api, make_user, run, role):
    assert api(make_user(role)).post(gate_url(run.pk, 1)).status_code == 403
    assert not Round.objects.exists()


def test_gate_endpoint_refuses_anonymous(api, run):
    assert api().post(gate_url(run.pk, 1)).status_code in (401, 403)


def test_gate_endpoint_404_for_unknown_run(api, operator):
    assert api(operator).post(gate_url(999_999, 1)).status_code == 404


def test_gate_endpoint_409_when_round_is_not_planned(api, operator, run):
    client = api(operator)
    assert client.post(gate_url(run.pk, 1)).status_code == 201
    response = client.post(gate_url(run.pk, 1))
    assert response.status_code == 409
    assert "planned" in response.json()["detail"]
    assert GateDecision.objects.count() == 1


@pytest.mark.parametrize("bad", ["0", "abc", "4", "-1", "1.5"])
def test_gate_endpoint_400_on_bad_round_number(api, operator, run, bad):
    response = api(operator).post(gate_url(run.pk, bad))
    assert response.status_code == 400
    assert "round_no" in response.json()
    assert not Round.objects.exists()


@pytest.mark.parametrize("role", [roles.LEGAL, roles.AUDITOR, roles.OPERATOR, roles.DPO])
def test_decision_endpoint_returns_latest_decision(api, make_user, operator, run, role):
    created = api(operator).post(gate_url(run.pk, 1)).json()
    response = api(make_user(role)).get(decision_url(run.pk, 1))
    assert response.status_code == 200
    assert response.json() == created


def test_decision_endpoint_404_before_the_gate_ran_and_403_for_stewards(api, make_user, run):
    assert api(make_user(roles.AUDITOR)).get(decision_url(run.pk, 2)).status_code == 404
    assert api(make_user(roles.SITE_STEWARD)).get(decision_url(run.pk, 1)).status_code == 403
