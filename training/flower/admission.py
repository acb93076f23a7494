"""SuperNode admission for the embedded default: a local CA, TLS, SuperNode keys, registration.

fedgov generates a local CA and the SuperLink's TLS certificate with ``cryptography``, an
EC key pair per site's SuperNode (OpenSSH format, as Flower expects), and registers or
unregisters each public key with the SuperLink through the ``flwr supernode`` CLI. No
flwr import: the CLI is the seam (the same commands an operator would type).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from training.flower.supervisor import BIN_DIR, flower_env


@dataclass(frozen=True)
class LocalPki:
    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class SupernodeKey:
    private_key: Path
    public_key: Path

    @property
    def public_text(self) -> str:
        return self.public_key.read_text().strip()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedgov local federation"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def write_local_pki(directory: Path, *, days: int = 365) -> LocalPki:
    """A CA and a SuperLink server certificate for localhost/127.0.0.1 (PEM files)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("fedgov local CA"))
        .issuer_name(_name("fedgov local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("fedgov SuperLink"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pki = LocalPki(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "superlink.pem",
        server_key=directory / "superlink.key",
    )
    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        pki.server_key,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return pki


def write_supernode_key(directory: Path, slug: str) -> SupernodeKey:
    """An EC P-384 key pair in OpenSSH format for one site's SuperNode."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP384R1())
    result = SupernodeKey(directory / f"{slug}.key", directory / f"{slug}.pub")
    _write_private(
        result.private_key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    result.public_key.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + f" fedgov-{slug}\n".encode()
    )
    return result


def write_tls_flwr_home(home: Path, *, name: str, port: int, ca_cert: Path) -> Path:
    """FLWR_HOME naming a TLS SuperLink whose certificate the local CA signed."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\n'
        f'address = "127.0.0.1:{port}"\nroot-certificates = "{ca_cert}"\n'
    )
    return home


def _flwr(home: Path, *args: str) -> str:
    result = subprocess.run(
        [str(BIN_DIR / "flwr"), *args],
        env=flower_env({"FLWR_HOME": str(home)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"flwr {' '.join(args[:2])} failed: {result.stdout}{result.stderr}")
    return result.stdout


def superlink_register(*, home: Path, connection: str, key: SupernodeKey, name: str) -> str:
    """Register the SuperNode's public key with the SuperLink; returns its node id."""
    out = _flwr(
        home, "supernode", "register", str(key.public_key), connection,
        "--name", name, "--format", "json",
    )  # fmt: skip
    data = json.loads(out[out.index("{") :])
    return str(data["node-id"])


def superlink_unregister(*, home: Path, connection: str, node_id: str) -> None:
    """Lock the node out of the SuperLink."""
    _flwr(home, "supernode", "unregister", str(node_id), connection)


def superlink_nodes(*, home: Path, connection: str) -> list[dict]:
    """The SuperLink's view of its SuperNodes (``flwr supernode list --format json``)."""
    out = _flwr(home, "supernode", "list", connection, "--format", "json")
    data = json.loads(out[out.index("{") :])
    return list(data.get("nodes", []))


@dataclass(frozen=True)
class SuperlinkAdmin:
    """The SuperLink's admission list, reached with the flwr CLI and a private FLWR_HOME."""

    home: Path
    connection: str

    def register(self, key: SupernodeKey, name: str) -> str:
        return superlink_register(home=self.home, connection=self.connection, key=key, name=name)

    def unregister(self, node_id: str) -> None:
        superlink_unregister(home=self.home, connection=self.connection, node_id=node_id)

    def nodes(self) -> list[dict]:
        return superlink_nodes(home=self.home, connection=self.connection)

    def save(self, state_dir: Path) -> None:
        (state_dir / "admission.json").write_text(
            json.dumps({"home": str(self.home), "connection": self.connection})
        )


def configured_admin(state_dir: Path) -> SuperlinkAdmin | None:
    """The admin ``manage.py flower up --tls`` left in ``state_dir``, if it is up."""
    path = state_dir / "admission.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return SuperlinkAdmin(Path(data["home"]), data["connection"])
