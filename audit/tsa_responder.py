"""A loopback RFC 3161 timestamp authority for demo and tests: ``python -m audit.tsa_responder``.

Not a mock: every reply is made by OpenSSL's own TSA (``openssl ts -reply``, RFC 3161 and
RFC 5816), behind a small HTTP handler speaking the RFC 3161 §3.4 transport (POST of an
``application/timestamp-query``, answered with an ``application/timestamp-reply``). On
first start it makes, in its folder, its own CA and a TSA certificate issued by it whose
only extended key usage is ``id-kp-timeStamping``, marked critical as RFC 3161 §2.3
requires. A verifier pins ``ca.pem``. Standard library, ``cryptography`` and the
``openssl`` command only; no Django.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from audit import pki

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_QUERY = 16 * 1024
# RFC 3161 requires a policy OID in every token; this loopback TSA has no registered one,
# so it takes an OID under 2.999, the arc X.660 sets aside for examples.
POLICY = "2.999.3161.1"

_CONFIG = """\
[ tsa ]
default_tsa = fedgov_tsa

[ fedgov_tsa ]
dir = {folder}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(common_name: str) -> x509.Name:
    return pki.name("fedgov loopback TSA", common_name)


def setup(folder: Path) -> Path:
    """Make the TSA's CA, certificate and OpenSSL configuration once; returns the config."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = folder / "tsa.cnf"
    if config.exists():
        return config
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_name = _name("fedgov loopback TSA root")
    ca_key, ca_cert = pki.root_ca(ca_name, now=now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("fedgov loopback TSA"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        # RFC 3161 §2.3: the TSA's certificate has exactly this one EKU, critical.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki.write_private_key(folder / "tsa.key", key)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tsa.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "serial").write_text("01\n")
    # Written last: its presence marks a complete TSA.
    config.write_text(_CONFIG.format(folder=folder, policy=POLICY))
    return config


def reply(config: Path, query: bytes) -> bytes:
    """OpenSSL's RFC 3161 reply to the DER ``query`` (a rejection is a reply too)."""
    with tempfile.TemporaryDirectory(prefix="fedgov-tsa-") as tmp:
        query_file, reply_file = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
        query_file.write_bytes(query)
        subprocess.run(
            [
                "openssl",
                "ts",
                "-reply",
                "-config",
                str(config),
                "-queryfile",
                str(query_file),
                "-out",
                str(reply_file),
            ],
            check=True,
            capture_output=True,
            timeout=20,
        )
        return reply_file.read_bytes()


class _Handler(BaseHTTPRequestHandler):
    config: Path

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get_content_type() != QUERY_TYPE or not 0 < length <= MAX_QUERY:
            self.send_error(400, f"POST one {QUERY_TYPE} of at most {MAX_QUERY} bytes")
            return
        try:
            body = reply(self.config, self.rfile.read(length))
        except (subprocess.SubprocessError, OSError) as exc:
            self.send_error(500, f"the TSA failed: {exc}")
            return
        self.send_response(200)
        self.send_header("Content-Type", REPLY_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per stamp would drown the demo's output


def server(folder: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A TSA HTTP server on ``host:port`` (0: any free port), not yet serving."""
    config = setup(folder)
    handler = type("Handler", (_Handler,), {"config": config})
    return ThreadingHTTPServer((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="the TSA's folder (keys, CA)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    httpd = server(args.dir, args.host, args.port)
    host, port = httpd.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    print(f"listening http://{host}:{port}/ ca {args.dir / 'ca.pem'}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
