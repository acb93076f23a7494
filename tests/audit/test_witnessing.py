"""fedgov asks real witnesses (``audit.witness`` over loopback HTTP) to cosign its
checkpoints; ledger_verify fails unwitnessed lag and rollbacks below a witness's state."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command

from audit import note, witness, witnessing
from audit.models import Cosignature, LedgerEntry
from audit.tasks import checkpoint_if_new
from fedgov import clock
from tests.audit.conftest import RunningWitness

pytestmark = pytest.mark.django_db


def rollback_to(size: int, tamper) -> None:
    """Restore the database as it was at ``size``: later entries, nodes, checkpoints and
    cosignatures gone, the tree head back with its true frontier."""
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_cosignature WHERE checkpoint_id > %s", [size])
        cursor.execute("DELETE FROM audit_checkpoint WHERE size > %s", [size])
        cursor.execute("DELETE FROM audit_ledgerentry WHERE seq >= %s", [size])
        cursor.execute(
            "DELETE FROM audit_subtreehash WHERE idx * (1 << level) + (1 << level) > %s", [size]
        )
        nodes = witnessing.merkle.root_nodes(size)
        found = witnessing.selectors.fetch_nodes(nodes)
        frontier = b"".join(found[node] for node in nodes)
        cursor.execute("UPDATE audit_treehead SET size = %s, frontier = %s", [size, frontier])


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("ledger_verify", "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def verify_failure(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        verify(*args)
    return str(caught.value)


def test_each_checkpoint_is_cosigned_by_every_witness_with_a_consistency_proof(
    append, checkpoint, witnesses
):
    running = witnesses(3, 2)
    append(5)
    first = checkpoint()
    outcome = witnessing.checkpoint_witness()
    assert (outcome.cosigned, outcome.witnessed, outcome.failures) == (3, True, [])
    append(7, start=5)
    second = checkpoint()
    outcome = witnessing.checkpoint_witness()  # old size = the first, with a proof
    assert outcome.cosigned == 3
    body = note.split(second.note)[0]
    for w in running:
        row = Cosignature.objects.get(checkpoint=second, witness=w.name)
        cosig = witness.open_cosignature(row.line, body, w.name, w.key.public_key())
        assert cosig.timestamp == row.timestamp
        assert (
            json.loads(w.state_path.read_text())["logs"][first.note.split("\n")[0]]["size"]
            == second.size
        )
    assert witnessing.witnessed_size() == (second.size, bytes(second.root))


def test_a_witness_that_is_down_is_reported_and_blocks_nothing(
    append, checkpoint, witnesses, system_actor
):
    running = witnesses(3, 2)
    running[1].stop()
    append(4)
    checkpoint()
    outcome = witnessing.checkpoint_witness()
    assert outcome.witnessed and outcome.cosigned == 2
    [down] = outcome.failures
    assert down.name == running[1].name and "unreachable" in down.detail
    before = LedgerEntry.objects.count()
    append(2, start=4)  # appending never waited for anyone
    assert LedgerEntry.objects.count() == before + 2


def test_below_quorum_is_not_witnessed(append, checkpoint, witnesses):
    running = witnesses(2, 2)
    running[0].stop()
    append(3)
    checkpoint()
    assert not witnessing.checkpoint_witness().witnessed
    assert witnessing.witnessed_size() == (0, witnessing.merkle.EMPTY_ROOT)


def test_unpinned_witness_is_not_counted(append, checkpoint, witnesses):
    witnesses(2, 1, pin=False)
    append(2)
    checkpoint()
    outcome = witnessing.checkpoint_witness()
    assert outcome.cosigned == 0
    assert all("no valid pinned witness key" in r.detail for r in outcome.failures)
    assert not Cosignature.objects.exists()


def test_a_witness_answering_with_another_key_is_not_stored(append, checkpoint, witnesses):
    [w] = witnesses(1, 1)
    w.witness.key = Ed25519PrivateKey.generate()  # the server now signs with a stranger key
    append(2)
    checkpoint()
    outcome = witnessing.checkpoint_witness()
    assert outcome.cosigned == 0 and "no valid cosignature" in outcome.failures[0].detail


def test_a_witness_that_lost_its_state_is_brought_along_from_the_size_it_names(
    append, checkpoint, witnesses
):
    [w] = witnesses(1, 1)
    append(3)
    checkpoint()
    witnessing.checkpoint_witness()
    w.witness.state.logs.clear()  # it forgot: it answers 409 "0"
    append(3, start=3)
    checkpoint()
    assert witnessing.checkpoint_witness().cosigned == 1


def test_beat_task_witnesses_and_asks_again_after_an_outage(append, witnesses, settings):
    running = witnesses(2, 1)
    running[0].stop()
    append(2)
    assert checkpoint_if_new() == 5  # 2 witness keys pinned, 2 events, the log key
    assert Cosignature.objects.count() == 1
    # The site brings its witness back (same key and state, new port).
    back = RunningWitness(
        running[0].state_path.parent, running[0].name, "", key=running[0].key, logs=running[0]
    )
    running.append(back)
    settings.FEDGOV_WITNESSES = [(back.name, back.url), (running[1].name, running[1].url)]
    assert checkpoint_if_new() is None  # nothing new to sign, but the missing one is asked
    assert Cosignature.objects.count() == 2


def test_ledger_verify_fails_entries_older_than_the_lag_no_witnessed_checkpoint_covers(
    append, checkpoint, witnesses, monkeypatch, settings
):
    running = witnesses(2, 2)
    append(4)
    checkpoint()
    witnessing.checkpoint_witness()
    # seqs 0-1 pin the witnesses, 2-5 are events, 6 trusts the log key; 7-9 come now
    append(3, start=4)
    assert "OK:" in verify()  # within the lag
    later = clock.now() + settings.FEDGOV_WITNESS_MAX_LAG + timedelta(seconds=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    for w in running:  # the witnesses' clocks move on too: a cosignature never predates
        w.witness.clock = later.timestamp
    message = verify_failure()
    assert "first bad seq 7: written at" in message
    assert "newest witnessed checkpoint is at size 7" in message
    checkpoint()
    witnessing.checkpoint_witness()
    out = verify()
    assert "OK:" in out
    assert "newest checkpoint with 2 valid cosignatures is at size 10" in out


def test_deleting_every_checkpoint_leaves_old_entries_unwitnessed(
    append, checkpoint, witnesses, monkeypatch, settings, tamper
):
    witnesses(1, 1)
    append(3)
    checkpoint()
    witnessing.checkpoint_witness()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_cosignature")
        cursor.execute("DELETE FROM audit_checkpoint")
        cursor.execute("UPDATE audit_ledgerentry SET payload = '{}' WHERE seq = 1")
    later = clock.now() + settings.FEDGOV_WITNESS_MAX_LAG + timedelta(seconds=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    message = verify_failure()
    assert "first bad seq 1" in message  # the edit, found by the entries' own hashes


def test_rollback_below_what_a_witness_saw_is_named_with_its_state_file(
    append, checkpoint, witnesses, tamper
):
    [w] = witnesses(1, 1)
    append(4)
    old = checkpoint().size
    witnessing.checkpoint_witness()
    append(6, start=4)
    new = checkpoint().size
    witnessing.checkpoint_witness()
    rollback_to(old, tamper)
    # On its own, the rolled-back database is self-consistent...
    assert "OK:" in verify("--no-ask-witnesses")
    # ...but the witness, asked, remembers the larger tree.
    assert f"cosigned size {new}, but the ledger holds {old} entries" in verify_failure()
    message = verify_failure("--witness-state", str(w.state_path))
    assert f"first bad seq {old}: the ledger holds {old} entries but the witness" in message
    assert f"cosigned size {new}: rolled back" in message


def test_rewritten_history_differs_from_the_witness_state(append, checkpoint, witnesses, tamper):
    from tests.audit.test_presign import _rewrite_everything

    [w] = witnesses(1, 1)
    append(6)
    size = checkpoint().size
    witnessing.checkpoint_witness()
    with tamper() as db, db.cursor() as cursor:
        _rewrite_everything(cursor, 2, '{"n":"forged"}')
        cursor.execute("DELETE FROM audit_cosignature")
        cursor.execute("DELETE FROM audit_checkpoint")
    message = verify_failure("--witness-state", str(w.state_path))
    assert f"the tree at size {size} is not the one the witness" in message


def test_witness_state_file_that_is_unreadable_fails(append, checkpoint, tmp_path):
    append(1)
    checkpoint()
    missing = tmp_path / "none.json"
    assert "holds no state" in verify_failure("--witness-state", str(missing))


def test_a_cosignature_dated_before_its_checkpoint_is_not_stored(append, checkpoint, witnesses):
    [w] = witnesses(1, 1)
    append(3)
    row = checkpoint()
    # The witness's clock is an hour behind fedgov's: its cosignature predates the note.
    w.witness.clock = lambda: row.created_at.timestamp() - 3600
    outcome = witnessing.checkpoint_witness(size=row.size)
    assert outcome.cosigned == 0
    assert "before the checkpoint" in outcome.failures[0].detail
    assert not row.cosignatures.exists()


def test_asking_a_witness_that_is_behind_is_no_failure(append, checkpoint, witnesses):
    [w] = witnesses(1, 1)
    append(4)
    checkpoint()
    witnessing.checkpoint_witness()
    append(3, start=4)
    size = checkpoint().size  # not yet witnessed: the witness still holds the older size
    err = io.StringIO()
    out = io.StringIO()
    call_command("ledger_verify", "--no-progress", stdout=out, stderr=err)
    assert f"asked 1 witness(es) with the checkpoint at size {size}: 1 answered" in out.getvalue()
    assert f"witness {w.name}: holds size {size - 3}" in err.getvalue()
    # The question cosigned nothing and moved nothing.
    assert witnessing.witness_sizes()[1][0].size == size - 3


def test_asking_a_witness_that_holds_the_same_size_checks_its_fresh_cosignature(
    append, checkpoint, witnesses
):
    witnesses(1, 1)
    append(4)
    size = checkpoint().size
    witnessing.checkpoint_witness()
    stored = Cosignature.objects.count()
    asked, [held] = witnessing.witness_sizes()
    assert (asked, held.size, held.same_root) == (size, size, True)
    assert held.detail == f"holds size {size} with the same root"
    assert Cosignature.objects.count() == stored  # verifying stores nothing


def test_a_witness_holding_another_root_at_the_same_size_is_a_fork(
    append, checkpoint, witnesses, settings
):
    [w] = witnesses(1, 1)
    append(4)
    size = checkpoint().size
    witnessing.checkpoint_witness()
    # The witness cosigned another tree of this size (the log showed it a fork).
    w.witness.state.put(settings.FEDGOV_LEDGER_ORIGIN, size, b"\x07" * 32)
    message = verify_failure()
    assert f"witness {w.name} cosigned another tree at size {size}" in message
    assert f"first bad seq {size - 1} or below" in message


def test_a_witness_above_the_newest_stored_checkpoint_shows_deleted_checkpoints(
    append, checkpoint, witnesses, tamper
):
    [w] = witnesses(1, 1)
    append(4)
    old = checkpoint().size
    witnessing.checkpoint_witness()
    append(3, start=4)
    new = checkpoint().size
    witnessing.checkpoint_witness()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_cosignature WHERE checkpoint_id > %s", [old])
        cursor.execute("DELETE FROM audit_checkpoint WHERE size > %s", [old])
    message = verify_failure()
    assert (
        f"first bad seq {new - 1}: witness {w.name} cosigned size {new}, but the newest "
        f"checkpoint the ledger stores is at size {old}: later checkpoints were deleted"
    ) in message
