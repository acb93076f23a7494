"""A report made with a real TSA on loopback and witnesses running: the PDF is signed PAdES
B-LT (signature timestamp, validation data in the DSS), pyHanko's own command line validates
it against the CA taken from the evidence bundle, and the PDF shows the witnesses'
cosignatures and the checkpoint's trusted time. The Art. 30 PDF is signed the same way."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from audit import keys, note, trust
from audit.models import CheckpointTimestamp, Cosignature
from fedgov.actors import Actor
from reports import art30
from reports.bundle import CA_CHAIN
from reports.data import processing_activities
from reports.signing import signing_identity, validation_roots, verify_pdf
from tests.audit.conftest import RunningWitness
from tests.reports.test_service_and_api import generated

pytestmark = pytest.mark.django_db
PYHANKO = Path(sys.executable).with_name("pyhanko")


def _start_witnesses(settings, tmp_path, count: int) -> list[RunningWitness]:
    vkey = note.verifier_key(settings.FEDGOV_LEDGER_ORIGIN, keys.active_key().public_key)
    running = [RunningWitness(tmp_path, f"site-{i}.example/witness", vkey) for i in range(count)]
    for w in running:
        trust.key_trust(
            actor=Actor.system("tests"),
            role="witness",
            name=w.name,
            public_key=w.key.public_key(),
            reason="the site runs a witness",
        )
    settings.FEDGOV_WITNESSES = [(w.name, w.url) for w in running]
    settings.FEDGOV_WITNESS_QUORUM = count
    return running


@pytest.fixture
def trusted_report(played_run, report_dirs, tsa_dir, tmp_path, settings):
    running = _start_witnesses(settings, tmp_path, 2)
    try:
        report = generated(played_run[0])
    finally:
        for w in running:
            w.stop()
    out = tmp_path / "handed-over"
    out.mkdir()
    shutil.copy(report_dirs / report.pdf_name, out / "report.pdf")
    with zipfile.ZipFile(report_dirs / report.bundle_name) as archive:
        (out / "ca.pem").write_bytes(archive.read(CA_CHAIN))
    return out, report, running


def test_report_is_pades_b_lt_with_a_signature_timestamp_and_a_dss(trusted_report, tsa_dir):
    out, _report, _running = trusted_report
    check = verify_pdf(out / "report.pdf", trust_roots=[out / "ca.pem"])
    assert check.ok, check.summary
    assert check.timestamped_at is not None
    with (out / "report.pdf").open("rb") as handle:
        reader = PdfFileReader(handle, strict=False)
        dss = reader.root["/DSS"]
        certs = {bytes(stream.get_object().data) for stream in dss["/Certs"]}
    # The DSS holds the report signer's chain and the TSA's, so nothing is fetched to
    # validate it later (B-LT); our self-issued CAs publish no revocation data at all.
    from pyhanko.keys import load_certs_from_pemder

    wanted = [c.dump() for c in load_certs_from_pemder([str(tsa_dir / "ca.pem")])]
    wanted += [c.dump() for c in load_certs_from_pemder([str(signing_identity().cert_file)])]
    assert all(cert in certs for cert in wanted)


def test_pyhanko_cli_validates_the_report_with_the_ca_from_the_bundle(trusted_report, settings):
    out, _report, _running = trusted_report
    # Exactly the command the README gives a regulator.
    result = subprocess.run(
        [str(PYHANKO), "sign", "validate", "--pretty-print", "--trust", "ca.pem", "report.pdf"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert "The signature is judged VALID" in text, text
    assert "The signature is cryptographically sound" in text
    assert "The signer's certificate is trusted." in text
    assert "This timestamp is backed by a time stamping authority." in text
    assert "The timestamp token is cryptographically sound." in text
    assert "The TSA certificate is trusted." in text
    # Another CA does not vouch for it.
    other = out / "other"
    other.mkdir()
    shutil.copy(out / "report.pdf", other / "report.pdf")
    settings.FEDGOV_REPORT_DIR = other / "org"
    (other / "ca.pem").write_bytes(signing_identity().trust_root.read_bytes())
    refused = subprocess.run(
        [str(PYHANKO), "sign", "validate", "--pretty-print", "--trust", "ca.pem", "report.pdf"],
        cwd=other,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "The signature is judged VALID" not in refused.stdout


def test_report_pdf_shows_cosignatures_and_trusted_time(trusted_report):
    out, report, running = trusted_report
    text = subprocess.run(
        ["pdftotext", "-layout", str(out / "report.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Witness cosignatures" in text
    cosignatures = Cosignature.objects.filter(checkpoint_id=report.anchor_size)
    assert sorted(c.witness for c in cosignatures) == sorted(w.name for w in running)
    for c in cosignatures:
        assert c.witness in text and c.key_id in text
        cosigned_at = datetime.fromtimestamp(c.timestamp, UTC)
        assert cosigned_at.strftime("%Y-%m-%d %H:%M:%S UTC") in text
    stamp = CheckpointTimestamp.objects.get(checkpoint_id=report.anchor_size)
    assert "Trusted time (RFC 3161)" in text
    assert stamp.gen_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") in text
    assert "No trusted time" not in text


def test_without_a_tsa_the_report_says_no_trusted_time(played_run, report_dirs, settings):
    settings.FEDGOV_TSA_URL = ""
    report = generated(played_run[0])
    pdf = report_dirs / report.pdf_name
    check = verify_pdf(pdf, trust_roots=validation_roots(signing_identity()))
    assert check.ok and check.timestamped_at is None
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "No trusted time." in text


def test_art30_pdf_is_signed_and_timestamped(played_run, tsa_dir, tmp_path):
    body, content_type, _name = art30.render(
        "controller",
        "pdf",
        processing_activities(),
        generated_at=datetime.now(UTC),
        processor="fedgov operator",
    )
    assert content_type == "application/pdf"
    (tmp_path / "art30.pdf").write_bytes(body)
    check = verify_pdf(tmp_path / "art30.pdf", trust_roots=validation_roots(signing_identity()))
    assert check.ok, check.summary
    assert check.timestamped_at is not None
    # Any changed byte of the record breaks the signature.
    data = bytearray(body)
    data[data.index(b"/Type /Catalog") + 1] ^= 1
    (tmp_path / "changed.pdf").write_bytes(bytes(data))
    assert not verify_pdf(tmp_path / "changed.pdf", trust_roots=[tsa_dir / "ca.pem"]).ok
