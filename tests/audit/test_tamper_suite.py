"""The tamper suite, on PostgreSQL with the append-only triggers dropped: an attacker with
the database and the key folder. Each case is caught by ``ledger_verify`` and by the
offline verifier with the log and witness keys pinned, naming the first bad seq.

The ledger: seq 0 pins the witness, 1..8 events, 9 trusts the log key (first use),
checkpoint 10 witnessed, 10..15 events, checkpoint 16 witnessed.
"""

from __future__ import annotations

import contextlib
import io
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import transaction

from audit import keys, note, witness, witnessing
from audit.bundle import bundle_write
from audit.services import LedgerEvent, checkpoint_create, ledger_append_many
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from tests.audit.test_bundle import run_verifier
from tests.audit.test_presign import _rewrite_everything
from tests.audit.test_witnessing import rollback_to

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _sign_with_attacker(cursor, size: int, key: Ed25519PrivateKey) -> None:
    cursor.execute("SELECT note FROM audit_checkpoint WHERE size = %s", [size])
    body = note.split(cursor.fetchone()[0])[0]
    cursor.execute(
        "UPDATE audit_checkpoint SET note = %s WHERE size = %s",
        [note.sign(body, settings.FEDGOV_LEDGER_ORIGIN, key), size],
    )


def edit_payload(cursor, key_dir):
    cursor.execute("UPDATE audit_ledgerentry SET payload = '{\"n\":99}' WHERE seq = 5")
    return 5


def delete_entry(cursor, key_dir):
    cursor.execute("DELETE FROM audit_ledgerentry WHERE seq = 4")
    return 4


def swap_entries(cursor, key_dir):
    cursor.execute("UPDATE audit_ledgerentry SET seq = 1000 WHERE seq = 3")
    cursor.execute("UPDATE audit_ledgerentry SET seq = 3 WHERE seq = 6")
    cursor.execute("UPDATE audit_ledgerentry SET seq = 6 WHERE seq = 1000")
    return 3


def truncate_tail(cursor, key_dir):
    cursor.execute("DELETE FROM audit_ledgerentry WHERE seq >= 12")
    cursor.execute("DELETE FROM audit_subtreehash WHERE idx * (1 << level) + (1 << level) > 12")
    cursor.execute("UPDATE audit_treehead SET size = 12")
    return 12


def forge_checkpoint(cursor, key_dir):
    _sign_with_attacker(cursor, 16, Ed25519PrivateKey.generate())
    return 15


def attacker_key_in_folder(cursor, key_dir):
    attacker = Ed25519PrivateKey.generate()
    path = key_dir / f"{keys.key_id_of(attacker.public_key())}.pem"
    path.write_bytes(
        attacker.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    _sign_with_attacker(cursor, 16, attacker)
    return 15


def rewrite_with_recomputed_hashes(cursor, key_dir):
    # Leaf hashes, every subtree hash and the tree head recomputed: only the signed
    # checkpoints (and the witnesses) remember the old tree.
    _rewrite_everything(cursor, 5, '{"n":"forged"}')
    return 9  # the first checkpoint whose signed root the entries no longer give


def rollback_with_later_checkpoints(cursor, key_dir):
    cursor.execute("DELETE FROM audit_ledgerentry WHERE seq >= 10")
    cursor.execute("DELETE FROM audit_subtreehash WHERE idx * (1 << level) + (1 << level) > 10")
    cursor.execute("UPDATE audit_treehead SET size = 10")
    return 10


def delete_checkpoints_then_edit(cursor, key_dir):
    cursor.execute("DELETE FROM audit_cosignature")
    cursor.execute("DELETE FROM audit_checkpoint")
    cursor.execute("UPDATE audit_ledgerentry SET payload = '{\"n\":77}' WHERE seq = 7")
    return 7


CASES = [
    edit_payload,
    delete_entry,
    swap_entries,
    truncate_tail,
    forge_checkpoint,
    attacker_key_in_folder,
    rewrite_with_recomputed_hashes,
    rollback_with_later_checkpoints,
    delete_checkpoints_then_edit,
]


@pytest.fixture
def witnessed_ledger(append, checkpoint, witnesses):
    [w] = witnesses(1, 1)
    append(8)
    assert checkpoint().size == 10
    witnessing.checkpoint_witness()
    append(6, start=8)
    assert checkpoint().size == 16
    assert witnessing.checkpoint_witness().cosigned == 1
    return w


def ledger_verify_failure(*args: str) -> str:
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("ledger_verify", "--no-progress", *args, stdout=io.StringIO(), stderr=err)
    return str(caught.value)


def offline_failure(w, tmp_path, last: int) -> str:
    bundle = tmp_path / "bundle"
    # A damaged ledger is exported whole all the same; what bundle_write raises for it
    # (nothing, as it is) matters less than the bundle being there.
    with contextlib.suppress(InvalidInput):
        bundle_write(first_seq=0, last_seq=last, out=bundle)
    assert (bundle / "manifest.json").exists(), "no bundle written"
    origin = settings.FEDGOV_LEDGER_ORIGIN
    result = run_verifier(
        str(bundle),
        "--trusted-key", note.verifier_key(origin, keys.active_key().public_key),
        "--witness-key", witness.cosigner_vkey(w.name, w.key.public_key()),
        "--witness-state", str(w.state_path),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stderr


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_tamper_is_caught_online_and_offline_naming_the_first_bad_seq(
    case, witnessed_ledger, tamper, key_dir, tmp_path
):
    w = witnessed_ledger
    with tamper() as db, db.cursor() as cursor:
        seq = case(cursor, key_dir)
    assert f"first bad seq {seq}" in ledger_verify_failure("--witness-state", str(w.state_path))
    head = witnessing.selectors.tree_size()
    assert f"first bad seq: {seq}" in offline_failure(w, tmp_path, head - 1)


@pytest.mark.parametrize("detected_by", ["state_file", "asking_the_witness", "maximum_lag"])
def test_rollback_without_its_later_checkpoints(
    witnessed_ledger, tamper, tmp_path, monkeypatch, detected_by
):
    # A restored backup at size 10: self-consistent, signed, witnessed at 10. Only what a
    # witness remembers (its state file, or its answer when asked), or the lag, shows what
    # was lost.
    w = witnessed_ledger
    rollback_to(10, tamper)
    if detected_by == "state_file":
        message = ledger_verify_failure("--witness-state", str(w.state_path))
        assert "first bad seq 10: the ledger holds 10 entries" in message
        assert "first bad seq: 10" in offline_failure(w, tmp_path, 9)
    elif detected_by == "asking_the_witness":
        # Online, with no state file: the witness is asked with the newest stored
        # checkpoint (size 10) and answers 409 with the size it cosigned (16).
        message = ledger_verify_failure()
        assert (
            f"first bad seq 10: witness {w.name} cosigned size 16, but the ledger holds 10 "
            "entries (newest checkpoint at size 10): rolled back"
        ) in message
        # Asking moved nothing: the witness still holds 16 and cosigns nothing older.
        assert witnessing.witness_sizes()[1][0].size == 16
        assert '"size": 16' in w.state_path.read_text()
    else:
        # Not asking the witnesses, new appends after the restore stay unwitnessed: the
        # witness refuses the forked history (its size is 16), and the lag shows it.
        with transaction.atomic():
            ledger_append_many(
                actor=Actor.system("tests"), events=[LedgerEvent("test.after", "thing", 1, {})]
            )
        call_command("ledger_verify", "--no-progress", "--no-ask-witnesses", stdout=io.StringIO())
        checkpoint_create(actor=Actor.system("tests"))
        outcome = witnessing.checkpoint_witness()
        assert outcome.cosigned == 0
        assert "holds size 16, above 11: a rollback?" in outcome.failures[0].detail
        later = clock.now() + settings.FEDGOV_WITNESS_MAX_LAG + timedelta(seconds=5)
        monkeypatch.setattr(clock, "now", lambda: later)
        assert "first bad seq 10" in ledger_verify_failure("--no-ask-witnesses")


def test_rollback_below_a_down_witness_is_reported_and_fails_only_a_required_quorum(
    witnessed_ledger, tamper
):
    # The one witness that remembers size 16 is down: asking shows nothing, and a witness
    # that is down is not by itself a failure, so the rollback passes within the lag...
    w = witnessed_ledger
    rollback_to(10, tamper)
    w.stop()
    err = io.StringIO()
    call_command("ledger_verify", "--no-progress", stdout=io.StringIO(), stderr=err)
    assert f"WARN witness {w.name}: unreachable" in err.getvalue()
    # ...unless answers from a quorum of witnesses are required.
    message = ledger_verify_failure("--witnesses-required", "1")
    assert "only 0 of 1 witnesses answered the size they cosigned, 1 required" in message
