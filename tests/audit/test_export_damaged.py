"""ledger_export on a damaged ledger: a complete bundle marked damaged, never a partial one,
no checkpoint signed; the offline verifier names the first bad seq."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command

from audit import bundle
from audit.models import Checkpoint
from tests.audit.test_bundle import run_verifier

pytestmark = pytest.mark.django_db


def export_damaged(first: int, last: int, out) -> str:
    with pytest.raises(CommandError) as caught:
        call_command(
            "ledger_export", "--from", str(first), "--to", str(last), str(out),
            stdout=io.StringIO(),
        )  # fmt: skip
    return str(caught.value)


def _complete_folder(out) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    return manifest


def test_edited_payload_gives_a_whole_bundle_marked_damaged(append, checkpoint, tamper, tmp_path):
    append(9)
    checkpoint()
    append(3, start=9)  # not yet signed: the export must not sign them over the damage
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET payload = '{\"n\":0}' WHERE seq = 5")
    out = tmp_path / "bundle"
    message = export_damaged(0, 12, out)
    assert "first bad seq 5" in message and "marked damaged" in message
    manifest = _complete_folder(out)
    assert manifest["damaged"]["first_bad_seq"] == 5
    assert "leaf hash does not match" in manifest["damaged"]["problems"][0]
    assert list(Checkpoint.objects.values_list("size", flat=True)) == [10]
    result = run_verifier(str(out))
    assert result.returncode == 1
    assert "first bad seq: 5" in result.stderr


def test_damaged_zip_is_complete(append, checkpoint, tamper, tmp_path):
    append(6)
    checkpoint()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_ledgerentry WHERE seq = 2")
    out = tmp_path / "bundle.zip"
    assert "first bad seq 2" in export_damaged(0, 6, out)
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        manifest = json.loads(archive.read("manifest.json"))
        for name, digest in manifest["files"].items():
            assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    result = run_verifier(str(out))
    assert result.returncode == 1 and "first bad seq: 2" in result.stderr


def test_lost_subtree_hashes_still_give_a_whole_bundle(append, checkpoint, tamper, tmp_path):
    append(15)
    checkpoint()
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("DELETE FROM audit_subtreehash WHERE level = 2 AND idx = 1")
    out = tmp_path / "bundle"
    assert "first bad seq 4" in export_damaged(0, 15, out)
    _complete_folder(out)
    result = run_verifier(str(out))
    assert result.returncode == 1 and "first bad seq: 4" in result.stderr


def test_damage_before_any_checkpoint_signs_nothing(append, tamper, tmp_path):
    append(5)
    with tamper() as db, db.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET subject_id = 'x' WHERE seq = 3")
    out = tmp_path / "bundle"
    assert "first bad seq 3" in export_damaged(0, 4, out)
    assert not Checkpoint.objects.exists()
    manifest = _complete_folder(out)
    assert manifest["anchor_size"] is None
    result = run_verifier(str(out))
    assert result.returncode == 1 and "first bad seq: 3" in result.stderr


@pytest.mark.parametrize("name", ["bundle", "bundle.zip"])
def test_a_failure_while_writing_leaves_nothing_behind(
    append, checkpoint, tmp_path, monkeypatch, name
):
    append(4)
    checkpoint()

    def broken(*args):
        yield '{"seq": 0}\n'
        raise RuntimeError("disk full")

    monkeypatch.setattr(bundle, "_inclusion_lines", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        bundle.bundle_write(first_seq=0, last_seq=3, out=tmp_path / name)
    assert list(tmp_path.iterdir()) == [tmp_path / "keys"]  # no bundle, no partial file
