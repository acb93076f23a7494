"""Evidence bundles: ledger_export writes them; python -m audit.verify checks them offline."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command

from audit import keys, note
from audit.bundle import bundle_write
from audit.models import Checkpoint
from audit.verify import main as verify_main
from audit.verify import verify_bundle

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def export(first: int, last: int, out: Path) -> Path:
    call_command("ledger_export", "--from", str(first), "--to", str(last), str(out), stdout=None)
    return out


def run_verifier(*args: str) -> subprocess.CompletedProcess:
    # A fresh interpreter proves the verifier needs no Django: it fails if it imports one.
    code = (
        "import sys, runpy; sys.argv = ['audit.verify', *sys.argv[1:]];"
        "import audit.verify;"
        "apps = ('django', 'fedgov', 'rest_framework', 'sites', 'training');"
        "assert not [m for m in sys.modules if m.split('.')[0] in apps], 'imports an app';"
        "runpy.run_module('audit.verify', run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_exported_folder_verifies_offline_without_django(append, checkpoint, tmp_path):
    append(19)
    checkpoint()  # 19 events + the key trusted on first use
    append(5, start=19)
    out = export(3, 22, tmp_path / "bundle")
    result = run_verifier(str(out))
    assert result.returncode == 0, result.stderr
    assert "OK: 20 entries, 2 checkpoints verified" in result.stdout
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert names == {
        "manifest.json",
        "entries.jsonl",
        "checkpoints.json",
        "keys.json",
        "proofs/inclusion.jsonl",
        "proofs/consistency.json",
    }
    # The export signed a checkpoint covering seq 22 (none did), so the slice is anchored.
    assert Checkpoint.objects.filter(size=25).exists()


def test_zip_bundle_verifies_with_a_pinned_key(append, checkpoint, tmp_path):
    append(9)
    checkpoint()
    out = export(0, 8, tmp_path / "bundle.zip")
    assert zipfile.is_zipfile(out)
    pem = tmp_path / "fedgov.pub.pem"
    pem.write_text(keys.public_pem(keys.active_key().public_key))
    result = run_verifier(str(out), "--trusted-key", str(pem))
    assert result.returncode == 0, result.stderr
    assert "trusting the public keys shipped" not in result.stderr


def test_bundle_from_another_key_fails_against_the_pinned_one(append, checkpoint, tmp_path):
    append(4)
    checkpoint()
    out = export(0, 3, tmp_path / "bundle")
    stranger = Ed25519PrivateKey.generate().public_key()
    vkey = note.verifier_key("elsewhere", stranger)
    assert verify_main([str(out), "--trusted-key", vkey]) == 1


def _rewrite_entries(out: Path, change) -> None:
    path = out / "entries.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines = change(lines)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["entries.jsonl"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_edited_entry_in_a_bundle_is_named(append, checkpoint, tmp_path):
    append(10)
    out = export(2, 9, tmp_path / "bundle")

    def edit(lines):
        lines[3]["payload"] = {"n": 999}
        return lines

    _rewrite_entries(out, edit)
    result = verify_bundle(out)
    assert not result.ok
    assert result.findings[0].seq == 5
    assert "differ from its hashed leaf" in result.findings[0].message


def test_rehashed_entry_fails_its_inclusion_proof(append, tmp_path):
    append(10)
    out = export(0, 9, tmp_path / "bundle")

    def forge(lines):
        from audit import merkle

        leaf = lines[4]["leaf"].replace('"n":4', '"n":44')
        lines[4]["leaf"] = leaf
        lines[4]["payload"] = {**lines[4]["payload"], "n": 44}
        lines[4]["leaf_hash"] = note.base64.b64encode(merkle.leaf_hash(leaf.encode())).decode()
        return lines

    _rewrite_entries(out, forge)
    result = verify_bundle(out)
    assert [f.seq for f in result.findings] == [4]
    assert "inclusion proof" in result.findings[0].message


def test_entry_removed_from_a_bundle_is_named(append, tmp_path):
    append(10)
    out = export(0, 9, tmp_path / "bundle")
    _rewrite_entries(out, lambda lines: lines[:6] + lines[7:])
    assert verify_main([str(out)]) == 1
    assert verify_bundle(out).findings[0].seq == 6


def test_file_changed_after_export_fails_its_manifest_hash(append, tmp_path):
    append(3)
    out = export(0, 2, tmp_path / "bundle")
    (out / "keys.json").write_text("[]")
    result = verify_bundle(out)
    assert "keys.json does not match its manifest hash" in result.findings[0].message


def test_unreadable_bundle_exits_2(tmp_path, capsys):
    assert verify_main([str(tmp_path / "nothing-here")]) == 2
    assert "cannot read bundle" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("first", "last", "reason"),
    [
        (5, 2, "to: must be at least --from"),
        (0, 50, "to: the ledger ends at seq 9"),
        (-1, 3, "from"),
    ],
)
def test_export_refuses_a_bad_range(append, tmp_path, first, last, reason):
    append(10)
    with pytest.raises(CommandError, match=reason):
        export(first, last, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_export_never_overwrites(append, tmp_path):
    append(2)
    (tmp_path / "bundle").mkdir()
    with pytest.raises(CommandError, match="already exists"):
        export(0, 1, tmp_path / "bundle")


def test_a_named_checkpoint_is_kept_though_a_nearer_and_a_newer_one_exist(
    append, checkpoint, tmp_path
):
    # A report anchored at 12 after the beat signed 10 and someone signed 15 since:
    # the bundle of entries 2..4 must still carry the report's anchor.
    append(9)
    checkpoint()  # 9 events + the key trusted on first use
    append(2, start=9)
    checkpoint()
    append(3, start=11)
    checkpoint()
    summary = bundle_write(first_seq=2, last_seq=4, out=tmp_path / "b", keep_checkpoint=12)
    sizes = [cp["size"] for cp in json.loads((tmp_path / "b" / "checkpoints.json").read_text())]
    assert sizes == [10, 12, 15]
    assert summary.anchor_size == 10
    result = run_verifier(str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
