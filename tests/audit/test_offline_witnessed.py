"""The offline verifier with pinned witness keys: bundles carry cosignatures; unwitnessed
lag, rollbacks and rewrites below a witness's state are findings naming a seq."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.conf import settings

from audit import keys, note, witness, witnessing
from audit.bundle import bundle_write
from tests.audit.test_bundle import run_verifier

pytestmark = pytest.mark.django_db
FAR_FUTURE = "2099-01-01T00:00:00Z"


def _log_vkey() -> str:
    return note.verifier_key(settings.FEDGOV_LEDGER_ORIGIN, keys.active_key().public_key)


def _witness_args(running, quorum: int) -> list[str]:
    args = ["--trusted-key", _log_vkey(), "--quorum", str(quorum)]
    for w in running:
        args += ["--witness-key", witness.cosigner_vkey(w.name, w.key.public_key())]
    return args


def _export(tmp_path, name: str = "bundle"):
    last = witnessing.selectors.tree_size() - 1
    return bundle_write(first_seq=0, last_seq=last, out=tmp_path / name).path


def test_witnessed_bundle_verifies_offline_and_carries_the_cosignatures(
    append,
    checkpoint,
    witnesses,
    tmp_path,
):
    running = witnesses(2, 2)
    append(5)
    checkpoint()
    witnessing.checkpoint_witness()
    out = _export(tmp_path)
    items = json.loads((out / "checkpoints.json").read_text())
    assert len(items[-1]["cosignatures"]) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert [w["name"] for w in manifest["witnesses"]] == sorted(w.name for w in running)
    result = run_verifier(str(out), *_witness_args(running, 2), "--at", FAR_FUTURE)
    assert result.returncode == 0, result.stderr


def test_bundle_without_a_witnessed_checkpoint_fails_past_the_lag(
    append,
    checkpoint,
    witnesses,
    tmp_path,
):
    running = witnesses(2, 2)
    append(4)
    checkpoint()  # never witnessed
    out = _export(tmp_path)
    result = run_verifier(str(out), *_witness_args(running, 2), "--at", FAR_FUTURE)
    assert result.returncode == 1
    assert "first bad seq: 0" in result.stderr
    assert "newest witnessed checkpoint: size 0" in result.stderr
    # Within the lag, the same bundle passes.
    assert run_verifier(str(out), *_witness_args(running, 2)).returncode == 0


def test_a_forged_cosignature_does_not_count(append, checkpoint, witnesses, tmp_path):
    running = witnesses(1, 1)
    append(3)
    checkpoint()
    witnessing.checkpoint_witness()
    out = _export(tmp_path)
    # The operator swaps the cosignature for one by a key of their own under the same
    # name, and re-hashes the manifest so the bundle stays readable.
    items = json.loads((out / "checkpoints.json").read_text())
    body = note.split(items[-1]["note"])[0]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    items[-1]["cosignatures"] = [
        witness.cosign(body, running[0].name, Ed25519PrivateKey.generate(), 1_800_000_000)
    ]
    text = json.dumps(items)
    (out / "checkpoints.json").write_text(text)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["checkpoints.json"] = hashlib.sha256(text.encode()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = run_verifier(str(out), *_witness_args(running, 1), "--at", FAR_FUTURE)
    assert result.returncode == 1 and "first bad seq: 0" in result.stderr


def test_rollback_below_the_witness_state_is_named(
    append,
    checkpoint,
    witnesses,
    tmp_path,
    tamper,
):
    from tests.audit.test_witnessing import rollback_to

    [w] = witnesses(1, 1)
    append(4)
    old = checkpoint().size
    witnessing.checkpoint_witness()
    append(4, start=4)
    new = checkpoint().size
    witnessing.checkpoint_witness()
    rollback_to(old, tamper)
    out = _export(tmp_path)
    args = [*_witness_args([w], 1), "--witness-state", str(w.state_path)]
    result = run_verifier(str(out), *args)
    assert result.returncode == 1
    assert f"cosigned size {new}: rolled back" in result.stderr
    assert f"first bad seq: {old}" in result.stderr


def test_rewrite_with_recomputed_hashes_differs_from_the_witness_state(
    append,
    checkpoint,
    witnesses,
    tmp_path,
    tamper,
):
    from tests.audit.test_presign import _rewrite_everything

    [w] = witnesses(1, 1)
    append(6)
    size = checkpoint().size
    witnessing.checkpoint_witness()
    with tamper() as db, db.cursor() as cursor:
        _rewrite_everything(cursor, 3, '{"n":"forged"}')
        cursor.execute("DELETE FROM audit_cosignature")
        cursor.execute("DELETE FROM audit_checkpoint")
    out = _export(tmp_path)  # signs the forged state: nothing in the database remembers
    args = [*_witness_args([w], 1), "--witness-state", str(w.state_path)]
    result = run_verifier(str(out), *args)
    assert result.returncode == 1
    assert f"checkpoint at size {size} is not the tree the witness" in result.stderr


def test_a_witness_key_with_a_wrong_key_id_is_refused(append, checkpoint, tmp_path):
    append(1)
    checkpoint()
    out = _export(tmp_path)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    vkey = witness.cosigner_vkey("w.example", Ed25519PrivateKey.generate().public_key())
    result = run_verifier(str(out), "--witness-key", "other" + vkey[1:])
    assert result.returncode == 2 and "key ID does not match" in result.stderr
