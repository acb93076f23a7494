"""RFC 3161 tokens and witness cosignatures are append-only at the database (migration
audit 0009), and with the guards dropped a changed token or cosignature is still named by
``ledger_verify`` and by the offline verifier, at once, not only when the lag runs out.

Runs on the database ``DATABASE_URL`` names: SQLite, and PostgreSQL in the postgres pass.
"""

from __future__ import annotations

import base64
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from audit import keys, note, timestamping, triggers, witness, witnessing
from audit.bundle import bundle_write
from audit.models import CheckpointTimestamp, Cosignature
from fedgov import clock
from tests.audit.test_bundle import run_verifier

pytestmark = pytest.mark.django_db


@pytest.fixture
def evidence(append, checkpoint):
    """A checkpoint with one stored token and one stored cosignature (contents do not
    matter to the triggers)."""
    append(3)
    row = checkpoint()
    now = clock.now()
    CheckpointTimestamp.objects.create(
        checkpoint=row, token=b"token", gen_time=now, tsa_url="http://tsa", received_at=now
    )
    Cosignature.objects.create(
        checkpoint=row, witness="w", key_id="00000000", timestamp=1, line="x", received_at=now
    )
    return row


@pytest.mark.parametrize(
    ("table", "change"),
    [
        ("audit_checkpointtimestamp", "token = token || token"),
        ("audit_checkpointtimestamp", "gen_time = received_at"),
        ("audit_cosignature", "line = 'forged'"),
        ("audit_cosignature", "timestamp = timestamp + 1"),
    ],
)
def test_raw_sql_update_and_delete_of_tokens_and_cosignatures_are_refused(evidence, table, change):
    for sql in (f"UPDATE {table} SET {change}", f"DELETE FROM {table}"):  # noqa: S608
        with (
            pytest.raises(IntegrityError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
    assert CheckpointTimestamp.objects.count() == Cosignature.objects.count() == 1


def test_the_orm_cannot_change_them_either_but_may_add(evidence, append, checkpoint):
    for model, change in ((CheckpointTimestamp, {"token": b"other"}), (Cosignature, {"line": "y"})):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            model.objects.update(**change)
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            model.objects.all().delete()
    append(2, start=3)
    later = checkpoint()
    Cosignature.objects.create(
        checkpoint=later, witness="w", key_id="1", timestamp=2, line="z", received_at=clock.now()
    )
    assert Cosignature.objects.count() == 2


def test_dropping_the_ledger_guards_drops_these_too_and_install_restores_them(evidence):
    triggers.uninstall(connection)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_cosignature SET line = 'behind the guards'")
    triggers.install(connection)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Cosignature.objects.update(line="again")


def _ledger_verify_failure(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        call_command(
            "ledger_verify", "--no-progress", *args, stdout=io.StringIO(), stderr=io.StringIO()
        )
    return str(caught.value)


def _export(tmp_path):
    last = witnessing.selectors.tree_size() - 1
    return bundle_write(first_seq=0, last_seq=last, out=tmp_path / "bundle").path


def _log_vkey() -> str:
    return note.verifier_key("fedgov.local/ledger", keys.active_key().public_key)


def test_a_changed_token_is_named_online_and_offline(append, checkpoint, tsa_dir, tamper, tmp_path):
    append(3)
    row = checkpoint()
    assert timestamping.checkpoint_timestamp(size=row.size).ok
    token = bytearray(CheckpointTimestamp.objects.get(checkpoint=row).token)
    token[-1] ^= 0x01  # the last byte of the TSA's signature
    with tamper():
        CheckpointTimestamp.objects.filter(checkpoint=row).update(token=bytes(token))
    assert f"timestamp of the checkpoint at size {row.size}" in _ledger_verify_failure()
    result = run_verifier(
        str(_export(tmp_path)), "--trusted-key", _log_vkey(), "--tsa-cert", str(tsa_dir / "ca.pem")
    )
    assert result.returncode == 1, result.stderr
    assert f"first bad seq: {row.size - 1}" in result.stderr


def _flip_signature(line: str) -> str:
    prefix, _, blob = line.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01  # inside the Ed25519 signature; name and key ID stay the witness's
    return f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n"


@pytest.mark.parametrize("what", ["line", "timestamp"])
def test_a_changed_cosignature_is_named_at_once_online(append, checkpoint, witnesses, tamper, what):
    witnesses(1, 1)
    append(3)
    row = checkpoint()
    assert witnessing.checkpoint_witness().cosigned == 1
    call_command("ledger_verify", "--no-progress", stdout=io.StringIO())
    stored = Cosignature.objects.get(checkpoint=row)
    change = (
        {"line": _flip_signature(stored.line)}
        if what == "line"
        else {"timestamp": stored.timestamp + 1}
    )
    with tamper():
        Cosignature.objects.filter(pk=stored.pk).update(**change)
    # Within the lag: without this check the changed cosignature would only stop counting.
    message = _ledger_verify_failure()
    assert f"first bad seq {row.size - 1}: a stored cosignature of the checkpoint" in message


def test_a_changed_cosignature_is_named_at_once_offline(
    append, checkpoint, witnesses, tamper, tmp_path
):
    [w] = witnesses(1, 1)
    append(3)
    row = checkpoint()
    assert witnessing.checkpoint_witness().cosigned == 1
    stored = Cosignature.objects.get(checkpoint=row)
    with tamper():
        Cosignature.objects.filter(pk=stored.pk).update(line=_flip_signature(stored.line))
    bundle = _export(tmp_path)
    args = [
        "--trusted-key", _log_vkey(),
        "--witness-key", witness.cosigner_vkey(w.name, w.key.public_key()),
        "--quorum", "1",
    ]  # fmt: skip
    result = run_verifier(str(bundle), *args)
    assert result.returncode == 1, result.stderr
    assert f"first bad seq: {row.size - 1}" in result.stderr
    assert "does not verify" in result.stderr
