"""C2SP checkpoints in signed-note form, signed and checked with Ed25519; stdlib + cryptography.

A checkpoint body is the origin line, the tree size in decimal, the base64 root hash and
one extension line ``time <RFC 3339 UTC>``; the note is that body, a blank line and one
signature line per signer: ``— <key name> <base64(key hash || signature)>``. The key hash
is the first four bytes of SHA-256(key name || 0x0A || 0x01 || raw Ed25519 public key),
as the C2SP signed-note specification recommends. The signature covers the body including
its final newline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_PREFIX = "— "
ED25519_TYPE = b"\x01"
TIME_EXTENSION = "time "


class NoteError(ValueError):
    """A note or checkpoint that is malformed, unsigned or signed by no trusted key."""


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte signed-note key hash of an Ed25519 key under ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + raw_public(public_key)).digest()[
        :4
    ]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The ``name+hash+key`` text form Go's sumdb/note and C2SP tools accept."""
    encoded = base64.b64encode(ED25519_TYPE + raw_public(public_key)).decode()
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time: str

    def body(self) -> str:
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\n{TIME_EXTENSION}{self.time}\n"


@dataclass(frozen=True)
class Signature:
    name: str
    key_hash: bytes
    signature: bytes


def sign(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note: ``body``, a blank line, and one signature line by ``private_key``."""
    if not body.endswith("\n") or "\n\n" in body:
        raise NoteError("a note body ends with one newline and has no blank line")
    signature = private_key.sign(body.encode())
    blob = base64.b64encode(key_hash(name, private_key.public_key()) + signature).decode()
    return f"{body}\n{SIGNATURE_PREFIX}{name} {blob}\n"


def split(note: str) -> tuple[str, list[Signature]]:
    """The body and the parsed signature lines of a note; raises ``NoteError``."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    body, tail = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in tail[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        name, _, blob = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature line of {name!r} is not base64") from exc
        if not name or len(raw) < 5:
            raise NoteError(f"malformed signature line {line!r}")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    return body, signatures


def open_note(note: str, keys: dict[str, Ed25519PublicKey], name: str) -> tuple[str, str]:
    """Check ``note`` against trusted ``keys`` (by any id) under key ``name``.

    Returns ``(body, key_id)`` of the first trusted signer. Raises ``NoteError`` when a
    trusted key's signature does not verify (a forgery) or when no signature is by a
    trusted key.
    """
    body, signatures = split(note)
    by_hash = {key_hash(name, key): (key_id, key) for key_id, key in keys.items()}
    unknown = []
    for sig in signatures:
        match = by_hash.get(sig.key_hash) if sig.name == name else None
        if match is None:
            unknown.append(f"{sig.name}/{sig.key_hash.hex()}")
            continue
        key_id, key = match
        try:
            key.verify(sig.signature, body.encode())
        except InvalidSignature as exc:
            raise NoteError(f"signature by key {key_id} does not verify") from exc
        return body, key_id
    raise NoteError(f"signed by no trusted key (signers: {', '.join(unknown) or 'none'})")


def parse_checkpoint(body: str) -> Checkpoint:
    """The checkpoint a note body states; raises ``NoteError`` if it is malformed."""
    lines = body[:-1].split("\n") if body.endswith("\n") else []
    if len(lines) < 3:
        raise NoteError("a checkpoint has an origin, a size and a root hash")
    origin, size_text, root_text, *extensions = lines
    # isascii(): "²".isdigit() is true too, and int() would then raise a ValueError.
    if not (size_text.isascii() and size_text.isdigit()) or (
        size_text != "0" and size_text.startswith("0")
    ):
        raise NoteError(f"checkpoint size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise NoteError("checkpoint root is not base64") from exc
    if len(root) != 32:
        raise NoteError("checkpoint root is not 32 bytes")
    times = [line[len(TIME_EXTENSION) :] for line in extensions if line.startswith(TIME_EXTENSION)]
    return Checkpoint(origin, int(size_text), root, times[0] if times else "")
