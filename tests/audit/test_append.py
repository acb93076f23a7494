"""ledger_append: one leaf per event, the Merkle tree kept as it grows, all-or-nothing."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit import merkle
from audit.leaf import leaf_document
from audit.models import LedgerEntry, SubtreeHash, TreeHead
from audit.services import LedgerEvent, ledger_append, ledger_append_many
from fedgov.actors import Actor
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _leaves():
    return [bytes(e.leaf_hash) for e in LedgerEntry.objects.order_by("seq")]


def test_append_writes_consecutive_seqs_and_canonical_payload(system_actor):
    with transaction.atomic():
        first = ledger_append(
            event_type="test.happened",
            actor=system_actor,
            subject_type="site",
            subject_id=7,
            payload={"z": 1, "a": [3, 2], "country": "DE"},
        )
        second = ledger_append(
            event_type="test.after",
            actor=system_actor,
            subject_type="site",
            subject_id="7",
            payload={},
        )
    assert (first.seq, second.seq) == (0, 1)
    stored = LedgerEntry.objects.get(seq=0)
    assert stored.payload == '{"a":[3,2],"country":"DE","z":1}'
    assert stored.subject_id == "7"
    assert stored.actor_repr == "system:tests"
    assert TreeHead.objects.get().size == 2


def test_leaf_hash_covers_every_column_of_the_entry():
    user = UserFactory(username="alice")
    with transaction.atomic():
        entry = ledger_append(
            event_type="test.leaf",
            actor=Actor.of(user),
            subject_type="consent",
            subject_id="c-1",
            payload={"dataset_id": 3},
        )
    entry.refresh_from_db()
    document = leaf_document(
        seq=0,
        event_type="test.leaf",
        actor=f"user:{user.pk}",
        subject_type="consent",
        subject_id="c-1",
        time=entry.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        payload='{"dataset_id":3}',
    )
    parsed = json.loads(document)
    assert list(parsed) == sorted(parsed)
    assert parsed["actor"] == f"user:{user.pk}"  # a pseudonym, not the user name
    assert "alice" not in document.decode()
    assert bytes(entry.leaf_hash) == hashlib.sha256(b"\x00" + document).digest()


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 9, 33])
def test_stored_subtrees_and_head_match_the_rfc_tree(append, count):
    append(count)
    leaves = _leaves()
    head = TreeHead.objects.get()
    assert head.size == count
    assert merkle.fold(
        [bytes(head.frontier)[i : i + 32] for i in range(0, len(head.frontier), 32)]
    ) == merkle.root(leaves)
    node = merkle.nodes_from_leaves(leaves)
    stored = {(s.level, s.idx): bytes(s.hash) for s in SubtreeHash.objects.all()}
    # Exactly the complete subtrees of two or more leaves: n - popcount(n) of them.
    assert len(stored) == count - bin(count).count("1")
    for (level, idx), digest in stored.items():
        assert digest == node(level, idx)


def test_batches_and_single_appends_build_the_same_tree(append, system_actor):
    append(5)
    with transaction.atomic():
        for i in range(5, 11):
            ledger_append(
                event_type="test.happened",
                actor=system_actor,
                subject_type="thing",
                subject_id=i,
                payload={"n": i},
            )
    append(6, start=11)
    leaves = _leaves()
    assert [e.seq for e in LedgerEntry.objects.all()] == list(range(17))
    nodes = {(s.level, s.idx): bytes(s.hash) for s in SubtreeHash.objects.all()}
    assert nodes[(4, 0)] == merkle.nodes_from_leaves(leaves)(4, 0)


@pytest.mark.django_db(transaction=True)
def test_append_outside_a_transaction_is_refused(system_actor):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        ledger_append(
            event_type="test.happened",
            actor=system_actor,
            subject_type="site",
            subject_id=1,
            payload={},
        )
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event_type", "SiteRegistered", "does not match"),
        ("event_type", "site", "does not match"),
        ("subject_type", "", "1 to 64"),
        ("subject_id", "x" * 65, "1 to 64"),
        ("subject_id", "a\nb", "control characters"),
        ("payload", {"contact": "dpo@site.example"}, "personal data"),
        ("payload", {"score": float("nan")}, "canonical-JSON"),
        ("payload", ["not", "an", "object"], "JSON object"),
        ("payload", {"blob": "x" * 70_000}, "limit"),
    ],
)
def test_malformed_events_are_refused_and_nothing_is_written(system_actor, field, value, reason):
    event = {
        "event_type": "test.happened",
        "subject_type": "site",
        "subject_id": "1",
        "payload": {"ok": True},
    }
    event[field] = value
    with pytest.raises(ValueError, match=reason), transaction.atomic():
        ledger_append_many(
            actor=system_actor,
            events=[LedgerEvent("test.happened", "site", 0, {}), LedgerEvent(**event)],
        )
    assert not LedgerEntry.objects.exists()
    assert not TreeHead.objects.filter(size__gt=0).exists()


def test_a_rolled_back_change_takes_its_event_with_it(append, system_actor):
    append(3)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        ledger_append(
            event_type="test.happened",
            actor=system_actor,
            subject_type="site",
            subject_id=1,
            payload={},
        )
        1 / 0  # noqa: B018 -- the change this event records fails
    assert TreeHead.objects.get().size == 3
    assert LedgerEntry.objects.count() == 3
    append(1, start=3)
    assert list(LedgerEntry.objects.values_list("seq", flat=True)) == [0, 1, 2, 3]


def test_one_append_costs_a_fixed_number_of_queries(append, system_actor):
    append(1023)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        ledger_append(
            event_type="test.happened",
            actor=system_actor,
            subject_type="site",
            subject_id=1,
            payload={},
        )
    # lock head, insert entry, insert completed subtrees (seq 1023 completes ten), update head
    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 4


def test_long_payloads_are_scanned_for_addresses_at_any_place(system_actor):
    # Long runs of one character and of many "@" without a domain are not addresses;
    # an address at the very end of a long payload still is.
    with transaction.atomic():
        ledger_append(
            event_type="test.happened",
            actor=system_actor,
            subject_type="site",
            subject_id="1",
            payload={"a": "x" * 60_000, "b": "@x" * 1_000},
        )
    with pytest.raises(ValueError, match=r"e-mail address at payload\.tail"), transaction.atomic():
        ledger_append(
            event_type="test.happened",
            actor=system_actor,
            subject_type="site",
            subject_id="2",
            payload={"a": "x" * 60_000, "tail": "write to dpo@site.example"},
        )
    assert LedgerEntry.objects.count() == 1
