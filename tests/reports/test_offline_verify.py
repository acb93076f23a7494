"""python -m audit.verify checks a report's evidence bundle offline, in a fresh interpreter.

Each tampering test unpacks a real report bundle, edits one thing and fixes up whatever
hashes would otherwise catch it first, so the check under test is the one that fires.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import keys
from audit.verify import canonical_problem, key_id_of, verify_bundle
from tests.audit.test_bundle import run_verifier
from tests.reports.test_service_and_api import generated

pytestmark = pytest.mark.django_db
STATEMENT = "report/statement.json"
SIGNATURE = "report/signature.json"
DATA = "report/data.jsonl"


@dataclass(frozen=True)
class BuiltReport:
    bundle: Path  # the zip exactly as report_build wrote it
    pdf: Path
    ledger_key: bytes  # raw private key that signed checkpoints and the statement

    @property
    def signer(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.ledger_key)


_BUILT: list[BuiltReport] = []


@pytest.fixture
def built(request, tmp_path_factory) -> BuiltReport:
    """One report of ``played_run`` built through the real services, shared read-only.

    Building and PAdES-signing takes seconds; every test below only reads these files or
    edits its own copy, so the first test builds and the others reuse the result.
    """
    if not _BUILT:
        run, *_ = request.getfixturevalue("played_run")
        report = generated(run)
        folder = Path(request.getfixturevalue("report_dirs"))
        keep = tmp_path_factory.mktemp("built-report")
        shutil.copy(folder / report.bundle_name, keep / "bundle.zip")
        shutil.copy(folder / report.pdf_name, keep / "report.pdf")
        raw = keys.active_key().private_key.private_bytes_raw()
        _BUILT.append(BuiltReport(keep / "bundle.zip", keep / "report.pdf", raw))
    return _BUILT[0]


def unpacked(built: BuiltReport, tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    with zipfile.ZipFile(built.bundle) as archive:
        archive.extractall(folder)
    return folder


def statement_of(folder: Path) -> dict:
    return json.loads((folder / STATEMENT).read_bytes())


def canonical(value: dict) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def write_statement(folder: Path, statement: dict, signer: Ed25519PrivateKey) -> None:
    """Write ``statement`` canonically and sign it with ``signer`` as report_bundle does."""
    raw = canonical(statement)
    (folder / STATEMENT).write_bytes(raw)
    signature = {
        "algorithm": "Ed25519",
        "key_id": key_id_of(signer.public_key()),
        "signed_file": STATEMENT,
        "signature": base64.b64encode(signer.sign(raw)).decode(),
    }
    (folder / SIGNATURE).write_text(json.dumps(signature, indent=2, sort_keys=True))


def refresh_manifest(folder: Path) -> None:
    """Make every manifest hash match the files again, as a careful forger would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in list(manifest["files"]):
        path = folder / name
        if path.is_file():
            manifest["files"][name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def failures(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("FAIL")]


def pinned_key_file(built: BuiltReport, tmp_path: Path) -> Path:
    pem = tmp_path / "fedgov-ledger.pub.pem"
    pem.write_text(keys.public_pem(built.signer.public_key()))
    return pem


def test_report_bundle_verifies_offline_and_prints_a_summary(built):
    with zipfile.ZipFile(built.bundle) as archive:
        statement = json.loads(archive.read(STATEMENT))
        manifest = json.loads(archive.read("manifest.json"))
        checkpoints = len(json.loads(archive.read("checkpoints.json")))
    entries = manifest["to_seq"] - manifest["from_seq"] + 1
    key_id = key_id_of(built.signer.public_key())

    result = run_verifier(str(built.bundle))

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for line in (
        f"OK: {entries} entries, {checkpoints} checkpoints verified",
        f"report:        {statement['report_id']}",
        "data lines:    3 (1 run, 2 rounds)",
        f"cited events:  {len(statement['cited_seqs'])}",
        f"anchor size:   {statement['anchor_size']}",
        f"signing key:   {key_id} (from the bundle's keys.json: not pinned",
        "PDF:           not checked (add --pdf FILE)",
        "result:        OK",
    ):
        assert line in result.stdout
    assert "the PDF itself was not checked; add --pdf" in result.stderr
    assert not failures(result)


def test_report_bundle_with_its_pdf_and_a_pinned_key_verifies(built, tmp_path):
    pem = pinned_key_file(built, tmp_path)

    result = run_verifier(str(built.bundle), "--pdf", str(built.pdf), "--trusted-key", str(pem))

    assert result.returncode == 0, result.stderr
    assert "PDF:           checked: its SHA-256 is the statement's pdf_sha256" in result.stdout
    assert "(pinned with --trusted-key)" in result.stdout
    assert "trusting the public keys shipped" not in result.stderr
    assert "PDF itself was not checked" not in result.stderr


def test_another_pdf_fails_naming_pdf_sha256(built, tmp_path):
    other = tmp_path / "other.pdf"
    data = bytearray(built.pdf.read_bytes())
    data[len(data) // 2] ^= 0x01
    other.write_bytes(bytes(data))

    result = run_verifier(str(built.bundle), "--pdf", str(other))

    assert result.returncode == 1
    [failure] = failures(result)
    assert "pdf_sha256" in failure
    assert "its SHA-256 is NOT the statement's pdf_sha256" in result.stdout
    assert "result:        FAILED (1 finding)" in result.stdout


def test_unreadable_pdf_exits_2(built, tmp_path):
    result = run_verifier(str(built.bundle), "--pdf", str(tmp_path / "missing.pdf"))

    assert result.returncode == 2
    assert "cannot read the PDF" in result.stderr


def test_changed_report_data_with_fixed_manifest_fails_data_sha256(built, tmp_path):
    folder = unpacked(built, tmp_path)
    data = folder / DATA
    changed = data.read_text().replace('"allowed"', '"blocked"', 1)
    assert changed != data.read_text()
    data.write_text(changed)
    refresh_manifest(folder)

    result = run_verifier(str(folder))

    assert result.returncode == 1
    [failure] = failures(result)  # still canonical JSON: only the statement's hash catches it
    assert "data_sha256" in failure and DATA in failure


def test_changed_statement_with_fixed_manifest_fails_its_signature(built, tmp_path):
    folder = unpacked(built, tmp_path)
    statement = statement_of(folder)
    statement["pdf_sha256"] = hashlib.sha256(b"a PDF the DPO never saw").hexdigest()
    (folder / STATEMENT).write_bytes(canonical(statement))
    refresh_manifest(folder)

    result = run_verifier(str(folder))

    assert result.returncode == 1
    [failure] = failures(result)
    assert SIGNATURE in failure and "signature" in failure and "does not verify" in failure


def test_statement_signed_by_an_unknown_key_fails_against_the_pinned_key(built, tmp_path):
    folder = unpacked(built, tmp_path)
    stranger = Ed25519PrivateKey.generate()
    write_statement(folder, statement_of(folder), stranger)
    # The forger also ships their key in keys.json: only pinning tells it apart.
    records = json.loads((folder / "keys.json").read_text())
    public = stranger.public_key()
    records.append(
        {
            "key_id": key_id_of(public),
            "public_key": base64.b64encode(public.public_bytes_raw()).decode(),
        }
    )
    (folder / "keys.json").write_text(json.dumps(records))
    refresh_manifest(folder)

    unpinned = run_verifier(str(folder))
    pinned = run_verifier(str(folder), "--trusted-key", str(pinned_key_file(built, tmp_path)))

    assert unpinned.returncode == 0, unpinned.stderr
    assert "not pinned, so origin is not proven" in unpinned.stdout
    assert pinned.returncode == 1
    [failure] = failures(pinned)
    assert f"key '{key_id_of(public)}' is not among the pinned keys" in failure


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("delete", "report/signature.json is missing from the bundle"),
        ("delete and unlist", "report/signature.json is missing from the bundle"),
        ("garble", "report/signature.json is not a JSON object"),
    ],
)
def test_missing_or_garbled_signature_is_a_finding_naming_it(built, tmp_path, damage, expected):
    folder = unpacked(built, tmp_path)
    if damage == "garble":
        (folder / SIGNATURE).write_text('{"algorithm": "Ed25519", ')
        refresh_manifest(folder)
    else:
        (folder / SIGNATURE).unlink()
    if damage == "delete and unlist":
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["files"][SIGNATURE]
        (folder / "manifest.json").write_text(json.dumps(manifest))

    result = run_verifier(str(folder))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert [f"FAIL report: {expected}"] == failures(result)
    assert "signing key:   -" in result.stdout


def test_cited_event_absent_from_the_entries_fails(built, tmp_path):
    folder = unpacked(built, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    statement = statement_of(folder)
    outside = [
        seq
        for seq in range(statement["anchor_size"])
        if not manifest["from_seq"] <= seq <= manifest["to_seq"]
    ]
    assert outside, "the report's ledger slice should not reach its anchor"
    statement["cited_seqs"] = sorted({*statement["cited_seqs"], outside[0]})
    # Signed with the real ledger key: the statement is genuine, its evidence is not there.
    write_statement(folder, statement, built.signer)
    refresh_manifest(folder)

    result = run_verifier(str(folder), "--trusted-key", str(pinned_key_file(built, tmp_path)))

    assert result.returncode == 1
    [failure] = failures(result)
    assert "cited_seqs" in failure and f"seq {outside[0]}" in failure


def test_non_canonical_data_line_fails_even_when_hashed_and_signed(built, tmp_path):
    folder = unpacked(built, tmp_path)
    data = folder / DATA
    lines = data.read_text().splitlines()
    lines[0] = json.dumps(json.loads(lines[0]), sort_keys=True)  # ", " and ": " separators
    data.write_text("".join(line + "\n" for line in lines))
    statement = statement_of(folder)
    statement["data_sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    write_statement(folder, statement, built.signer)
    refresh_manifest(folder)

    result = verify_bundle(folder)

    assert result.findings == []
    assert result.report.findings == [
        f"{DATA} line 1 is not RFC 8785 canonical JSON (sorted members, no whitespace)"
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a":[1,"\\u001f\xc3\xa9"],"b":null}', None),
        (b'{"b":1,"a":2}', "not RFC 8785 canonical"),
        (b'{"a": 1}', "not RFC 8785 canonical"),
        (b'{"a":1,"a":2}', "not RFC 8785 canonical"),
        (b'{"a":"\\u00e9"}', "not RFC 8785 canonical"),
        (b'{"a":-0}', "not RFC 8785 canonical"),
        (b'{"a":1.5}', "holds the number 1.5 at $.a"),
        (b'{"a":1.0}', "holds the number 1.0 at $.a"),
        (b'{"a":9007199254740993}', "beyond ±(2**53 - 1)"),
        (b'{"a":"\\ud800"}', "lone surrogate at $.a"),
        (b'{"a":NaN}', "is not JSON"),
        (b'{"a":"\xff"}', "is not UTF-8"),
        # U+E000 sorts before U+1F600 by code point, after it by UTF-16 code unit.
        ('{"\ue000":1,"\U0001f600":2}'.encode(), "UTF-16"),
    ],
)
def test_canonical_check_accepts_only_what_json_dumps_writes_as_rfc8785(raw, problem):
    _value, found = canonical_problem(raw)

    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans(), st.booleans())
def test_canonical_check_never_disagrees_with_rfc8785(value, sort_keys, compact):
    try:
        expected = rfc8785.dumps(value)
    except Exception:  # rfc8785 refuses it (a lone surrogate, a huge integer)
        expected = None
    written = json.dumps(
        value, ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":") if compact else None
    ).encode("utf-8", "surrogatepass")

    for raw in filter(None, (expected, written)):
        _value, problem = canonical_problem(raw)
        if problem is None:
            assert raw == expected  # accepted: it is byte for byte RFC 8785
        elif raw == expected:  # refused although canonical: only as beyond what it checks
            assert "not RFC 8785 canonical" not in problem and "not JSON" not in problem
