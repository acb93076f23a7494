"""manage.py ledger_verify: a clean ledger passes; every tamper behind the guards is named."""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command

from audit import merkle, note
from audit.integrity import CHUNK_LEVEL
from audit.leaf import format_time, leaf_document
from audit.models import Checkpoint, LedgerEntry

pytestmark = pytest.mark.django_db


def verify(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("ledger_verify", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def failure(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        verify(*args)
    return str(caught.value)


def test_clean_ledger_with_checkpoints_verifies(append, checkpoint):
    append(10)
    checkpoint()
    append(7, start=10)
    checkpoint()
    out, _err = verify()
    assert "OK: 18 entries, 2 checkpoints" in out  # 17 events + the key trusted on first use


def test_edited_payload_is_named(append, checkpoint, tamper):
    append(12)
    checkpoint()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET payload = %s WHERE seq = 5", ['{"n":500}'])
    assert "first bad seq 5: leaf hash does not match" in failure()


def test_edited_event_type_is_named_though_the_payload_is_intact(append, tamper):
    append(6)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET event_type = 'test.other' WHERE seq = 2")
    assert "first bad seq 2" in failure()


def test_deleted_row_is_named(append, checkpoint, tamper):
    append(9)
    checkpoint()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_ledgerentry WHERE seq = 4")
    assert "first bad seq 4: entry is missing" in failure()


def test_swapped_rows_are_named(append, tamper):
    append(8)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET seq = 1000000 WHERE seq = 3")
        cursor.execute("UPDATE audit_ledgerentry SET seq = 3 WHERE seq = 6")
        cursor.execute("UPDATE audit_ledgerentry SET seq = 6 WHERE seq = 1000000")
    assert "first bad seq 3: leaf hash does not match" in failure()


def test_payload_and_leaf_hash_rewritten_together_are_caught_by_the_tree(append, tamper):
    append(8)
    entry = LedgerEntry.objects.get(seq=6)
    payload = '{"n":600}'
    leaf = leaf_document(
        seq=6,
        event_type=entry.event_type,
        actor=entry.actor_repr,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
        time=format_time(entry.created_at),
        payload=payload,
    )
    with tamper() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_ledgerentry SET payload = %s, leaf_hash = %s WHERE seq = 6",
            [payload, merkle.leaf_hash(leaf)],
        )
    assert "first bad seq 6: stored subtree hash (level 1, index 3) does not match" in failure()


def test_tampered_subtree_hash_is_named(append, tamper):
    append(16)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_subtreehash SET hash = %s WHERE level = 2 AND idx = 1", [bytes(32)]
        )
    assert "first bad seq 4: stored subtree hash (level 2, index 1) does not match" in failure()


def test_truncated_tail_after_a_checkpoint_is_named(append, checkpoint, tamper):
    append(10)
    checkpoint()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_ledgerentry WHERE seq >= 7")
        cursor.execute("DELETE FROM audit_subtreehash WHERE idx * (1 << level) + (1 << level) > 7")
        cursor.execute("UPDATE audit_treehead SET size = 7")
    assert "first bad seq 7: entry is missing" in failure()


def test_forged_checkpoint_signature_is_named(append, checkpoint, tamper):
    append(5)
    cp = checkpoint()  # 5 events + the key trusted on first use
    body, signatures = note.split(cp.note)
    sig = signatures[0]
    forged = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
    blob = note.base64.b64encode(sig.key_hash + forged).decode()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_checkpoint SET note = %s WHERE size = 6",
            [f"{body}\n\u2014 {sig.name} {blob}\n"],
        )
    message = failure()
    assert "first bad seq 5: checkpoint at size 6: signature by key" in message
    assert "does not verify" in message


def test_checkpoint_signed_by_an_unknown_key_is_named(append, checkpoint, tamper):
    append(5)
    cp = checkpoint()  # 5 events + the key trusted on first use
    body, _sigs = note.split(cp.note)
    stranger = Ed25519PrivateKey.generate()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_checkpoint SET note = %s WHERE size = 6",
            [note.sign(body, settings.FEDGOV_LEDGER_ORIGIN, stranger)],
        )
    assert "first bad seq 5: checkpoint at size 6: signed by no trusted key" in failure()


def test_checkpoint_with_a_root_the_entries_do_not_give_is_named(append, tamper, system_actor):
    # A checkpoint that verifies cryptographically but states another root: a lie by the
    # holder of the key must still be caught against the entries.
    from audit import keys, trust
    from audit.note import Checkpoint as Body
    from fedgov import clock

    trust.key_trust_active(actor=system_actor, reason="the key of this test")
    append(3)
    key = keys.active_key()
    stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    body = Body(settings.FEDGOV_LEDGER_ORIGIN, 4, bytes(32), stamp).body()
    Checkpoint.objects.create(
        size=4,
        root=bytes(32),
        created_at=stamp,
        key_id=key.key_id,
        note=note.sign(body, settings.FEDGOV_LEDGER_ORIGIN, key.private_key),
        created_by="forger",
    )
    assert (
        "first bad seq 3: checkpoint at size 4: signed root is not the entries' root" in failure()
    )


def test_progress_bar_on_stderr_when_asked(append):
    append((1 << CHUNK_LEVEL) + 5)
    out, err = verify("--progress")
    assert "OK" in out
    assert f"{(1 << CHUNK_LEVEL) + 5}/{(1 << CHUNK_LEVEL) + 5} entries" in err
    assert "[#" in err


def test_problem_past_the_first_chunk_is_named_with_its_seq(append, tamper):
    size = (1 << CHUNK_LEVEL) * 2 + 3
    append(size)
    target = (1 << CHUNK_LEVEL) + 17
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET subject_id = 'x' WHERE seq = %s", [target])
    assert f"first bad seq {target}:" in failure("--no-progress")
