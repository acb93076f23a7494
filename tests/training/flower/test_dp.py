"""Differential privacy on the governed path: Flower's wrappers and mods, and its accountant.

The federation runs in this process (real ClientApp, real site mods, real tickets); the
noise is Flower's own. Statistical checks are seeded and state their tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from fedgov_flower.client_mod import make_governance_mod
from fedgov_flower.dp import (
    AccountingSpec,
    DpError,
    DpPlan,
    budget_check,
    derive_noise_multiplier,
    privacy_spent,
)
from fedgov_flower.ticket import parse_unverified
from fedgov_flower.update_hash import update_hash
from tests.training.flower.inprocess import (
    FakeGovernance,
    InProcessGrid,
    StaticExclusions,
    site_context,
)
from tests.training.flower.test_strategy_and_mod import (
    RUN_ID,
    SITES,
    initial_arrays,
    start,
    task_identity,  # noqa: F401 - autouse fixture
)
from training.flower.client_app import build_app
from training.flower.dp_strategy import (
    GovernedClientSideDp,
    GovernedServerSideDp,
    governed_dp,
)
from training.flower.strategy import GovernedFedAvg, RoundEvidence, RunStopped

DELTA = 1e-5


def plan(mechanism="central", clipping_norm=0.5, noise_multiplier=1.2) -> DpPlan:
    return DpPlan(mechanism, clipping_norm, noise_multiplier, DELTA)


def ticket_dp(p: DpPlan, population=3) -> dict:
    return {
        "mechanism": p.mechanism,
        "clipping_norm": p.clipping_norm,
        "noise_multiplier": p.noise_multiplier,
        "delta": p.delta,
        "population_size": population,
    }


def dp_federation(strategy_plan: DpPlan | None, signed: DpPlan | None):
    governance = FakeGovernance(RUN_ID, SITES)
    governance.dp = ticket_dp(signed) if signed else None
    app = build_app(make_governance_mod(fetcher=StaticExclusions({})))
    key = governance.public_key_b64
    contexts = {
        int(s.node_id): site_context(int(s.node_id), s.site_id, s.slug, RUN_ID, key) for s in SITES
    }
    grid = InProcessGrid(app, contexts)
    governed = GovernedFedAvg(
        governance=governance,
        run_id=RUN_ID,
        sample_timeout=0,
        keep_arrays=True,
        dp_plan=strategy_plan,
    )
    return governance, grid, governed


def delta_norm(record: ArrayRecord, base: ArrayRecord) -> float:
    return math.sqrt(sum(float(np.sum((record[k].numpy() - base[k].numpy()) ** 2)) for k in base))


# --- the mechanisms on the governed path ---------------------------------------------


@pytest.mark.parametrize("mechanism", ["central", "client-clipping", "local"])
def test_each_mechanism_records_its_parameters_and_both_hashes(mechanism):
    p = plan(mechanism)
    governance, grid, governed = dp_federation(p, p)
    start(governed_dp(governed), grid, 1)

    dp = governance.reports[0]["dp"]
    assert dp["mechanism"] == mechanism
    assert dp["clipping_norm"] == 0.5 and dp["noise_multiplier"] == 1.2
    assert dp["sampled_clients"] == 3 and dp["total_clients"] == 3
    evidence = governed.evidence[1]
    # The update hash is the hash of the arrays exactly as they arrived.
    for record in governance.reports[0]["updates"]:
        assert record.update_hash == update_hash(evidence.received[record.node_id])
    assert dp["aggregate_hash"] == governance.reports[0]["aggregate"] == evidence.aggregate_hash
    if mechanism == "local":
        assert dp["aggregate_hash_before_noise"] is None
        assert dp["noise_std"] == pytest.approx(1.2 * 0.5 / math.sqrt(3))
    else:
        # The noise Flower added changed the aggregate: the two hashes differ.
        assert dp["aggregate_hash_before_noise"] not in (None, dp["aggregate_hash"])
        assert dp["noise_std"] == pytest.approx(1.2 * 0.5 / 3)


def test_client_side_clipping_happens_at_the_site_before_the_update_travels():
    p = plan("client-clipping", clipping_norm=0.05)
    _governance, grid, governed = dp_federation(p, p)
    base = initial_arrays()
    start(governed_dp(governed), grid, 1)
    received = governed.evidence[1].received
    assert len(received) == 3
    for record in received.values():
        assert delta_norm(record, base) <= 0.05 * (1 + 1e-5)


def test_central_updates_arrive_unclipped_and_local_updates_arrive_noised():
    p = plan("central", clipping_norm=0.05)
    _, grid, governed = dp_federation(p, p)
    start(governed_dp(governed), grid, 1)
    base = initial_arrays()
    # Central: the site sends its real update; only the server clips.
    assert max(delta_norm(r, base) for r in governed.evidence[1].received.values()) > 0.05

    p = plan("local", clipping_norm=0.05, noise_multiplier=2.0)
    _, grid, governed = dp_federation(p, p)
    start(governed_dp(governed), grid, 1)
    for record in governed.evidence[1].received.values():
        # Clipped to 0.05 then N(0, 0.1²) on every coordinate: far beyond the clip.
        diffs = np.concatenate([(record[k].numpy() - base[k].numpy()).ravel() for k in base])
        assert diffs.std() == pytest.approx(0.1, rel=0.05)


def test_the_site_refuses_a_clipping_norm_the_ticket_did_not_sign():
    signed = plan("client-clipping", clipping_norm=0.5)
    governance, grid, _ = dp_federation(signed, signed)
    # An aggregator that asks for a looser clip than fedgov accounted for.
    loose = GovernedFedAvg(governance=governance, run_id=RUN_ID, sample_timeout=0, dp_plan=signed)
    wrapper = GovernedClientSideDp(loose, 1.2, 50.0, 1)
    start(wrapper, grid, 1)
    errors = loose.evidence[1].errors
    assert len(errors) == 3 and all("dp_clipping_mismatch" in e for e in errors)
    assert governance.reports[0]["dp"] is None and governance.reports[0]["updates"] == []


@pytest.mark.parametrize(
    ("strategy_plan", "signed"),
    [
        (None, plan()),
        (plan(), None),
        (plan("central"), plan("local")),
        (plan(), plan(noise_multiplier=0.5)),
    ],
)
def test_strategy_stops_when_its_mechanism_is_not_the_signed_one(strategy_plan, signed):
    governance, grid, governed = dp_federation(strategy_plan, signed)
    with pytest.raises(RunStopped, match="DP plan"):
        start(governed_dp(governed), grid, 1)
    assert governance.reports == []


def test_without_a_plan_no_noise_and_no_dp_record():
    governance, grid, governed = dp_federation(None, None)
    start(governed_dp(governed), grid, 1)
    assert governance.reports[0]["dp"] is None
    assert governed.evidence[1].aggregate_hash_before_noise == governed.evidence[1].aggregate_hash


# --- proof that noise is applied ------------------------------------------------------


def reply(node_id: int, arrays: dict[str, np.ndarray], examples: int) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
            "metrics": MetricRecord({"num-examples": examples, "train-loss": 0.1}),
        }
    )
    msg = Message(content=content, dst_node_id=0, message_type="train")
    msg.metadata.__dict__["_src_node_id"] = node_id
    return msg


def wrapped_round(p: DpPlan, updates: list[dict[str, np.ndarray]], base, examples=None):
    """Aggregate ``updates`` (one per SITES node) through the wrapper, as after a ticket."""
    governance = FakeGovernance(RUN_ID, SITES)
    governance.dp = ticket_dp(p)
    governed = GovernedFedAvg(governance=governance, run_id=RUN_ID, dp_plan=p)
    captured = {}
    average = governed.average

    def observe(server_round, replies):
        arrays, metrics = average(server_round, replies)
        captured["before_noise"] = {k: v.numpy().copy() for k, v in arrays.items()}
        return arrays, metrics

    governed.average = observe
    governed.evidence[1] = RoundEvidence(round_no=1, ticket=governance.sign(1))
    wrapper = governed_dp(governed)
    wrapper.current_arrays = ArrayRecord({k: Array(v) for k, v in base.items()})
    replies = [
        reply(int(s.node_id), u, (examples or [10] * len(updates))[i])
        for i, (s, u) in enumerate(zip(SITES, updates, strict=True))
    ]
    arrays, _ = wrapper.aggregate_train(1, replies)
    return {k: v.numpy() for k, v in arrays.items()}, captured["before_noise"], governance


def test_noised_aggregate_differs_from_plain_fedavg_by_the_recorded_std():
    rng = np.random.default_rng(17)
    base = {"w": np.zeros((200, 100), dtype=np.float64)}
    # Small updates (well inside C): clipping changes nothing, so plain FedAvg of the
    # same updates is the aggregate before noise.
    updates = [{"w": rng.normal(0, 1e-4, (200, 100))} for _ in SITES]
    plain = sum(u["w"] for u in updates) / len(updates)
    np.random.seed(2026)  # Flower draws its noise from numpy's global generator
    noised, before, governance = wrapped_round(plan("central", 1.0, 1.5), updates, base)
    np.testing.assert_allclose(before["w"], plain, rtol=0, atol=1e-15)
    diff = (noised["w"] - plain).ravel()
    recorded = governance.reports[0]["dp"]["noise_std"]
    assert recorded == pytest.approx(1.5 * 1.0 / 3)
    # 20 000 draws: the sample std is within 2 % of the true one with overwhelming
    # probability (its relative s.e. is 1/sqrt(2·20000) = 0.5 %), the mean within 4 s.e.
    assert diff.std() == pytest.approx(recorded, rel=0.02)
    assert abs(diff.mean()) < 4 * recorded / math.sqrt(diff.size)


def test_one_client_moves_the_aggregate_before_noise_by_at_most_c_over_n():
    rng = np.random.default_rng(5)
    base = {"a": rng.normal(0, 1, (30,)), "b": rng.normal(0, 1, (4, 5))}
    clip = 0.25
    for trial in range(25):
        updates = [
            {k: v + rng.normal(0, rng.choice([1e-3, 1.0, 50.0]), v.shape) for k, v in base.items()}
            for _ in SITES
        ]
        # The adversary: one site sends something huge, and claims a huge example count.
        attacker = {k: v + rng.normal(0, 1e6, v.shape) for k, v in base.items()}
        # The same site sending (almost) nothing. Exactly nothing would crash Flower's
        # clip (``clip_inputs_inplace`` divides by the update's norm).
        honest = {k: v + 1e-12 for k, v in base.items()}
        _, with_attack, _ = wrapped_round(
            plan("central", clip, 1.0), [attacker, *updates[1:]], base, [10**9, 1, 1]
        )
        _, without, _ = wrapped_round(plan("central", clip, 1.0), [honest, *updates[1:]], base)
        moved = math.sqrt(sum(float(np.sum((with_attack[k] - without[k]) ** 2)) for k in base))
        # Uniform weight 1/3 whatever the site claims: the bound is C × 1/3.
        assert moved <= clip / 3 * (1 + 1e-9), trial


# --- Flower's accountant --------------------------------------------------------------


def test_privacy_spent_is_flowers_rdp_accountant():
    spec = AccountingSpec(delta=DELTA, population_size=3)
    config = PrivacyConfig(
        target_delta=DELTA,
        population_size=3,
        neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
        sampling_method=SamplingMethod.NO_AMPLIFICATION,
    )
    direct = RdpAccountant(config)
    direct.compose(GaussianPrivacyEvent(noise_multiplier=2.0, sample_size=3, population_size=3), 3)
    spent = privacy_spent(spec, [2.0, 2.0, 2.0])
    assert spent.epsilon == pytest.approx(direct.get_epsilon(DELTA), rel=1e-12)
    assert spent.accounting_method == "rdp" and spent.num_releases == 3


def test_replace_one_costs_more_than_add_or_remove_one():
    add = privacy_spent(AccountingSpec(DELTA, 4), [2.0] * 3).epsilon
    replace = privacy_spent(AccountingSpec(DELTA, 4, "replace-one"), [2.0] * 3).epsilon
    assert replace > add
    # Replacing one client moves the sum by 2C: the same as add/remove at half the noise.
    halved = privacy_spent(AccountingSpec(DELTA, 4), [1.0] * 3).epsilon
    assert replace == pytest.approx(halved, rel=1e-9)


def test_budget_check_cites_spent_cost_limit_and_delta():
    spec = AccountingSpec(DELTA, 3)
    one = privacy_spent(spec, [3.0]).epsilon
    two = privacy_spent(spec, [3.0, 3.0]).epsilon
    check = budget_check(spec, [3.0], 3.0, limit=(one + two) / 2)
    assert check.would_exceed
    assert check.spent == pytest.approx(one) and check.after == pytest.approx(two)
    assert check.round_cost == pytest.approx(two - one) and check.delta == DELTA
    assert not budget_check(spec, [3.0], 3.0, limit=two * 1.001).would_exceed
    first = budget_check(spec, [], 3.0, limit=one * 1.001)
    assert first.spent == 0.0 and not first.would_exceed


def test_derived_noise_multiplier_is_the_smallest_that_meets_the_target():
    spec = AccountingSpec(DELTA, 3)
    z = derive_noise_multiplier(spec, 3.0, 3)
    assert privacy_spent(spec, [z] * 3).epsilon <= 3.0
    assert privacy_spent(spec, [z - 0.0001] * 3).epsilon > 3.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delta": 0.0, "population_size": 3},
        {"delta": 1.0, "population_size": 3},
        {"delta": DELTA, "population_size": 0},
        {"delta": DELTA, "population_size": 3, "relation": "swap-two"},
    ],
)
def test_bad_accounting_specs_are_refused(kwargs):
    with pytest.raises(DpError):
        AccountingSpec(**kwargs)


@pytest.mark.parametrize(
    "args",
    [("none", 1.0, 1.0, DELTA), ("central", 0.0, 1.0, DELTA), ("central", 1.0, float("nan"), DELTA),
     ("local", 1.0, 1.0, 0.0), ("central", 1.0, True, DELTA)],
)  # fmt: skip
def test_bad_plans_are_refused(args):
    with pytest.raises(DpError):
        DpPlan(*args)


def test_ticket_carries_the_signed_plan():
    governance = FakeGovernance(RUN_ID, SITES)
    governance.dp = ticket_dp(plan())
    ticket = governance.sign(1)
    assert DpPlan.from_ticket(parse_unverified(ticket.body).dp) == plan()
    assert isinstance(governed_dp(GovernedFedAvg(governance=governance, run_id=1, dp_plan=plan())),
                      GovernedServerSideDp)  # fmt: skip


# --- the site's own limit ---------------------------------------------------------------


def limited_federation(signed: DpPlan | None, planned_epsilon: float | None, **node_config):
    """es-blogs (node 1001) carries ``node_config``; the ticket plans ``planned_epsilon``."""
    governance, grid, governed = dp_federation(signed, signed)
    if governance.dp is not None:
        governance.dp["planned_epsilon"] = planned_epsilon
    grid.contexts[1001].node_config.update(node_config)
    return governance, grid, governed


def test_a_site_refuses_a_ticket_beyond_its_own_epsilon_limit():
    governance, grid, governed = limited_federation(
        plan(), planned_epsilon=2.5, **{"fedgov-max-epsilon": 2.0}
    )
    start(governed_dp(governed), grid, 1)
    report = governance.reports[0]
    assert [u.node_id for u in report["updates"]] == ["1000", "1002"]
    [refusal] = report["site_refusals"]
    assert refusal["node_id"] == "1001" and refusal["code"] == "site_epsilon_limit"
    assert "ε=2.5 exceeds this site's limit 2" in refusal["reason"]
    # Only the sites that trained count: the noise is calibrated to 2 updates.
    assert report["dp"]["sampled_clients"] == 2


@pytest.mark.parametrize(
    ("signed", "planned", "config", "code"),
    [
        (plan(), 2.0, {"fedgov-max-epsilon": 2.0}, None),  # exactly at the limit trains
        (None, None, {"fedgov-max-epsilon": 5.0}, "site_epsilon_limit"),  # no DP, no ε
        (plan(), None, {"fedgov-max-epsilon": 5.0}, "site_epsilon_limit"),
        (plan(), 1.0, {"fedgov-max-epsilon": "lots"}, "site_config"),
        (plan("central"), 1.0, {"fedgov-dp-mechanism": "client-clipping"}, "site_dp_mechanism"),
        (plan("client-clipping"), 1.0, {"fedgov-dp-mechanism": "client-clipping"}, None),
    ],
)
def test_site_limits(signed, planned, config, code):
    governance, grid, governed = limited_federation(signed, planned, **config)
    start(governed_dp(governed), grid, 1)
    refusals = governance.reports[0]["site_refusals"]
    assert [r["code"] for r in refusals] == ([code] if code else [])


def test_the_env_sets_the_site_limit_when_node_config_does_not(monkeypatch):
    monkeypatch.setenv("FEDGOV_MAX_EPSILON", "0.5")
    governance, grid, governed = limited_federation(plan(), planned_epsilon=1.0)
    start(governed_dp(governed), grid, 1)
    # Every site reads the env here: all refuse, nothing is aggregated or released.
    assert {r["code"] for r in governance.reports[0]["site_refusals"]} == {"site_epsilon_limit"}
    assert governance.reports[0]["aggregate"] is None and governance.reports[0]["dp"] is None


# --- accuracy with and without DP on the same seeds -------------------------------------


def test_dp_comparison_is_seeded_and_noise_costs_accuracy():
    from training.flower.dp_eval import compare

    noisy = plan("central", clipping_norm=1.0, noise_multiplier=2.5)
    first = compare(noisy, rounds=2, local_epochs=5, seed=3)
    assert compare(noisy, rounds=2, local_epochs=5, seed=3) == first
    # Without DP the federation learns; with this much noise it stays near chance.
    assert first["without_dp"][-1] > 0.7
    assert first["with_dp"][-1] < first["without_dp"][-1] - 0.2
    # Next to no noise and no clipping: the DP path is plain (uniform) averaging again.
    faint = compare(plan("central", 1e9, 1e-12), rounds=2, local_epochs=5, seed=3)
    assert faint["with_dp"][-1] == pytest.approx(faint["without_dp"][-1], abs=0.05)
