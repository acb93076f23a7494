"""fedgov never signs what it has not verified: checkpoint_create refuses a tampered ledger."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from audit import merkle, note, presign
from audit.leaf import format_time, leaf_document
from audit.models import Checkpoint, LedgerEntry, SubtreeHash, TreeHead
from fedgov.errors import TransitionNotAllowed

pytestmark = pytest.mark.django_db


def _document(entry: LedgerEntry, payload: str | None = None) -> bytes:
    return leaf_document(
        seq=entry.seq,
        event_type=entry.event_type,
        actor=entry.actor_repr,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
        time=format_time(entry.created_at),
        payload=entry.payload if payload is None else payload,
    )


def _rewrite_everything(cursor, seq: int, payload: str) -> None:
    """The strongest database-only forgery: edit one entry, then recompute its leaf hash,
    every subtree hash and the tree head, so that every stored hash agrees with the rows."""
    cursor.execute("UPDATE audit_ledgerentry SET payload = %s WHERE seq = %s", [payload, seq])
    leaves = []
    for entry in LedgerEntry.objects.order_by("seq"):
        digest = merkle.leaf_hash(_document(entry))
        cursor.execute(
            "UPDATE audit_ledgerentry SET leaf_hash = %s WHERE seq = %s", [digest, entry.seq]
        )
        leaves.append(digest)
    node = merkle.nodes_from_leaves(leaves)
    cursor.execute("DELETE FROM audit_subtreehash")
    for level in range(1, len(leaves).bit_length()):
        for index in range(len(leaves) >> level):
            cursor.execute(
                "INSERT INTO audit_subtreehash (level, idx, hash) VALUES (%s, %s, %s)",
                [level, index, node(level, index)],
            )
    frontier = b"".join(node(lv, ix) for lv, ix in merkle.root_nodes(len(leaves)))
    cursor.execute("UPDATE audit_treehead SET frontier = %s WHERE id = 1", [frontier])


def refused(checkpoint) -> presign.UnverifiedLedger:
    before = list(Checkpoint.objects.values_list("size", flat=True))
    with pytest.raises(presign.UnverifiedLedger) as caught:
        checkpoint()
    # Nothing was signed.
    assert list(Checkpoint.objects.values_list("size", flat=True)) == before
    return caught.value


@pytest.mark.parametrize("sizes", [[1], [5, 13, 37], [8, 16, 17], [3, 4, 100]])
def test_signed_root_is_the_rfc9162_root_of_the_entries_at_every_size(sizes, append, checkpoint):
    done = 0
    for size in sizes:
        append(size - done, start=done)
        done = size
        cp = checkpoint()
        leaves = [merkle.leaf_hash(_document(e)) for e in LedgerEntry.objects.order_by("seq")]
        # +1: the first checkpoint trusted its key on first use, a ledger event.
        assert (cp.size, bytes(cp.root)) == (size + 1, merkle.root(leaves))


def test_batches_and_unaligned_previous_checkpoint_verify(monkeypatch, append, checkpoint):
    monkeypatch.setattr(presign, "BATCH", 3)
    append(7)
    checkpoint()
    append(26, start=7)
    cp = checkpoint()
    assert cp.size == 34  # 33 appended + the first-use key event
    leaves = [bytes(e.leaf_hash) for e in LedgerEntry.objects.order_by("seq")]
    assert bytes(cp.root) == merkle.root(leaves)


def test_refusal_is_a_409_kind_of_error(append, checkpoint, tamper):
    append(3)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET payload = '{}' WHERE seq = 1")
    assert isinstance(refused(checkpoint), TransitionNotAllowed)


def test_edited_payload_since_the_last_checkpoint_is_refused_and_named(append, checkpoint, tamper):
    append(5)
    checkpoint()
    append(6, start=5)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET payload = %s WHERE seq = 8", ['{"n":0}'])
    error = refused(checkpoint)
    assert error.seq == 8
    assert "seq 8: leaf hash does not match" in str(error)


def test_first_checkpoint_verifies_the_whole_ledger(append, checkpoint, tamper):
    append(20)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET subject_id = 'x' WHERE seq = 2")
    assert refused(checkpoint).seq == 2


def test_edited_leaf_hash_column_is_refused(append, checkpoint, tamper):
    append(4)
    checkpoint()
    append(4, start=4)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET leaf_hash = %s WHERE seq = 6", [bytes(32)])
    assert refused(checkpoint).seq == 6


def test_deleted_entry_since_the_last_checkpoint_is_refused(append, checkpoint, tamper):
    append(4)
    checkpoint()
    append(6, start=4)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_ledgerentry WHERE seq = 7")
    error = refused(checkpoint)
    assert error.seq == 7
    assert "missing" in str(error)


def test_entry_and_its_leaf_hash_rewritten_is_caught_by_the_subtree(append, checkpoint, tamper):
    append(3)
    checkpoint()
    append(5, start=3)
    entry = LedgerEntry.objects.get(seq=5)
    payload = '{"n":555}'
    with tamper() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_ledgerentry SET payload = %s, leaf_hash = %s WHERE seq = 5",
            [payload, merkle.leaf_hash(_document(entry, payload))],
        )
    error = refused(checkpoint)
    assert "stored subtree hash (level 1, index 2) does not match the entries 4..5" in str(error)
    assert error.seq == 4


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_new_subtree_row_edited_or_deleted_is_refused(change, append, checkpoint, tamper):
    append(3)
    checkpoint()
    append(13, start=3)  # completes (2, 1), (3, 1), (4, 0) among others
    with tamper() as db, db.cursor() as cursor:
        if change == "edit":
            cursor.execute(
                "UPDATE audit_subtreehash SET hash = %s WHERE level = 3 AND idx = 1", [bytes(32)]
            )
        else:
            cursor.execute("DELETE FROM audit_subtreehash WHERE level = 3 AND idx = 1")
    error = refused(checkpoint)
    word = "does not match" if change == "edit" else "is missing for"
    assert f"(level 3, index 1) {word} the entries 8..15" in str(error)


def test_forged_tree_head_frontier_is_refused(append, checkpoint, tamper):
    append(6)
    checkpoint()
    append(5, start=6)
    with tamper() as db, db.cursor() as cursor:
        head = TreeHead.objects.get(pk=1)
        forged = bytes(head.frontier)[:-32] + bytes(32)
        cursor.execute("UPDATE audit_treehead SET frontier = %s WHERE id = 1", [forged])
    assert "frontier does not match" in str(refused(checkpoint))


def test_old_entry_rewritten_with_all_hashes_recomputed_is_refused(append, checkpoint, tamper):
    # Every stored hash agrees with the rows; only the signed checkpoint remembers.
    append(10)
    checkpoint()
    append(3, start=10)
    with tamper() as db, db.cursor() as cursor:
        _rewrite_everything(cursor, 4, '{"n":"forged"}')
    error = refused(checkpoint)
    assert "entries 0..10 no longer give the signed root of the checkpoint at size 11" in str(error)


def test_unchanged_size_with_a_rewritten_tree_is_refused_not_returned(append, checkpoint, tamper):
    append(9)
    checkpoint()
    with tamper() as db, db.cursor() as cursor:
        _rewrite_everything(cursor, 2, '{"n":"forged"}')
    assert "signed root of the checkpoint at size 10" in str(refused(checkpoint))


def test_forged_latest_checkpoint_is_refused(append, checkpoint, tamper):
    append(4)
    cp = checkpoint()
    append(2, start=4)
    body, _sigs = note.split(cp.note)
    stranger = Ed25519PrivateKey.generate()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_checkpoint SET note = %s WHERE size = 5",
            [note.sign(body, settings.FEDGOV_LEDGER_ORIGIN, stranger)],
        )
    error = refused(checkpoint)
    assert error.seq == 4
    assert "latest checkpoint (size 5): signed by no trusted key" in str(error)


def test_checkpoint_row_disagreeing_with_its_note_is_refused(append, checkpoint, tamper):
    append(4)
    checkpoint()
    append(1, start=4)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_checkpoint SET root = %s WHERE size = 5", [bytes(32)])
    assert "a root that its row does not repeat" in str(refused(checkpoint))


def test_truncated_tail_below_a_signed_checkpoint_is_refused(append, checkpoint, tamper):
    append(10)
    checkpoint()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_ledgerentry WHERE seq >= 7")
        cursor.execute("DELETE FROM audit_subtreehash WHERE idx * (1 << level) + (1 << level) > 7")
        cursor.execute("UPDATE audit_treehead SET size = 7")
    error = refused(checkpoint)
    assert error.seq == 7
    assert "checkpoint at size 11 exists but the tree head says 7" in str(error)


def test_entry_past_the_tree_head_is_refused(append, checkpoint, tamper):
    append(6)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_treehead SET size = 5")
    # The head now claims 5 entries (its frontier is stale, too); seq 5 sits past it.
    error = refused(checkpoint)
    assert error.seq is not None and error.seq <= 5


def test_entry_past_a_consistent_tree_head_is_named(append, checkpoint, tamper):
    append(4)
    checkpoint()  # size 5: four entries and the first-use key event
    append(1, start=4)
    with tamper() as db, db.cursor() as cursor:
        # Roll the head back to size 5 with its correct frontier: only the stray row is left.
        frontier = bytes(SubtreeHash.objects.get(level=2, idx=0).hash) + bytes(
            LedgerEntry.objects.get(seq=4).leaf_hash
        )
        cursor.execute("UPDATE audit_treehead SET size = 5, frontier = %s WHERE id = 1", [frontier])
    error = refused(checkpoint)
    assert error.seq == 5
    assert "entry exists past the tree head's size 5" in str(error)


def test_redacted_entry_no_checkpoint_covers_is_refused(append, checkpoint, tamper):
    append(3)
    checkpoint()
    append(3, start=3)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_ledgerentry SET payload = '{}', actor_id = NULL, actor_repr = '', "
            "redacted_at = created_at WHERE seq = 4"
        )
    error = refused(checkpoint)
    assert error.seq == 4
    assert "no signed checkpoint covered it" in str(error)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_checkpoints_signed_while_writers_append_all_verify_and_nothing_is_refused():
    # The head stays locked from verification to signature: a writer committing between
    # them would otherwise make the verified tree and the signed tree differ.
    import threading

    from django.core.management import call_command
    from django.db import connection, transaction

    from audit.services import checkpoint_create, ledger_append
    from fedgov.actors import Actor

    errors: list[BaseException] = []
    signed: list[int] = []
    stop = threading.Event()

    def write(number: int) -> None:
        try:
            for i in range(15):
                with transaction.atomic(durable=True):
                    ledger_append(
                        event_type="test.concurrent",
                        actor=Actor.system(f"writer-{number}"),
                        subject_type="writer",
                        subject_id=f"{number}-{i}",
                        payload={"writer": number, "i": i},
                    )
        except BaseException as exc:  # collected and asserted on the main thread
            errors.append(exc)
        finally:
            connection.close()

    def sign() -> None:
        try:
            while not stop.is_set():
                if TreeHead.objects.filter(size__gt=0).exists():
                    signed.append(checkpoint_create(actor=Actor.system("signer")).size)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    signer = threading.Thread(target=sign)
    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    signer.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    signer.join()
    assert errors == []
    assert len(set(signed)) >= 2
    checkpoint_create(actor=Actor.system("signer"))
    assert Checkpoint.objects.order_by("-size").first().size == 61  # + the first-use key
    call_command("ledger_verify", "--no-progress")
