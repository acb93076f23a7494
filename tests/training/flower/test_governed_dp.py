"""governed(any strategy) under central DP: Flower's own wrappers clip and noise with the
ticket's C and z, the hashes before and after noise and the release reach fedgov, and a
round that released nothing spends nothing. In-process grid, real Flower strategies.

Statistical checks are seeded and state their tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAdam, FedProx
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, compute_clip_model_update

import fedgov_flower
from fedgov_flower.client_mod import make_governance_mod
from fedgov_flower.data import filter_records
from fedgov_flower.dp_mod import dp_mod
from fedgov_flower.governed import RunStopped
from fedgov_flower.ticket import TicketSite, exclusion_digest
from fedgov_flower.update_hash import update_hash
from tests.training.flower.inprocess import (
    FakeGovernance,
    InProcessGrid,
    StaticExclusions,
    site_context,
)

RUN_ID = 7
SITES = [
    TicketSite(1, "de-legal", "1000", exclusion_digest([]), 0),
    TicketSite(2, "es-blogs", "1001", exclusion_digest([]), 0),
]
RECORDS = {
    slug: [{"subject": f"{slug}-{n}"} for n in range(4)] for slug in ("de-legal", "es-blogs")
}
SIZE = 40_000
C, Z = 1.0, 1.5
# Each site's update direction and L2 norm: de-legal's (5) is clipped to C, es-blogs'
# (0.5) is not.
NORMS = {"de-legal": 5.0, "es-blogs": 0.5}


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


def delta_of(slug: str) -> np.ndarray:
    direction = np.random.default_rng(list(NORMS).index(slug)).standard_normal(SIZE)
    return direction / np.linalg.norm(direction) * NORMS[slug]


def dp_plan(mechanism: str) -> dict:
    return {
        "mechanism": mechanism,
        "clipping_norm": C,
        "noise_multiplier": Z,
        "delta": 1e-5,
        "neighbouring_relation": "add-or-remove-one",
        "population_size": 2,
        "epsilon_limit": 50.0,
        "planned_epsilon": 3.0,
        "accounting_method": "rdp",
    }


def federation(mechanism: str, *, clipping_sites=("de-legal", "es-blogs"), weights=(3, 9)):
    """Two sites whose update is the round's model plus ``delta_of(slug)``; sites outside
    ``clipping_sites`` run without fedgov's DP mod (so they never clip)."""
    governance = FakeGovernance(RUN_ID, SITES)
    governance.dp = dp_plan(mechanism)
    lists = StaticExclusions({})
    mod = make_governance_mod(fetcher=lists, allowed_fetcher=lists)
    counts = dict(zip(("de-legal", "es-blogs"), weights, strict=True))

    def app_for(slug: str) -> ClientApp:
        app = ClientApp(mods=[mod, dp_mod] if slug in clipping_sites else [mod])

        @app.train()
        def train(msg: Message, context: Context) -> Message:
            filter_records(RECORDS[slug], key="subject")
            weights = msg.content["arrays"]["w"].numpy() + delta_of(slug)
            content = RecordDict(
                {
                    "arrays": ArrayRecord({"w": Array(weights)}),
                    "metrics": MetricRecord({"num-examples": counts[slug], "loss": 0.5}),
                }
            )
            return Message(content=content, reply_to=msg)

        return app

    apps = {int(s.node_id): app_for(s.slug) for s in SITES}
    contexts = {
        int(s.node_id): site_context(
            int(s.node_id), s.site_id, s.slug, RUN_ID, governance.public_key_b64
        )
        for s in SITES
    }

    class Grid(InProcessGrid):
        def send_and_receive(self, messages, *, timeout=None):
            messages = list(messages)
            self.sent.extend(messages)
            return [apps[m.metadata.dst_node_id](m, contexts[m.metadata.dst_node_id])
                    for m in messages]  # fmt: skip

    return governance, Grid(None, contexts)


def initial() -> ArrayRecord:
    return ArrayRecord({"w": Array(np.full(SIZE, 0.25))})


def clipped_mean() -> np.ndarray:
    """The uniform mean of the two updates clipped to C, computed here from the formula."""
    start = np.full(SIZE, 0.25)
    clipped = [d * min(1.0, C / np.linalg.norm(d)) for d in map(delta_of, NORMS)]
    return start + (clipped[0] + clipped[1]) / 2


def one_round(strategy, grid):
    return strategy.start(grid, initial(), num_rounds=1, evaluate_fn=None).arrays


@pytest.mark.parametrize("mechanism", ["central", "client-clipping"])
def test_central_dp_clips_and_noises_the_mean_with_the_tickets_parameters(mechanism):
    governance, grid = federation(mechanism)
    strategy = fedgov_flower.governed(
        FedProx(proximal_mu=0.1, min_available_nodes=2, fraction_evaluate=0.0),
        governance=governance,
        run_id=RUN_ID,
        sample_timeout=0,
    )
    np.random.seed(20261207)
    released = one_round(strategy, grid)["w"].numpy()

    if mechanism == "client-clipping":
        # Flower's wrapper asked the sites to clip to the ticket's C.
        assert all(m.content["config"][KEY_CLIPPING_NORM] == C for m in grid.sent)
    (report,) = governance.reports
    dp = report["dp"]
    assert (dp["mechanism"], dp["clipping_norm"], dp["noise_multiplier"]) == (mechanism, C, Z)
    assert (dp["sampled_clients"], dp["total_clients"]) == (2, 2)
    assert dp["noise_std"] == pytest.approx(Z * C / 2)
    # The hash after noise is the model the round released, the one reported.
    assert dp["aggregate_hash"] == report["aggregate"] == update_hash(ArrayRecord(
        {"w": Array(released)}))  # fmt: skip

    # Clipping applied, and the mean is uniform although the sites report 3 and 9
    # examples: the hash before noise is that of the clipped uniform mean.
    expected = clipped_mean()
    clipped = []
    for slug in NORMS:
        update = [np.full(SIZE, 0.25) + delta_of(slug)]
        compute_clip_model_update(update, [np.full(SIZE, 0.25)], C)
        clipped.append(update[0])
    mean = ArrayRecord({"w": Array(np.asarray((0 + clipped[0] + clipped[1]) * 0.5))})
    assert np.allclose(mean["w"].numpy(), expected, atol=1e-12)
    if mechanism == "central":
        assert dp["aggregate_hash_before_noise"] == update_hash(mean)
    assert dp["aggregate_hash_before_noise"] != dp["aggregate_hash"]

    # Noise is present with Flower's std z·C/n: over 40,000 coordinates the sample std
    # is within 2% (its own relative error is about 1/sqrt(2·40,000) = 0.35%).
    noise = released - expected
    assert abs(float(noise.mean())) < 5 * (Z * C / 2) / math.sqrt(SIZE)
    assert float(noise.std()) == pytest.approx(Z * C / 2, rel=0.02)


def test_the_servers_check_accepts_the_release_governed_reports():
    """fedgov's own check of a reported release (the one its ledger accounts from)."""
    from training.services.privacy import parse_release

    governance, grid = federation("central")
    strategy = fedgov_flower.governed(
        FedProx(proximal_mu=0.1, min_available_nodes=2, fraction_evaluate=0.0),
        governance=governance,
        run_id=RUN_ID,
        sample_timeout=0,
    )
    one_round(strategy, grid)
    (report,) = governance.reports
    clean = parse_release(
        report["dp"], ticket_plan=governance.dp, aggregate_hash=report["aggregate"]
    )
    assert clean["noise_multiplier"] == Z and clean["sampled_clients"] == 2


def test_a_server_optimiser_steps_on_the_noised_mean():
    """FedAdam gets the one noised release (post-processing); its step is the model."""
    governance, grid = federation("central")
    strategy = fedgov_flower.governed(
        FedAdam(min_available_nodes=2, fraction_evaluate=0.0, eta=0.1),
        governance=governance,
        run_id=RUN_ID,
        sample_timeout=0,
    )
    np.random.seed(7)
    model = one_round(strategy, grid)["w"].numpy()
    stage = strategy.rounds[1].train
    (report,) = governance.reports
    dp = report["dp"]
    assert dp["aggregate_hash"] == report["aggregate"] == update_hash(ArrayRecord(
        {"w": Array(model)}))  # fmt: skip
    # Three different hashes: the clipped mean, the noised release, FedAdam's step on it.
    assert len({dp["aggregate_hash_before_noise"], stage.release_hash, dp["aggregate_hash"]}) == 3

    # FedAdam's first step from the noised release d: x + eta·m/(sqrt(v)+tau) with
    # m = (1-b1)·(d-x), v = (1-b2)·(d-x)², tau = 1e-3 (the defaults); the noise is
    # reproduced from the same seed.
    np.random.seed(7)
    noise = np.random.normal(0, Z * C / 2, SIZE)
    delta = clipped_mean() + noise - 0.25
    m, v = 0.1 * delta, 0.01 * delta**2
    eta_norm = 0.1 * math.sqrt(1 - 0.99**2) / (1 - 0.9**2)
    assert np.allclose(model, 0.25 + eta_norm * m / (np.sqrt(v) + 1e-3), rtol=1e-6, atol=1e-9)


def test_a_site_that_did_not_clip_is_refused_under_client_clipping():
    # es-blogs' update has norm 0.5, de-legal's 5: de-legal skips fedgov's DP mod.
    governance, grid = federation("client-clipping", clipping_sites=("es-blogs",))
    strategy = fedgov_flower.governed(
        FedProx(proximal_mu=0.1, min_available_nodes=2, fraction_evaluate=0.0),
        governance=governance,
        run_id=RUN_ID,
        sample_timeout=0,
    )
    one_round(strategy, grid)
    (report,) = governance.reports
    assert [u.node_id for u in report["rejected"]] == ["1000"]
    assert [u.node_id for u in report["updates"]] == ["1001"]
    reason = dict((r.node_id, why) for r, why in strategy.rounds[1].train.rejected)["1000"]
    assert "exceeds the ticket's clipping norm" in reason
    # One update averaged: noise calibrated to n = 1.
    assert report["dp"]["sampled_clients"] == 1
    assert report["dp"]["noise_std"] == pytest.approx(Z * C)


def test_a_refused_round_reports_no_release():
    governance, grid = federation("central")
    governance.refuse = {1: "budget exhausted"}
    strategy = fedgov_flower.governed(
        FedProx(proximal_mu=0.1, fraction_evaluate=0.0), governance=governance, run_id=RUN_ID
    )
    before = initial()
    result = strategy.start(grid, before, num_rounds=1)
    assert grid.sent == [] and governance.reports == []
    assert len(result.arrays) == 0


def test_a_round_whose_replies_all_fail_reports_no_release(monkeypatch):
    """Every site refuses (its own ε limit): nothing was aggregated, nothing released, so
    the report carries no DpRelease and no aggregate; fedgov accounts no ε for it."""
    monkeypatch.setenv("FEDGOV_MAX_EPSILON", "1.0")  # the ticket plans 3.0
    governance, grid = federation("central")
    strategy = fedgov_flower.governed(
        FedProx(proximal_mu=0.1, fraction_evaluate=0.0, min_available_nodes=2),
        governance=governance,
        run_id=RUN_ID,
        sample_timeout=0,
    )
    result = strategy.start(grid, initial(), num_rounds=1)
    (report,) = governance.reports
    assert report["dp"] is None and report["aggregate"] is None
    assert {r["code"] for r in report["site_refusals"]} == {"site_epsilon_limit"}
    assert len(result.arrays) == 0


def test_a_plan_governed_cannot_apply_stops_before_anything_is_sent():
    governance, grid = federation("central")
    governance.dp = {"mechanism": "central", "clipping_norm": C}  # no z, no delta
    strategy = fedgov_flower.governed(
        FedProx(proximal_mu=0.1, fraction_evaluate=0.0), governance=governance, run_id=RUN_ID
    )
    with pytest.raises(RunStopped, match="noise_multiplier"):
        strategy.start(grid, initial(), num_rounds=1)
    assert grid.sent == [] and governance.reports == []
