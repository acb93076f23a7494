"""The governed strategy and the site mod together on an in-process grid (no processes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from fedgov_flower.client_mod import make_governance_mod
from fedgov_flower.ticket import TicketSite, exclusion_digest
from fedgov_flower.update_hash import update_hash
from tests.training.flower.inprocess import (
    FakeGovernance,
    InProcessGrid,
    StaticExclusions,
    site_context,
)
from training.flower.client_app import build_app
from training.flower.model import get_arrays, make_model
from training.flower.strategy import GovernedFedAvg, RunStopped

RUN_ID = 7
SITES = [
    TicketSite(1, "de-legal", "1000", exclusion_digest([]), 0),
    TicketSite(2, "es-blogs", "1001", exclusion_digest([]), 0),
    TicketSite(3, "pl-news", "1002", exclusion_digest([]), 0),
]


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Flower stamps messages with the running task's ids; this process plays the ServerApp."""
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


WITHDRAWN = {"es-blogs": [f"es-blogs-s{n:04d}" for n in range(1, 11)]}


def federation(*, refuse=None, on_refusal="skip", intruder=False, excluded=None):
    governance = FakeGovernance(RUN_ID, SITES, refuse=refuse or {}, on_refusal=on_refusal)
    governance.excluded = excluded or {}
    mod = make_governance_mod(fetcher=StaticExclusions(governance.excluded))
    app = build_app(mod)
    key = governance.public_key_b64
    contexts = {
        int(s.node_id): site_context(int(s.node_id), s.site_id, s.slug, RUN_ID, key) for s in SITES
    }
    intruders = {}
    if intruder:
        intruders = {4242: site_context(4242, 2, "es-blogs", RUN_ID, key)}
    grid = InProcessGrid(app, contexts, intruders)
    strategy = GovernedFedAvg(
        governance=governance, run_id=RUN_ID, sample_timeout=0, keep_arrays=True
    )
    return governance, grid, strategy


def initial_arrays() -> ArrayRecord:
    return ArrayRecord({k: Array(v) for k, v in get_arrays(make_model()).items()})


def start(strategy, grid, rounds):
    return strategy.start(
        grid, initial_arrays(), num_rounds=rounds, train_config=ConfigRecord({"local-epochs": 2})
    )


def test_strategy_sends_ticket_only_to_its_nodes_and_reports_canonical_hashes():
    governance, grid, strategy = federation(excluded=WITHDRAWN)
    result = start(strategy, grid, 1)

    assert sorted(m.metadata.dst_node_id for m in grid.sent) == [1000, 1001, 1002]
    report = governance.reports[0]
    assert [u.node_id for u in report["updates"]] == ["1000", "1001", "1002"]
    evidence = strategy.evidence[1]
    for update in report["updates"]:
        assert update.update_hash == update_hash(evidence.received[update.node_id])
    assert report["aggregate"] == update_hash(result.arrays)
    es = next(u for u in report["updates"] if u.node_id == "1001")
    assert (es.records_used, es.records_excluded) == (330, 30)
    de = next(u for u in report["updates"] if u.node_id == "1000")
    assert (de.records_used, de.records_excluded, de.num_examples) == (360, 0, 360)


def test_metric_records_carry_no_identities():
    _governance, grid, strategy = federation()
    result = start(strategy, grid, 1)
    keys = set(result.train_metrics_clientapp[1])
    assert keys <= {"train-loss", "num-examples", "records-used", "records-excluded"}


def test_refused_round_is_skipped_and_the_run_continues_when_policy_says_skip():
    governance, grid, strategy = federation(refuse={1: "consent withdrawn"})
    start(strategy, grid, 2)
    assert [r["round"] for r in governance.reports] == [2]
    assert strategy.evidence[1].refusal.reason == "consent withdrawn"
    assert all(m.content["config"]["server-round"] == 2 for m in grid.sent)


def test_refused_round_stops_the_run_when_policy_says_stop():
    governance, grid, strategy = federation(refuse={2: "DPIA expired"}, on_refusal="stop")
    with pytest.raises(RunStopped, match="DPIA expired"):
        start(strategy, grid, 3)
    assert [r["round"] for r in governance.reports] == [1]


def test_reply_from_a_node_outside_the_ticket_is_refused_and_reported():
    governance, grid, strategy = federation(intruder=True)
    start(strategy, grid, 1)
    report = governance.reports[0]
    assert [u.node_id for u in report["rejected"]] == ["4242"]
    assert "4242" not in {u.node_id for u in report["updates"]}


def test_ticket_missing_a_connected_node_leaves_that_node_out():
    governance, grid, strategy = federation()
    governance.sites = SITES[:2]
    start(strategy, grid, 1)
    assert sorted(m.metadata.dst_node_id for m in grid.sent) == [1000, 1001]


# R7 at the site: forged, expired, other-round tickets, 3 of 3 refused.


def _train_message(governance, ticket, server_round):
    config = ConfigRecord({"server-round": server_round, "local-epochs": 1, **ticket.to_config()})
    return Message(
        content=RecordDict({"arrays": initial_arrays(), "config": config}),
        message_type="train",
        dst_node_id=1000,
    )


def _site_reply(governance, message, now=None):
    mod = make_governance_mod(fetcher=StaticExclusions({}), now=now)
    app = build_app(mod)
    return app(message, site_context(1000, 1, "de-legal", RUN_ID, governance.public_key_b64))


@pytest.mark.parametrize("case", ["forged", "expired", "other-round"])
def test_site_refuses_bad_tickets_before_reading_data(case, monkeypatch):
    governance = FakeGovernance(RUN_ID, SITES)
    now = None
    if case == "forged":
        other = FakeGovernance(RUN_ID, SITES)
        ticket = other.sign(1)
        ticket = type(ticket)(**{**ticket.__dict__, "key_id": governance.sign(1).key_id})
        message = _train_message(governance, ticket, 1)
    elif case == "expired":
        message = _train_message(governance, governance.sign(1, ttl=timedelta(minutes=1)), 1)
        now = lambda: datetime.now(UTC) + timedelta(minutes=5)  # noqa: E731
    else:
        message = _train_message(governance, governance.sign(1), 2)
    read = []
    monkeypatch.setattr("training.flower.client_app.load_site_data", lambda *a, **k: read.append(a))

    reply = _site_reply(governance, message, now=now)

    assert reply.has_error()
    assert {"forged": "bad_signature", "expired": "expired", "other-round": "wrong_round"}[
        case
    ] in reply.error.reason
    assert read == []


def test_site_refuses_message_without_ticket_and_ticket_for_another_run():
    governance = FakeGovernance(RUN_ID, SITES)
    bare = Message(
        content=RecordDict(
            {"arrays": initial_arrays(), "config": ConfigRecord({"server-round": 1})}
        ),
        message_type="train",
        dst_node_id=1000,
    )
    assert "no_ticket" in _site_reply(governance, bare).error.reason
    other_run = _train_message(governance, governance.sign(1, run_id=RUN_ID + 1), 1)
    assert "wrong_run" in _site_reply(governance, other_run).error.reason


def test_site_refuses_ticket_not_naming_it():
    governance = FakeGovernance(RUN_ID, SITES)
    message = _train_message(governance, governance.sign(1, sites=SITES[1:]), 1)
    assert "site_not_named" in _site_reply(governance, message).error.reason


def test_site_refuses_to_train_a_round_twice():
    governance = FakeGovernance(RUN_ID, SITES)
    mod = make_governance_mod(fetcher=StaticExclusions({}))
    app = build_app(mod)
    context = site_context(1000, 1, "de-legal", RUN_ID, governance.public_key_b64)
    ticket = governance.sign(1)
    assert not app(_train_message(governance, ticket, 1), context).has_error()
    again = app(_train_message(governance, ticket, 1), context)
    assert "replayed_round" in again.error.reason


def test_hash_of_reply_arrays_matches_numpy_hash():
    arrays = {"w": np.ones((2, 2), dtype=np.float32)}
    assert update_hash(ArrayRecord({"w": Array(arrays["w"])})) == update_hash(arrays)


def test_default_client_app_has_no_ungoverned_training_path():
    from training.flower.client_app import app

    message = Message(
        content=RecordDict({"arrays": initial_arrays(), "config": ConfigRecord({})}),
        message_type="train.plain",
        dst_node_id=1000,
    )
    governance = FakeGovernance(RUN_ID, SITES)
    with pytest.raises(ValueError, match="No train function registered with name 'plain'"):
        app(message, site_context(1000, 1, "de-legal", RUN_ID, governance.public_key_b64))
