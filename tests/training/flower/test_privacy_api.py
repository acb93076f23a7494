"""ε from Flower's accountant through fedgov's REST API: the ticket's plan, each round's
record, the budget enforced before the round, and a third party recomputing ε."""

from __future__ import annotations

import json

import pytest
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from audit.models import LedgerEntry
from fedgov import roles
from fedgov_flower.dp import AccountingSpec, privacy_spent
from tests.training.flower.conftest import governed_scenario, kept
from training.models import ModelUpdate, RoundPrivacy

AGG = "ef" * 32
BEFORE = "cd" * 32
DELTA = 1e-5
Z, C = 2.0, 1.0


@pytest.fixture
def service(make_user):
    return make_user(roles.SERVICE, username="flower-service")


def dp_scenario(budget: float, mechanism: str = "central", num_rounds: int = 3):
    run, _, _ = governed_scenario(num_rounds=num_rounds)
    policy = run.policy
    policy.privacy_budget_epsilon, policy.privacy_budget_delta = budget, DELTA
    policy.save()
    run.dp_mechanism, run.dp_clipping_norm, run.dp_noise_multiplier = mechanism, C, Z
    run.save()
    return run


def ticket(api, service, run, n):
    return api(service).post(f"/api/v1/runs/{run.pk}/rounds/{n}/ticket")


def release(**changes):
    base = {
        "mechanism": "central",
        "clipping_norm": C,
        "noise_multiplier": Z,
        "sampled_clients": 3,
        "total_clients": 3,
        "noise_std": Z * C / 3,
        "aggregate_hash_before_noise": BEFORE,
        "aggregate_hash": AGG,
    }
    return {**base, **changes}


def report(api, service, run, n, dp=None, aggregate=AGG):
    body = {
        "updates": [
            {
                "node_id": str(1000 + i),
                "update_hash": f"{i:02d}" * 32,
                "num_examples": 9,
                **kept(run, n, str(1000 + i)),
            }
            for i in range(3)
        ],
        "aggregate_hash": aggregate,
    }
    if dp is not None:
        body["dp"] = dp
    return api(service).post(f"/api/v1/runs/{run.pk}/rounds/{n}/updates", body, format="json")


def eps(n: int) -> float:
    return privacy_spent(AccountingSpec(DELTA, 3), [Z] * n).epsilon


def test_ticket_signs_the_plan_and_each_round_records_the_accountants_epsilon(api, service):
    run = dp_scenario(budget=eps(2) * 1.0001)
    response = ticket(api, service, run, 1)
    assert response.status_code == 201, response.json()
    plan = json.loads(response.json()["ticket"]["body"])["dp"]
    assert plan["mechanism"] == "central" and plan["clipping_norm"] == C
    assert plan["noise_multiplier"] == Z and plan["delta"] == DELTA
    assert plan["population_size"] == 3 and plan["planned_epsilon"] == pytest.approx(eps(1))

    assert report(api, service, run, 1, release()).status_code == 201
    row = RoundPrivacy.objects.get(round__run=run, round__number=1)
    assert row.private and row.epsilon == pytest.approx(eps(1))
    assert (row.sampled_clients, row.total_clients, row.noise_std) == (3, 3, pytest.approx(Z / 3))
    assert row.aggregate_hash_before_noise == BEFORE and row.aggregate_hash == AGG

    assert ticket(api, service, run, 2).status_code == 201
    assert report(api, service, run, 2, release()).status_code == 201
    assert RoundPrivacy.objects.get(round__number=2, round__run=run).epsilon == pytest.approx(
        eps(2)
    )

    # Round 3 would pass the limit: refused before it runs, citing the figures.
    refused = ticket(api, service, run, 3).json()
    assert refused["allowed"] is False
    reasons = [r["reason"] for r in refused["failed_rules"] if r["rule_id"] == "privacy-budget"]
    assert reasons and f"spent ε={eps(2):.4g}" in reasons[0]
    assert f"= {eps(3):.4g} of" in reasons[0] and "δ=1e-05" in reasons[0]


def test_a_third_party_recomputes_epsilon_from_the_ledger_alone(api, service):
    """What docs/privacy-accounting.md tells a regulator to do, with nothing but the
    ``privacy.accounted`` payloads and Flower's accountant."""
    run = dp_scenario(budget=100.0)
    for n in (1, 2):
        ticket(api, service, run, n)
        report(api, service, run, n, release())

    payloads = [
        json.loads(e.payload)
        for e in LedgerEntry.objects.filter(event_type="privacy.accounted").order_by("seq")
    ]
    assert [p["round_number"] for p in payloads] == [1, 2]
    for i, payload in enumerate(payloads, start=1):
        acc = payload["accounting"]
        accountant = RdpAccountant(
            PrivacyConfig(
                target_delta=acc["delta"],
                population_size=acc["population_size"],
                neighboring_relation=NeighboringRelation(acc["neighbouring_relation"]),
                sampling_method=SamplingMethod(acc["sampling_method"]),
            )
        )
        for earlier in payloads[:i]:
            accountant.compose(
                GaussianPrivacyEvent(
                    noise_multiplier=earlier["noise_multiplier"],
                    sample_size=acc["population_size"],
                    population_size=acc["population_size"],
                )
            )
        assert accountant.get_epsilon(payload["delta"]) == pytest.approx(payload["epsilon"])
        assert acc["noise_multipliers"] == [Z] * i and acc["accounting_method"] == "rdp"


def test_a_round_where_nothing_adds_noise_claims_no_budget(api, service):
    """The ticket planned central DP, but the aggregator reported no noise applied: the
    ledger claims no ε, and no later round can claim one either."""
    run = dp_scenario(budget=1000.0)
    ticket(api, service, run, 1)
    assert report(api, service, run, 1, dp=None).status_code == 201

    row = RoundPrivacy.objects.get(round__run=run, round__number=1)
    assert not row.private and row.epsilon is None and row.mechanism == "none"
    event = LedgerEntry.objects.get(event_type="privacy.accounted")
    payload = json.loads(event.payload)
    assert payload["private"] is False and payload["epsilon"] is None
    assert payload["planned_mechanism"] == "central" and payload["noise_multiplier"] is None

    refused = ticket(api, service, run, 2).json()
    assert refused["allowed"] is False
    assert any(
        "released an aggregate without noise" in r["reason"] for r in refused["failed_rules"]
    )
    # And a later honest-looking release does not make the run private again.
    assert not RoundPrivacy.objects.filter(private=True).exists()


@pytest.mark.parametrize(
    ("dp", "field"),
    [
        (release(noise_multiplier=0.5), "dp.noise_multiplier"),
        (release(clipping_norm=10.0), "dp.clipping_norm"),
        (release(mechanism="local"), "dp.mechanism"),
        (release(sampled_clients=4), "dp.sampled_clients"),
        (release(aggregate_hash="00" * 32), "dp.aggregate_hash"),
        (release(noise_std="lots"), "dp.noise_std"),
        (release(aggregate_hash_before_noise=AGG), "dp.aggregate_hash_before_noise"),
        (release(aggregate_hash_before_noise=None), "dp.aggregate_hash_before_noise"),
        ("noise", "dp"),
    ],
)
def test_a_release_that_is_not_the_signed_plan_gets_400_and_writes_nothing(api, service, dp, field):
    run = dp_scenario(budget=1000.0)
    ticket(api, service, run, 1)
    before = LedgerEntry.objects.count()
    response = report(api, service, run, 1, dp)
    assert response.status_code == 400 and field in response.json(), response.json()
    assert LedgerEntry.objects.count() == before
    assert not ModelUpdate.objects.exists() and not RoundPrivacy.objects.exists()


def test_a_release_for_a_ticket_without_a_plan_is_refused(api, service):
    run, _, _ = governed_scenario()
    ticket(api, service, run, 1)
    response = report(api, service, run, 1, release())
    assert response.status_code == 400 and "dp" in response.json()


def test_a_run_without_budget_or_mechanism_writes_no_privacy_record(api, service):
    run, _, _ = governed_scenario()
    ticket(api, service, run, 1)
    assert report(api, service, run, 1).status_code == 201
    assert not RoundPrivacy.objects.exists()
    assert not LedgerEntry.objects.filter(event_type="privacy.accounted").exists()


def test_a_sites_own_refusal_reaches_the_ledger(api, service):
    run = dp_scenario(budget=1000.0)
    ticket(api, service, run, 1)
    body = {
        "updates": [{"node_id": "1000", "update_hash": "00" * 32, "num_examples": 9,
                     **kept(run, 1, "1000")}],
        "aggregate_hash": AGG,
        "dp": release(sampled_clients=1),
        "site_refusals": [
            {"node_id": "1001", "code": "site_epsilon_limit",
             "reason": "planned cumulative ε=1.2 exceeds this site's limit 1"},
        ],
    }  # fmt: skip
    url = f"/api/v1/runs/{run.pk}/rounds/1/updates"
    assert api(service).post(url, body, format="json").status_code == 201
    event = LedgerEntry.objects.get(event_type="site.refused")
    payload = json.loads(event.payload)
    assert payload["code"] == "site_epsilon_limit" and payload["node_id"] == "1001"
    assert payload["round_number"] == 1 and "limit 1" in payload["reason"]


@pytest.mark.parametrize(
    "refusal",
    [
        {"node_id": "777", "code": "site_epsilon_limit", "reason": "x"},
        {"node_id": "1001", "code": "DROP TABLE", "reason": "x"},
        {"node_id": "1001", "code": "site_epsilon_limit", "reason": "x" * 501},
    ],
)
def test_malformed_site_refusals_get_400(api, service, refusal):
    run = dp_scenario(budget=1000.0)
    ticket(api, service, run, 1)
    before = LedgerEntry.objects.count()
    body = {"updates": [], "aggregate_hash": None, "site_refusals": [refusal]}
    response = api(service).post(f"/api/v1/runs/{run.pk}/rounds/1/updates", body, format="json")
    assert response.status_code == 400 and "site_refusals[0]" in response.json()
    assert LedgerEntry.objects.count() == before
