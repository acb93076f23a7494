"""fedgov_flower: governed(any strategy) for train and evaluate, tickets bound to one use,
the site's data contract and its own policy; an in-process grid, no processes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

import fedgov_flower
from fedgov_flower.client_mod import make_governance_mod
from fedgov_flower.data import filter_records
from fedgov_flower.governed import GovernedStrategy, RunStopped
from fedgov_flower.site_policy import SitePolicy
from fedgov_flower.ticket import CONFIG_BODY, TicketSite, exclusion_digest
from fedgov_flower.used_tickets import UsedTickets
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
# Each site's records: subject id and one feature; es-blogs has consent-based data.
RECORDS = {
    "de-legal": [{"subject": f"de-{n}", "x": float(n)} for n in range(6)],
    "es-blogs": [{"subject": f"es-{n}", "x": float(n)} for n in range(8)],
}
ALLOWED = {"es-blogs": [f"es-{n}" for n in range(5)]}
EXCLUDED = {"de-legal": ["de-0", "de-1"]}


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Flower stamps messages with the running task's ids; this process plays the ServerApp."""
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


class Lists(StaticExclusions):
    """Serves exclusion lists and allow-lists alike by digest (fedgov's API stand-in)."""


def user_app(mods, *, seen: list | None = None, report_subjects: bool = True) -> ClientApp:
    """A user's own ClientApp: a mean 'model' trained on the records the ticket permits."""
    app = ClientApp(mods=mods)
    fedgov_flower.register(app)

    def records(context: Context) -> list[dict]:
        slug = str(context.node_config["fedgov-site"])
        if seen is not None:
            seen.append(slug)
        if not report_subjects:
            return RECORDS[slug]
        return filter_records(RECORDS[slug], key="subject")

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        rows = records(context)
        weights = msg.content["arrays"]["w"].numpy() + np.mean([r["x"] for r in rows])
        content = RecordDict(
            {
                "arrays": ArrayRecord({"w": Array(weights)}),
                "metrics": MetricRecord({"num-examples": len(rows), "loss": 0.5}),
            }
        )
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        rows = records(context)
        metrics = MetricRecord({"num-examples": len(rows), "accuracy": 0.75})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def federation(tmp_path, *, refuse=None, on_refusal="skip", subject_aware=True, seen=None,
               report_subjects=True, policy=None, context=None):  # fmt: skip
    governance = FakeGovernance(RUN_ID, SITES, refuse=refuse or {}, on_refusal=on_refusal)
    governance.excluded, governance.allowed = EXCLUDED, ALLOWED
    governance.context = context
    lists = Lists({**EXCLUDED, **ALLOWED})
    mod = make_governance_mod(
        fetcher=lists, allowed_fetcher=lists, subject_aware=subject_aware, site_policy=policy
    )
    from fedgov_flower.dp_mod import dp_mod

    app = user_app([mod, dp_mod], seen=seen, report_subjects=report_subjects)
    contexts = {
        int(s.node_id): site_context(
            int(s.node_id), s.site_id, s.slug, RUN_ID, governance.public_key_b64
        )
        for s in SITES
    }
    return governance, InProcessGrid(app, contexts), app, contexts


def initial() -> ArrayRecord:
    return ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))})


@pytest.mark.parametrize(
    "inner",
    [
        lambda: FedProx(proximal_mu=0.1, min_available_nodes=2, fraction_evaluate=1.0),
        lambda: FedAdam(min_available_nodes=2, fraction_evaluate=1.0),
    ],
    ids=["fedprox", "fedadam"],
)
def test_governed_strategy_trains_and_evaluates_only_under_bound_tickets(tmp_path, inner):
    governance, grid, _, _ = federation(tmp_path)
    strategy = fedgov_flower.governed(
        inner(), governance=governance, run_id=RUN_ID, sample_timeout=0
    )
    result = strategy.start(grid, initial(), num_rounds=2)

    # Each round asks for a train ticket, then an evaluate ticket, bound to Flower run 1.
    assert governance.requests == [
        (1, "train", "1"), (1, "evaluate", "1"), (2, "train", "1"), (2, "evaluate", "1"),
    ]  # fmt: skip
    kinds = [m.metadata.message_type for m in grid.sent]
    assert kinds == ["train", "train", "evaluate", "evaluate"] * 2
    for msg in grid.sent:
        assert CONFIG_BODY in msg.content["config"]
        assert f'"message_type":"{msg.metadata.message_type}"' in msg.content["config"][CONFIG_BODY]
    train_reports = [r for r in governance.reports if r["message_type"] == "train"]
    eval_reports = [r for r in governance.reports if r["message_type"] == "evaluate"]
    assert len(train_reports) == 2 and len(eval_reports) == 2
    for report in governance.reports:
        assert sorted(u.node_id for u in report["updates"]) == ["1000", "1001"]
        assert report["rejected"] == []
    es = next(u for u in train_reports[0]["updates"] if u.node_id == "1001")
    # es-blogs used its 5 allowed subjects only and said so with the allow-list's digest.
    assert (es.records_used, es.records_excluded) == (5, 3)
    assert es.filter_digest == exclusion_digest(ALLOWED["es-blogs"])
    de = next(u for u in train_reports[0]["updates"] if u.node_id == "1000")
    assert (de.records_used, de.records_excluded) == (4, 2)
    assert de.filter_digest == exclusion_digest(EXCLUDED["de-legal"])
    assert train_reports[0]["aggregate"] is not None
    assert result.arrays is not None


def test_the_wrapped_strategy_sees_only_the_tickets_connected_nodes(tmp_path):
    governance, grid, _, contexts = federation(tmp_path)
    # A third node is connected but no ticket names it.
    contexts[1999] = site_context(1999, 9, "xx-other", RUN_ID, governance.public_key_b64)
    strategy = GovernedStrategy(
        FedAvg(min_available_nodes=1, fraction_evaluate=1.0),
        governance=governance,
        run_id=RUN_ID,
        sample_timeout=0,
    )
    strategy.start(grid, initial(), num_rounds=1)
    assert {m.metadata.dst_node_id for m in grid.sent} == {1000, 1001}


def test_a_refused_round_sends_nothing_and_returns_no_model(tmp_path):
    governance, grid, _, _ = federation(tmp_path, refuse={1: "consent withdrawn"})
    strategy = fedgov_flower.governed(
        FedProx(proximal_mu=0.1, fraction_evaluate=1.0), governance=governance, run_id=RUN_ID
    )
    before = initial()
    result = strategy.start(grid, before, num_rounds=1)

    assert grid.sent == []
    # Only the train ticket was asked for: nothing is evaluated in a refused round.
    assert governance.requests == [(1, "train", "1")]
    assert governance.reports == []
    # Flower keeps the previous model: no untrained model passes as a round's result.
    assert len(result.arrays) == 0
    assert strategy.aggregate_train(1, []) == (None, None)


def test_a_refused_round_stops_the_run_when_the_run_says_stop(tmp_path):
    governance, grid, _, _ = federation(tmp_path, refuse={1: "no DPIA"}, on_refusal="stop")
    strategy = fedgov_flower.governed(FedAvg(), governance=governance, run_id=RUN_ID)
    with pytest.raises(RunStopped, match="no DPIA"):
        strategy.start(grid, initial(), num_rounds=2)
    assert grid.sent == []


def test_governed_needs_a_run_id_from_the_run_config():
    context = Context(
        run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={"lr": 0.1}
    )
    with pytest.raises(ValueError, match=r"fedgov\.run-id"):
        fedgov_flower.governed(FedAvg(), context=context)


# --- the site's mod: tickets bound to one use -----------------------------------------


def _message(governance, *, message_type="train", round_no=1, flower_run_id="1", ticket_type=None,
             sign_round=None):  # fmt: skip
    ticket = governance.sign(
        sign_round or round_no,
        message_type=ticket_type or message_type,
        flower_run_id=flower_run_id,
    )
    config = ConfigRecord({"server-round": round_no, **ticket.to_config()})
    content = RecordDict({"arrays": initial(), "config": config})
    return Message(content=content, message_type=message_type, dst_node_id=1000)


def _refusal_code(reply: Message) -> str | None:
    if not reply.has_error():
        return None
    return str(reply.error.reason).split(":")[1]


def test_the_mod_refuses_a_message_without_a_fedgov_run_id(tmp_path):
    governance, _, _, contexts = federation(tmp_path)
    context = contexts[1000]
    context.run_config = {}
    seen: list = []
    reply = user_app(fedgov_flower.mods(fetcher=Lists(EXCLUDED)), seen=seen)(
        _message(governance), context
    )
    assert _refusal_code(reply) == "no_run_id" and seen == []


def test_the_mod_refuses_a_train_ticket_on_an_evaluate_message(tmp_path):
    seen: list = []
    governance, _, app, contexts = federation(tmp_path, seen=seen)
    reply = app(_message(governance, message_type="evaluate", ticket_type="train"), contexts[1000])
    assert _refusal_code(reply) == "wrong_message_type" and seen == []


def test_the_mod_refuses_a_ticket_of_another_flower_run(tmp_path):
    seen: list = []
    governance, _, app, contexts = federation(tmp_path, seen=seen)
    reply = app(_message(governance, flower_run_id="99"), contexts[1000])
    assert _refusal_code(reply) == "wrong_flower_run" and seen == []
    unbound = app(_message(governance, flower_run_id=""), contexts[1000])
    assert _refusal_code(unbound) == "wrong_flower_run"


def test_a_ticket_is_used_once_even_after_the_site_restarts(tmp_path):
    seen: list = []
    governance, _, app, contexts = federation(tmp_path, seen=seen)
    msg = _message(governance, message_type="evaluate")
    assert not app(msg, contexts[1000]).has_error()
    assert _refusal_code(app(msg, contexts[1000])) == "ticket_used"
    # A restarted SuperNode: a new app and a new mod, the same folder on disk.
    _, _, restarted, _ = federation(tmp_path, seen=seen)
    assert _refusal_code(restarted(msg, contexts[1000])) == "ticket_used"
    assert seen == ["de-legal"]


def test_an_evaluate_under_an_old_rounds_ticket_is_refused_like_a_train(tmp_path):
    seen: list = []
    governance, _, app, contexts = federation(tmp_path, seen=seen)
    old_eval = _message(governance, message_type="evaluate", round_no=1)
    assert not app(old_eval, contexts[1000]).has_error()
    # Replayed as is, and replayed into round 2's evaluate: both refused.
    assert _refusal_code(app(old_eval, contexts[1000])) == "ticket_used"
    moved = _message(governance, message_type="evaluate", round_no=2, sign_round=1)
    assert _refusal_code(app(moved, contexts[1000])) == "wrong_round"
    old_train = _message(governance, message_type="train", round_no=1)
    assert not app(old_train, contexts[1000]).has_error()
    assert _refusal_code(app(old_train, contexts[1000])) in {"ticket_used", "replayed_round"}
    assert seen == ["de-legal", "de-legal"]


def test_the_used_ticket_store_is_atomic_durable_and_refuses_when_damaged(tmp_path):
    store = UsedTickets(tmp_path / "site" / "used-tickets.txt")
    store.claim("a" * 64)
    assert "a" * 64 in UsedTickets(tmp_path / "site" / "used-tickets.txt")
    assert not list((tmp_path / "site").glob(".used-*"))  # no temp file left behind
    (tmp_path / "site" / "used-tickets.txt").write_text("a" * 64 + "\nnot-an-id\n")
    with pytest.raises(fedgov_flower.TicketRefused, match="used_store_damaged"):
        store.claim("b" * 64)


# --- the data contract ----------------------------------------------------------------


def test_an_app_that_cannot_tell_subjects_apart_is_refused_before_reading_consent_data(tmp_path):
    seen: list = []
    governance, _, app, contexts = federation(tmp_path, subject_aware=False, seen=seen)
    reply = app(_message(governance), contexts[1001])
    assert _refusal_code(reply) == "consent_needs_subjects"
    assert "filter_records" in reply.error.reason and "byo-flower-app" in reply.error.reason
    assert seen == []


def test_a_handler_that_read_consent_data_without_filtering_sends_nothing(tmp_path):
    governance, _, app, contexts = federation(tmp_path, report_subjects=False)
    reply = app(_message(governance), contexts[1001])
    assert _refusal_code(reply) == "consent_needs_subjects"
    assert not reply.has_content()


def test_a_handler_that_uses_a_subject_outside_the_allow_list_sends_nothing(tmp_path):
    governance = FakeGovernance(RUN_ID, SITES)
    governance.allowed = ALLOWED
    lists = Lists({**EXCLUDED, **ALLOWED})
    app = ClientApp(mods=fedgov_flower.mods(fetcher=lists, allowed_fetcher=lists))

    @app.train()
    def train(msg, context):
        fedgov_flower.current_grant().use(["es-7"], records=1, left_out=0)
        return Message(RecordDict({"metrics": MetricRecord({"num-examples": 1})}), reply_to=msg)

    context = site_context(1001, 2, "es-blogs", RUN_ID, governance.public_key_b64)
    msg = _message(governance)
    msg.metadata.dst_node_id = 1001
    reply = app(msg, context)
    assert _refusal_code(reply) == "subject_not_permitted"


def test_replies_without_counts_or_with_another_list_are_not_aggregated(tmp_path):
    governance, grid, app, contexts = federation(tmp_path)
    strategy = GovernedStrategy(FedAvg(fraction_evaluate=0.0), governance=governance,
                                run_id=RUN_ID, sample_timeout=0)  # fmt: skip
    messages = list(strategy.configure_train(1, initial(), ConfigRecord(), grid))
    replies = [app(m, contexts[m.metadata.dst_node_id]) for m in messages]
    es = next(r for r in replies if r.metadata.src_node_id == 1001)
    es.content["fedgov"]["filter-digest"] = exclusion_digest([])  # "I used the default list"
    de = next(r for r in replies if r.metadata.src_node_id == 1000)
    del de.content["metrics"]["records-used"]
    arrays, _ = strategy.aggregate_train(1, replies)

    assert arrays is None
    report = governance.reports[0]
    assert report["updates"] == [] and len(report["rejected"]) == 2
    reasons = [reason for _, reason in strategy.rounds[1].train.rejected]
    assert any("no counts" in r for r in reasons)
    assert any("subject list" in r for r in reasons)


def test_filter_helpers_keep_only_permitted_subjects():
    from fedgov_flower.client_mod import Grant

    ticket = FakeGovernance(RUN_ID, SITES).sign(1)
    grant = Grant(ticket, 2, "es-blogs", frozenset({"es-1"}), frozenset({"es-0", "es-1", "es-2"}))
    kept = filter_records(RECORDS["es-blogs"], grant, key="subject")
    assert [r["subject"] for r in kept] == ["es-0", "es-2"]
    assert (grant.records_used, grant.records_excluded) == (2, 6)
    assert grant.subjects_digest == exclusion_digest(["es-0", "es-2"])
    assert grant.filter_digest == exclusion_digest(["es-0", "es-1", "es-2"])

    import torch

    from fedgov_flower.data import filter_dataset

    class Items(torch.utils.data.Dataset):
        subject = [f"es-{n}" for n in range(8)]

        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.tensor([float(i)])

    subset = filter_dataset(Items(), grant)
    assert list(subset.indices) == [0, 2] and grant.records_excluded == 6


def test_the_pandas_filter_keeps_only_permitted_rows():
    pandas = pytest.importorskip("pandas")
    from fedgov_flower.client_mod import Grant
    from fedgov_flower.data import filter_frame

    ticket = FakeGovernance(RUN_ID, SITES).sign(1)
    grant = Grant(ticket, 2, "es-blogs", frozenset({"es-1"}), frozenset({"es-0", "es-1", "es-2"}))
    frame = pandas.DataFrame(RECORDS["es-blogs"])
    assert filter_frame(frame, grant)["subject"].tolist() == ["es-0", "es-2"]
    assert (grant.records_used, grant.records_excluded) == (2, 6)


# --- the site's own policy ------------------------------------------------------------

CONTEXT = {"purpose": "topic-classification", "aggregator_country": "DE", "approvals": 1}


@pytest.mark.parametrize(
    ("policy", "code"),
    [
        ({"accept_purposes": ["marketing"]}, "site_policy_purpose"),
        ({"aggregator_countries": ["FR"]}, "site_policy_aggregator"),
        ({"min_approvals": 2}, "site_policy_approvals"),
        ({"refuse_runs": [RUN_ID]}, "site_policy_run"),
    ],
)
def test_the_sites_own_policy_refuses_whatever_the_ticket_says(tmp_path, policy, code):
    seen: list = []
    governance, _, app, contexts = federation(
        tmp_path, seen=seen, policy=SitePolicy.from_mapping(policy), context=CONTEXT
    )
    reply = app(_message(governance), contexts[1000])
    assert _refusal_code(reply) == code and seen == []


def test_the_sites_own_policy_admits_a_ticket_within_it_and_reads_toml(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        'accept_purposes = ["topic-classification"]\naggregator_countries = ["de"]\n'
        "min_approvals = 1\nrefuse_runs = [13]\n"
    )
    policy = SitePolicy.load(path)
    governance, _, app, contexts = federation(tmp_path, policy=policy, context=CONTEXT)
    assert not app(_message(governance), contexts[1000]).has_error()
    # A ticket that does not state the facts fails the limits that need them.
    bare, _, bare_app, bare_contexts = federation(tmp_path, policy=policy)
    assert _refusal_code(bare_app(_message(bare), bare_contexts[1000])) == "site_policy_purpose"


def test_an_unreadable_site_policy_refuses_everything(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("accept_purposes = [")
    governance, _, _, contexts = federation(tmp_path)
    context = contexts[1000]
    context.node_config["fedgov-site-policy"] = str(path)
    app = user_app(fedgov_flower.mods(fetcher=Lists(EXCLUDED)))
    assert _refusal_code(app(_message(governance), context)) == "site_policy_unreadable"


def test_the_registration_query_needs_no_ticket_and_reads_no_data(tmp_path):
    seen: list = []
    _, _, app, contexts = federation(tmp_path, seen=seen)
    query = Message(content=RecordDict(), message_type="query.fedgov_identify", dst_node_id=1000)
    reply = app(query, contexts[1000])
    assert reply.content["identity"]["site"] == "de-legal" and seen == []


# --- tickets stored under an older schema ---------------------------------------------


def _schema2_message(governance, *, schema=2) -> Message:
    """A ticket as fedgov signed it under schema 2 (no message type, no Flower run), with
    a valid signature: stored before the upgrade, or replayed."""
    import base64

    import rfc8785

    from fedgov_flower.ticket import key_id_of

    fresh = json.loads(governance.sign(1).body)
    body = {k: v for k, v in fresh.items() if k not in ("message_type", "flower_run_id",
                                                        "context")}  # fmt: skip
    body["schema"] = schema
    raw = rfc8785.dumps(body)
    config = ConfigRecord({
        "server-round": 1,
        CONFIG_BODY: raw.decode(),
        "fedgov.ticket.signature": base64.b64encode(governance.key.sign(raw)).decode(),
        "fedgov.ticket.key_id": key_id_of(governance.key.public_key()),
    })  # fmt: skip
    content = RecordDict({"arrays": initial(), "config": config})
    return Message(content=content, message_type="train", dst_node_id=1000)


@pytest.mark.parametrize(
    ("schema", "code", "says"),
    [
        (2, "outdated_schema", "schema 2, which is no longer accepted"),
        (1, "outdated_schema", "ask fedgov for a new ticket"),
        (4, "unknown_schema", "upgrade fedgov-flower"),
        ("3", "unknown_schema", "schema '3'"),
    ],
)
def test_a_site_refuses_a_ticket_of_another_schema_saying_what_to_do(tmp_path, schema, code, says):
    seen: list = []
    governance, _, app, contexts = federation(tmp_path, seen=seen)
    reply = app(_schema2_message(governance, schema=schema), contexts[1000])
    assert _refusal_code(reply) == code and seen == []
    assert says in str(reply.error.reason)


def test_the_pure_verifier_refuses_a_schema_2_ticket_by_its_own_code(tmp_path):
    from fedgov_flower.ticket import TicketRefused, verify_ticket

    governance, *_ = federation(tmp_path)
    config = _schema2_message(governance).content["config"]
    with pytest.raises(TicketRefused) as refused:
        verify_ticket(
            body=config[CONFIG_BODY],
            signature=config["fedgov.ticket.signature"],
            key_id=config["fedgov.ticket.key_id"],
            public_keys=governance.key.public_key(),
        )
    assert refused.value.code == "outdated_schema"
    assert "schema 3" in str(refused.value)
