"""PAdES signing: pyHanko's validator accepts the report against the trust root, not a change."""

from __future__ import annotations

import stat

import pytest
from reportlab.pdfgen import canvas

from reports.signing import sign_pdf, signing_identity, verify_pdf


def plain_pdf(path):
    page = canvas.Canvas(str(path), pageCompression=0)
    page.drawString(72, 720, "Round 1 allowed; 3 of 3 sites eligible")
    page.save()
    return path


def test_signed_report_is_intact_valid_and_trusted_by_the_org_ca(tmp_path):
    source = plain_pdf(tmp_path / "report.pdf")
    identity = signing_identity()

    sign_pdf(source=source, out=tmp_path / "signed.pdf", identity=identity)
    check = verify_pdf(tmp_path / "signed.pdf", trust_roots=[identity.trust_root])

    assert check.ok, check.summary
    assert "audit reports" in check.signer


def test_self_made_identity_keeps_its_keys_private_and_is_made_once(report_dirs):
    first = signing_identity()
    second = signing_identity()

    assert first == second
    for key in (first.key_file, report_dirs / "pki" / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_changed_byte_fails_validation(tmp_path):
    source = plain_pdf(tmp_path / "report.pdf")
    identity = signing_identity()
    sign_pdf(source=source, out=tmp_path / "signed.pdf", identity=identity)
    data = bytearray((tmp_path / "signed.pdf").read_bytes())
    data[data.index(b"Round 1 allowed")] = ord("X")
    (tmp_path / "tampered.pdf").write_bytes(bytes(data))

    check = verify_pdf(tmp_path / "tampered.pdf", trust_roots=[identity.trust_root])

    assert not check.intact and not check.ok


def test_another_trust_root_does_not_trust_the_report(tmp_path, settings):
    source = plain_pdf(tmp_path / "report.pdf")
    sign_pdf(source=source, out=tmp_path / "signed.pdf", identity=signing_identity())
    settings.FEDGOV_REPORT_DIR = tmp_path / "other-org"
    stranger = signing_identity()

    check = verify_pdf(tmp_path / "signed.pdf", trust_roots=[stranger.trust_root])

    assert check.intact and not check.trusted


def test_half_configured_organisation_certificate_is_refused(settings, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    settings.FEDGOV_REPORT_CERT_FILE = str(tmp_path / "org.pem")
    with pytest.raises(ImproperlyConfigured, match="both"):
        signing_identity()


def test_organisation_certificate_is_used_when_configured(settings, tmp_path):
    made = signing_identity()  # stands in for the organisation's own PKI
    settings.FEDGOV_REPORT_DIR = tmp_path / "elsewhere"
    settings.FEDGOV_REPORT_CERT_FILE = str(made.cert_file)
    settings.FEDGOV_REPORT_KEY_FILE = str(made.key_file)
    source = plain_pdf(tmp_path / "report.pdf")

    identity = signing_identity()
    sign_pdf(source=source, out=tmp_path / "signed.pdf", identity=identity)

    assert identity.cert_file == made.cert_file and not (tmp_path / "elsewhere").exists()
    assert verify_pdf(tmp_path / "signed.pdf", trust_roots=[made.trust_root]).ok
