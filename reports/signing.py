"""PAdES B-LT signatures on reports with pyHanko, from the organisation's X.509 certificate.

The organisation's own certificate and key are used when ``FEDGOV_REPORT_CERT_FILE`` and
``FEDGOV_REPORT_KEY_FILE`` are set (the certificate file may carry its chain). Otherwise
fedgov makes, on first use, its own organisation CA and a signing certificate issued by
it in ``FEDGOV_REPORT_DIR/pki`` (keys 0600); a regulator trusts ``ca.pem`` as the root.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pyhanko.keys import load_cert_from_pemder, load_certs_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from audit import pki

FIELD = "fedgov-report"


@dataclass(frozen=True)
class SigningIdentity:
    cert_file: Path
    key_file: Path
    chain_files: tuple[Path, ...]
    trust_root: Path | None  # the self-made CA; None when the organisation brings its own


@dataclass(frozen=True)
class SignatureCheck:
    intact: bool
    valid: bool
    trusted: bool
    signer: str
    summary: str
    # The signature timestamp's time when a TSA pinned in the trust roots vouches for
    # it; None: no trusted time (the signing time is the signer's own claim).
    timestamped_at: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted


def _name(common_name: str) -> x509.Name:
    return pki.name(settings.FEDGOV_REPORT_ORGANISATION, common_name)


def _make_pki(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_name = _name(f"{settings.FEDGOV_REPORT_ORGANISATION} report CA")
    ca_key, ca_cert = pki.root_ca(ca_name, now=now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{settings.FEDGOV_REPORT_ORGANISATION} audit reports"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki.write_private_key(folder / "ca.key", ca_key)
    pki.write_private_key(folder / "signer.key", key)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    # The certificate is written last: its presence marks a complete identity.
    (folder / "signer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def signing_identity() -> SigningIdentity:
    """The configured identity, or the self-made one (created on first use).

    Raises ``ImproperlyConfigured`` when only one of the two settings is set or a file
    is missing.
    """
    cert_file, key_file = settings.FEDGOV_REPORT_CERT_FILE, settings.FEDGOV_REPORT_KEY_FILE
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise ImproperlyConfigured(
                "set both FEDGOV_REPORT_CERT_FILE and FEDGOV_REPORT_KEY_FILE, or neither"
            )
        for path in (cert_file, key_file):
            if not Path(path).is_file():
                raise ImproperlyConfigured(f"report signing file {path} does not exist")
        return SigningIdentity(Path(cert_file), Path(key_file), (Path(cert_file),), None)
    folder = Path(settings.FEDGOV_REPORT_DIR) / "pki"
    if not (folder / "signer.pem").exists():
        _make_pki(folder)
    return SigningIdentity(
        folder / "signer.pem", folder / "signer.key", (folder / "ca.pem",), folder / "ca.pem"
    )


# The report's own PKI and the pinned TSA publish no CRL or OCSP responder (their
# certificates name none): this is the bundle's explicit statement that there is no
# revocation information to embed, rather than a silent gap in the B-LT validation data.
NO_REVOCATION_INFO = (
    "none: the report CA and the TSA CA are self-issued and publish no CRL or OCSP "
    "responder; their certificates name no distribution point. A regulator revokes by "
    "no longer pinning the CA."
)


def validation_roots(identity: SigningIdentity) -> list[Path]:
    """The certificates a validator pins for a report: the signer's chain and the TSA's."""
    chain = [identity.trust_root] if identity.trust_root else list(identity.chain_files)
    return [*chain, *settings.FEDGOV_TSA_CERT_FILES]


def _timestamper():
    if not settings.FEDGOV_TSA_URL:
        return None
    from audit import tsa  # the one RFC 3161 client, shared with the checkpoints

    return tsa.stamper(settings.FEDGOV_TSA_URL, settings.FEDGOV_TSA_TIMEOUT)


def _sign(inf: IO[bytes], outf: IO[bytes], identity: SigningIdentity, reason: str) -> None:
    signer = signers.SimpleSigner.load(
        key_file=str(identity.key_file),
        cert_file=str(identity.cert_file),
        ca_chain_files=[str(p) for p in identity.chain_files],
    )
    if signer is None:
        raise ImproperlyConfigured(f"cannot load the report signing key {identity.key_file}")
    roots = [c for path in validation_roots(identity) for c in load_certs_from_pemder([str(path)])]
    # PAdES B-LT (ETSI EN 319 142-1 §5.4): a signature timestamp from the TSA (B-T) and the
    # validation data (certificates; revocation data where any is published) in the
    # document security store, so the signature validates without fetching anything.
    # Nothing is fetched at signing time either: every certificate is local.
    context = ValidationContext(
        trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail"
    )
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        name=settings.FEDGOV_REPORT_ORGANISATION,
        embed_validation_info=True,
        validation_context=context,
        use_pades_lta=False,
    )
    writer = IncrementalPdfFileWriter(inf, strict=False)
    signers.sign_pdf(writer, meta, signer=signer, timestamper=_timestamper(), output=outf)


def sign_pdf(
    *,
    source: Path,
    out: Path,
    identity: SigningIdentity | None = None,
    reason: str = "fedgov audit report",
) -> None:
    """Write ``source`` signed as PAdES B-LT to ``out`` (an incremental update).

    Without ``FEDGOV_TSA_URL`` the signature has no timestamp (B-B with validation data):
    no trusted time, which ``verify_pdf`` reports.
    """
    identity = identity or signing_identity()
    with source.open("rb") as inf, out.open("wb") as outf:
        _sign(inf, outf, identity, reason)


def sign_pdf_bytes(data: bytes, *, reason: str, identity: SigningIdentity | None = None) -> bytes:
    """``data`` (a PDF) signed as :func:`sign_pdf` does, in memory (the Art. 30 record)."""
    out = io.BytesIO()
    _sign(io.BytesIO(data), out, identity or signing_identity(), reason)
    return out.getvalue()


def verify_pdf(path: Path, *, trust_roots: list[Path]) -> SignatureCheck:
    """pyHanko's own validation of the report's signature against ``trust_roots``."""
    roots = [cert for root in trust_roots for cert in load_certs_from_pemder([str(root)])]
    with path.open("rb") as handle:
        reader = PdfFileReader(handle, strict=False)
        embedded = reader.embedded_signatures
        if not embedded:
            return SignatureCheck(False, False, False, "", "the PDF carries no signature")
        status = validate_pdf_signature(embedded[0], ValidationContext(trust_roots=roots))
        coverage_ok = status.coverage.name in ("ENTIRE_FILE", "ENTIRE_REVISION")
        stamp = status.timestamp_validity
        timestamped = stamp is not None and stamp.intact and stamp.valid and stamp.trusted
        return SignatureCheck(
            intact=bool(status.intact) and coverage_ok,
            valid=bool(status.valid),
            trusted=bool(status.trusted),
            signer=status.signing_cert.subject.human_friendly,
            summary=status.summary(),
            timestamped_at=stamp.timestamp if timestamped else None,
        )


def trust_root_subject(path: Path) -> str:
    return load_cert_from_pemder(str(path)).subject.human_friendly
