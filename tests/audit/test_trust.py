"""Trusted keys are an explicit list: a file in the key folder trusts nothing; every change
is a ledger event; rotation and revocation are commands; rows written behind the services
are found by ledger_verify."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command

from audit import keys, note, trust
from audit.models import Checkpoint, LedgerEntry, TrustedKey
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed

pytestmark = pytest.mark.django_db
TESTS = Actor.system("tests")


def _drop_attacker_key(key_dir) -> Ed25519PrivateKey:
    """What an intruder with write access to the key folder does: a new 0600 PEM."""
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
    return attacker


def ledger_verify() -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("ledger_verify", "--no-progress", stdout=out, stderr=err)
    return out.getvalue()


def ledger_verify_failure() -> str:
    """The command's error and every FAIL line it wrote."""
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("ledger_verify", "--no-progress", stdout=io.StringIO(), stderr=err)
    return f"{caught.value}\n{err.getvalue()}"


def test_first_checkpoint_trusts_the_active_key_by_a_ledger_event(append, checkpoint):
    append(3)
    cp = checkpoint()
    event = LedgerEntry.objects.get(event_type=trust.EVENT_TRUSTED)
    body = json.loads(event.payload)
    active = keys.active_key()
    assert event.seq == 3 and cp.size == 4  # the checkpoint covers its own key's trust
    assert body["key_id"] == active.key_id == cp.key_id
    assert body["role"] == "log" and body["name"] == settings.FEDGOV_LEDGER_ORIGIN
    assert body["reason"] == trust.FIRST_USE_REASON
    assert list(TrustedKey.objects.values_list("key_id", flat=True)) == [active.key_id]
    assert "OK: 4 entries, 1 checkpoints verified against 1 trusted key(s)" in ledger_verify()


def test_attacker_key_dropped_in_the_folder_is_not_trusted(append, checkpoint, key_dir, tamper):
    append(3)
    checkpoint()
    attacker = _drop_attacker_key(key_dir)
    attacker_id = keys.key_id_of(attacker.public_key())
    assert attacker_id not in keys.public_keys()
    assert attacker_id not in {info.key_id for info in keys.key_infos()}
    # A checkpoint the attacker signs over the real tree is still signed by nobody trusted.
    append(2, start=3)
    head = Checkpoint.objects.get()
    origin = settings.FEDGOV_LEDGER_ORIGIN
    body = note.Checkpoint(origin, head.size, bytes(head.root), "2026-12-01T00:00:00Z").body()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_checkpoint SET note = %s, key_id = %s WHERE size = %s",
            [note.sign(body, origin, attacker), attacker_id, head.size],
        )
    assert "signed by no trusted key" in ledger_verify_failure()


def test_attacker_key_made_active_signs_nothing(append, checkpoint, key_dir):
    append(2)
    checkpoint()
    attacker = _drop_attacker_key(key_dir)
    (key_dir / "ACTIVE").write_text(keys.key_id_of(attacker.public_key()))
    append(2, start=2)
    with pytest.raises(TransitionNotAllowed, match="not in the trusted list"):
        checkpoint()
    assert Checkpoint.objects.count() == 1


def test_deleting_every_trusted_row_does_not_reopen_trust_on_first_use(
    append, checkpoint, key_dir, tamper
):
    append(2)
    checkpoint()
    attacker = _drop_attacker_key(key_dir)
    (key_dir / "ACTIVE").write_text(keys.key_id_of(attacker.public_key()))
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_trustedkey")
    append(1, start=2)
    with pytest.raises(TransitionNotAllowed, match="not in the trusted list"):
        checkpoint()
    assert "row is gone" in ledger_verify_failure()


def test_row_inserted_behind_the_services_is_found(append, checkpoint):
    append(2)
    checkpoint()
    stranger = Ed25519PrivateKey.generate()
    TrustedKey.objects.create(
        key_id=keys.key_id_of(stranger.public_key()),
        role="log",
        name=settings.FEDGOV_LEDGER_ORIGIN,
        public_key=keys.raw_public_bytes(stranger.public_key()),
        valid_from=clock.now(),
        reason="trust me",
        added_by="intruder",
    )
    message = ledger_verify_failure()
    assert "has no audit.key_trusted event in the ledger" in message


def test_reopening_a_revoked_key_behind_the_services_is_found(append, checkpoint):
    append(2)
    checkpoint()
    trust.key_rotate(actor=TESTS, reason="yearly")
    old = TrustedKey.objects.exclude(key_id=keys.active_key().key_id).get()
    trust_row = TrustedKey.objects.filter(pk=old.pk)
    trust_row.update(valid_to=None)
    assert f"trusted key {old.key_id}: valid_to differ" in ledger_verify_failure()


def test_rotation_by_command_keeps_old_checkpoints_valid_and_writes_events(append, checkpoint):
    append(2)
    first = checkpoint()
    out = io.StringIO()
    call_command("ledger_key", "rotate", "--reason", "yearly rotation", stdout=out)
    append(2, start=2)
    second = checkpoint()
    assert first.key_id != second.key_id == keys.active_key().key_id
    events = list(
        LedgerEntry.objects.filter(subject_type=trust.SUBJECT)
        .order_by("seq")
        .values_list("event_type", "subject_id")
    )
    assert events == [
        (trust.EVENT_TRUSTED, first.key_id),
        (trust.EVENT_TRUSTED, second.key_id),
        (trust.EVENT_ENDED, first.key_id),
    ]
    ended = json.loads(LedgerEntry.objects.get(event_type=trust.EVENT_ENDED).payload)
    assert ended["revoked"] is False and ended["reason"] == "yearly rotation"
    assert "2 checkpoints verified against 2 trusted key(s)" in ledger_verify()


def test_every_change_needs_a_reason(append, checkpoint):
    append(1)
    checkpoint()
    with pytest.raises(CommandError, match="reason"):
        call_command("ledger_key", "rotate", stdout=io.StringIO())
    with pytest.raises(InvalidInput, match="reason"):
        trust.key_revoke(actor=TESTS, key_id=keys.active_key().key_id, reason="  ")


def test_revoked_active_key_signs_nothing_until_rotation(append, checkpoint):
    append(2)
    checkpoint()
    key_id = keys.active_key().key_id
    call_command("ledger_key", "revoke", key_id, "--reason", "laptop stolen", stdout=io.StringIO())
    append(1, start=2)
    with pytest.raises(TransitionNotAllowed, match="not valid now"):
        checkpoint()
    trust.key_rotate(actor=TESTS, reason="after the theft")
    assert checkpoint().key_id == keys.active_key().key_id != key_id
    ended = json.loads(LedgerEntry.objects.get(event_type=trust.EVENT_ENDED).payload)
    assert ended["revoked"] is True and ended["reason"] == "laptop stolen"


def test_checkpoint_stated_after_its_key_was_revoked_fails_verification(append, checkpoint):
    # A compromised key's signatures from the revocation on count for nothing, even over
    # the true root.
    append(2)
    cp = checkpoint()
    trust.key_revoke(actor=TESTS, key_id=cp.key_id, reason="key leaked", since=cp.created_at)
    message = ledger_verify_failure()
    assert f"checkpoint at size {cp.size}: signed at" in message
    assert "outside its trusted window" in message


def test_revocation_before_the_key_was_trusted_is_refused(append, checkpoint):
    append(1)
    cp = checkpoint()
    with pytest.raises(InvalidInput, match="cannot end before"):
        trust.key_revoke(
            actor=TESTS, key_id=cp.key_id, reason="typo", since=cp.created_at - timedelta(days=9)
        )
    with pytest.raises(InvalidInput, match="not in the trusted list"):
        trust.key_revoke(actor=TESTS, key_id="0" * 16, reason="no such key")


def test_witness_key_pinned_from_a_verifier_key(append):
    witness = Ed25519PrivateKey.generate()
    vkey = note.verifier_key("witness.site-a.example", witness.public_key())
    out = io.StringIO()
    call_command(
        "ledger_key",
        "trust",
        "--role",
        "witness",
        "--name",
        "witness.site-a.example",
        "--public-key",
        vkey,
        "--reason",
        "site A runs a witness",
        stdout=out,
    )
    assert "witness " in out.getvalue()
    witness_id = keys.key_id_of(witness.public_key())
    assert list(trust.public_keys("witness")) == [witness_id]
    assert witness_id not in keys.public_keys()  # a witness key signs no checkpoint
    assert LedgerEntry.objects.filter(
        event_type=trust.EVENT_TRUSTED, subject_id=witness_id
    ).exists()
    # The same key under another name: the signed-note key hash no longer matches.
    with pytest.raises(CommandError, match="key hash"):
        call_command(
            "ledger_key",
            "trust",
            "--name",
            "w",
            "--public-key",
            "w+" + vkey.split("+", 1)[1],
            "--reason",
            "x",
            stdout=io.StringIO(),
        )
