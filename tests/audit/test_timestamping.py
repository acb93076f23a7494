"""Trusted time: checkpoints carry RFC 3161 tokens from a real TSA on loopback (OpenSSL's
``ts -reply``), ledger_verify and the offline verifier check them against the pinned TSA
certificate, and their absence is said plainly ("no trusted time")."""

from __future__ import annotations

import hashlib
import io
import json
import socket

import pytest
from asn1crypto import cms
from django.core.management import CommandError, call_command

from audit import keys, note, timestamping, tsa, tsa_responder, witness, witnessing
from audit.bundle import bundle_write
from audit.models import CheckpointTimestamp
from tests.audit.test_bundle import run_verifier

pytestmark = pytest.mark.django_db


def _ledger_verify() -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ledger_verify", "--no-progress", stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue() + f"\nCommandError: {exc}"
    return out.getvalue(), err.getvalue()


def _export(tmp_path, name: str = "bundle"):
    last = witnessing.selectors.tree_size() - 1
    return bundle_write(first_seq=0, last_seq=last, out=tmp_path / name).path


def _log_vkey() -> str:
    return note.verifier_key("fedgov.local/ledger", keys.active_key().public_key)


def test_checkpoint_token_dates_exactly_the_signed_note(append, checkpoint, tsa_dir):
    append(3)
    row = checkpoint()
    outcome = timestamping.checkpoint_timestamp(size=row.size)
    assert outcome.ok, outcome.detail
    token = bytes(CheckpointTimestamp.objects.get(checkpoint=row).token)
    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    imprint = info["message_imprint"]
    assert imprint["hash_algorithm"]["algorithm"].native == "sha256"
    assert imprint["hashed_message"].native == hashlib.sha256(row.note.encode()).digest()
    # Signed by the loopback TSA's certificate, which chains to its own CA.
    assert info["policy"].native == tsa_responder.POLICY
    check = tsa.check_token(token, row.note.encode(), tsa.load_pinned([tsa_dir / "ca.pem"]))
    assert check.ok and check.time >= row.created_at
    # A second request for the same checkpoint keeps the stored token.
    assert timestamping.checkpoint_timestamp(size=row.size).detail == "already timestamped"


def test_ledger_verify_checks_tokens_and_reports_trusted_time(append, checkpoint, tsa_dir):
    append(3)
    timestamping.checkpoint_timestamp(size=checkpoint().size)
    out, err = _ledger_verify()
    assert "trusted time: 1 of 1 checkpoints carry an RFC 3161 timestamp" in out, err


def test_ledger_verify_fails_a_token_moved_to_another_checkpoint(
    append, checkpoint, tsa_dir, tamper
):
    append(3)
    first = checkpoint()
    timestamping.checkpoint_timestamp(size=first.size)
    append(2, start=3)
    second = checkpoint()
    timestamping.checkpoint_timestamp(size=second.size)
    token = bytes(CheckpointTimestamp.objects.get(checkpoint=first).token)
    with tamper():
        CheckpointTimestamp.objects.filter(checkpoint=second).update(token=token)
    _out, err = _ledger_verify()
    assert f"timestamp of the checkpoint at size {second.size}" in err
    assert "imprint is not the digest" in err


def test_ledger_verify_fails_a_token_from_an_unpinned_tsa(
    append, checkpoint, tsa_dir, settings, tmp_path
):
    append(3)
    timestamping.checkpoint_timestamp(size=checkpoint().size)
    other = tmp_path / "other-tsa"
    tsa_responder.setup(other)
    settings.FEDGOV_TSA_CERT_FILES = [other / "ca.pem"]
    _out, err = _ledger_verify()
    assert "does not chain to a pinned certificate" in err


def test_without_a_tsa_verify_and_bundle_say_no_trusted_time(
    append, checkpoint, settings, tmp_path
):
    settings.FEDGOV_TSA_URL = ""
    append(3)
    row = checkpoint()
    assert timestamping.checkpoint_timestamp(size=row.size).detail == timestamping.NO_TRUSTED_TIME
    out, _err = _ledger_verify()
    assert "no trusted time" in out
    bundle = _export(tmp_path)
    assert json.loads((bundle / "checkpoints.json").read_text())[-1]["timestamp"] is None
    result = run_verifier(str(bundle), "--trusted-key", _log_vkey())
    assert result.returncode == 0, result.stderr
    assert "no trusted time" in result.stderr


def test_a_tsa_that_is_down_delays_the_timestamp_and_blocks_nothing(
    append, checkpoint, settings, tsa_dir
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.FEDGOV_TSA_URL = f"http://127.0.0.1:{port}/"
    settings.FEDGOV_TSA_TIMEOUT = 1.0
    append(3)
    row = checkpoint()
    outcome = timestamping.checkpoint_timestamp(size=row.size)
    assert not outcome.ok and "gave no timestamp" in outcome.detail
    append(2, start=3)  # appending goes on
    assert not CheckpointTimestamp.objects.exists()


def test_offline_verifier_checks_tokens_against_the_pinned_tsa(
    append, checkpoint, tsa_dir, tmp_path
):
    append(4)
    row = checkpoint()  # 4 entries and the trust-on-first-use event of the key
    timestamping.checkpoint_timestamp(size=row.size)
    bundle = _export(tmp_path)
    assert (bundle / "tsa" / "certs.pem").read_text() == (tsa_dir / "ca.pem").read_text()
    ok = run_verifier(
        str(bundle), "--trusted-key", _log_vkey(), "--tsa-cert", str(tsa_dir / "ca.pem")
    )
    assert ok.returncode == 0, ok.stderr
    assert "trusted time: 1 checkpoint(s) timestamped by the pinned TSA" in ok.stderr
    unpinned = run_verifier(str(bundle), "--trusted-key", _log_vkey())
    assert unpinned.returncode == 0 and "pin the TSA with --tsa-cert" in unpinned.stderr

    other = tmp_path / "other-tsa"
    tsa_responder.setup(other)
    wrong = run_verifier(
        str(bundle), "--trusted-key", _log_vkey(), "--tsa-cert", str(other / "ca.pem")
    )
    assert wrong.returncode == 1
    assert f"first bad seq: {row.size - 1}" in wrong.stderr and "pinned certificate" in wrong.stderr


def test_offline_verifier_fails_a_token_over_another_note(append, checkpoint, tsa_dir, tmp_path):
    append(2)
    first = checkpoint()
    timestamping.checkpoint_timestamp(size=first.size)
    append(2, start=first.size)
    timestamping.checkpoint_timestamp(size=checkpoint().size)
    bundle = _export(tmp_path)
    path = bundle / "checkpoints.json"
    items = json.loads(path.read_text())
    items[-1]["timestamp"] = items[0]["timestamp"]  # a genuine token, for another note
    path.write_text(json.dumps(items))
    _rehash(bundle, "checkpoints.json")
    result = run_verifier(
        str(bundle), "--trusted-key", _log_vkey(), "--tsa-cert", str(tsa_dir / "ca.pem")
    )
    assert result.returncode == 1
    assert f"timestamp of checkpoint {items[-1]['size']}" in result.stderr
    assert f"first bad seq: {items[-1]['size'] - 1}" in result.stderr


def _rehash(bundle, name: str) -> None:
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


def test_keys_json_carries_validity_windows_the_verifier_enforces(append, checkpoint, tmp_path):
    append(3)
    row = checkpoint()
    bundle = _export(tmp_path)
    records = json.loads((bundle / "keys.json").read_text())
    assert records[0]["valid_from"] <= row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert records[0]["valid_to"] is None
    # The key's trust ended before the checkpoint was signed: refused, even with it pinned.
    records[0]["valid_to"] = "2000-01-01T00:00:00Z"
    (bundle / "keys.json").write_text(json.dumps(records))
    _rehash(bundle, "keys.json")
    result = run_verifier(str(bundle), "--trusted-key", _log_vkey())
    assert result.returncode == 1
    assert "after its key's trust ended" in result.stderr
    assert f"first bad seq: {row.size - 1}" in result.stderr


def test_offline_verifier_refuses_a_cosignature_older_than_its_checkpoint(
    append, checkpoint, witnesses, tmp_path
):
    running = witnesses(1, 1)
    append(3)
    row = checkpoint()
    witnessing.checkpoint_witness()
    bundle = _export(tmp_path)
    path = bundle / "checkpoints.json"
    items = json.loads(path.read_text())
    body = note.split(items[-1]["note"])[0]
    signed_at = int(row.created_at.timestamp())
    w = running[0]
    items[-1]["cosignatures"] = [witness.cosign(body, w.name, w.key, signed_at - 60)]
    path.write_text(json.dumps(items))
    _rehash(bundle, "checkpoints.json")
    args = ["--trusted-key", _log_vkey(), "--witness-key"]
    args.append(witness.cosigner_vkey(w.name, w.key.public_key()))
    result = run_verifier(str(bundle), *args, "--at", "2099-01-01T00:00:00Z")
    assert result.returncode == 1
    assert "before the checkpoint's own time" in result.stderr
    # Dated at the checkpoint's own second, the same cosignature is accepted.
    items[-1]["cosignatures"] = [witness.cosign(body, w.name, w.key, signed_at)]
    path.write_text(json.dumps(items))
    _rehash(bundle, "checkpoints.json")
    result = run_verifier(str(bundle), *args, "--max-lag", "999999999")
    assert result.returncode == 0, result.stderr


def test_ledger_verify_without_a_pinned_tsa_says_the_tokens_went_unchecked(
    append, checkpoint, tsa_dir, settings
):
    append(3)
    timestamping.checkpoint_timestamp(size=checkpoint().size)
    settings.FEDGOV_TSA_URL, settings.FEDGOV_TSA_CERT_FILES = "", []
    out, err = _ledger_verify()
    assert "trusted time not checked: 1 checkpoint timestamp(s) stored" in out, err
