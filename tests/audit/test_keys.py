"""Signing keys: made 0600 on first use, several kept, one active, or one from a file."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured

from audit import keys, trust
from fedgov.actors import Actor


def test_first_use_writes_a_private_key_only_its_owner_can_read(key_dir):
    key = keys.active_key()
    path = key_dir / f"{key.key_id}.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (key_dir / "ACTIVE").read_text() == key.key_id
    assert keys.active_key().key_id == key.key_id


@pytest.mark.django_db
def test_rotation_keeps_old_keys_for_verifying(key_dir):
    old = keys.active_key()
    signature = old.sign(b"round ticket")
    trust.key_trust_active(actor=Actor.system("tests"), reason="first key")
    new = trust.key_rotate(actor=Actor.system("tests"), reason="yearly rotation")
    assert new.key_id != old.key_id
    assert keys.active_key().key_id == new.key_id
    known = keys.public_keys()
    assert set(known) == {old.key_id, new.key_id}
    known[old.key_id].verify(signature, b"round ticket")
    assert [info.key_id for info in keys.key_infos() if info.active] == [new.key_id]


def test_key_readable_by_others_is_refused(key_dir):
    key = keys.active_key()
    os.chmod(key_dir / f"{key.key_id}.pem", 0o644)
    with pytest.raises(ImproperlyConfigured, match="0600"):
        keys.active_key()


def test_signing_key_file_setting_wins_and_cannot_be_rotated(settings, tmp_path, key_dir):
    private = Ed25519PrivateKey.generate()
    path = tmp_path / "signing.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    settings.FEDGOV_SIGNING_KEY_FILE = str(path)
    key = keys.active_key()
    assert key.key_id == keys.key_id_of(private.public_key())
    assert not (key_dir / "ACTIVE").exists()
    with pytest.raises(ImproperlyConfigured, match="FEDGOV_SIGNING_KEY_FILE"):
        keys.rotate()


@pytest.mark.django_db
def test_key_command_rotates_and_lists(key_dir):
    import io

    from django.core.management import call_command

    first = keys.active_key().key_id
    call_command("ledger_key", "trust-active", "--reason", "first key", stdout=io.StringIO())
    out = io.StringIO()
    call_command("ledger_key", "rotate", "--reason", "yearly rotation", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("new active key ")
    assert any(line.startswith(f"retired {first} ") for line in lines)
    assert sum(line.startswith("active ") for line in lines) == 1
