"""fedgov's Ed25519 signing keys: one active key signs, older keys stay for verifying.

Private keys live as PEM files in ``FEDGOV_KEY_DIR`` (``var/keys`` by default), created with mode
0600 on first use, or the active key comes from ``FEDGOV_SIGNING_KEY_FILE``. A key id is
the first 8 bytes of SHA-256 over the raw public key, hex encoded. Which public keys are
*trusted* is not this folder's business: that is the explicit list in ``audit.trust``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_bytes(public_key)).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _load_private(path: Path, *, strict_mode: bool = True) -> Ed25519PrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # A signing key others can read lets them forge checkpoints and round tickets.
        message = f"{path} has mode {mode:o}; a signing key must be 0600"
        if strict_mode:
            raise ImproperlyConfigured(message)
        logger.warning(message)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def _write_new_key(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    path = directory / f"{key_id_of(key.public_key())}.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    # Replace the marker atomically: a reader sees the old or the new id, never half.
    marker = directory / f".ACTIVE.{os.getpid()}"
    marker.write_text(path.stem)
    marker.replace(directory / "ACTIVE")
    return path


def active_key() -> SigningKey:
    """The key that signs now; generated into the key directory on first use."""
    if settings.FEDGOV_SIGNING_KEY_FILE:
        # Mounted secrets are often 0440/0444; warn rather than refuse to start.
        key = _load_private(Path(settings.FEDGOV_SIGNING_KEY_FILE), strict_mode=False)
        return SigningKey(key_id_of(key.public_key()), key)
    directory = Path(settings.FEDGOV_KEY_DIR)
    marker = directory / "ACTIVE"
    if not marker.exists():
        _write_new_key(directory)
    key = _load_private(directory / f"{marker.read_text().strip()}.pem")
    return SigningKey(key_id_of(key.public_key()), key)


def rotate() -> SigningKey:
    """Make a new active key; the old ones stay on disk for verifying old signatures.

    Raises ``ImproperlyConfigured`` when the active key comes from
    ``FEDGOV_SIGNING_KEY_FILE``: that key is rotated by replacing the file.
    """
    if settings.FEDGOV_SIGNING_KEY_FILE:
        raise ImproperlyConfigured(
            "the active key comes from FEDGOV_SIGNING_KEY_FILE; rotate it by replacing that file"
        )
    _write_new_key(Path(settings.FEDGOV_KEY_DIR))
    return active_key()


def public_keys() -> dict[str, Ed25519PublicKey]:
    """The log keys of the trusted list (``audit.trust``), by key id, ended ones included.

    Not the key folder: a ``*.pem`` dropped there must not become trusted.
    """
    from audit import trust  # trust writes through the ledger, which imports this module

    return trust.public_keys()


@dataclass(frozen=True)
class PublicKeyInfo:
    key_id: str
    public_key: Ed25519PublicKey
    active: bool


def key_infos() -> list[PublicKeyInfo]:
    """Every trusted log key with whether it signs now; active key first."""
    active = active_key().key_id
    infos = [PublicKeyInfo(key_id, key, key_id == active) for key_id, key in public_keys().items()]
    return sorted(infos, key=lambda info: (not info.active, info.key_id))
