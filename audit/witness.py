"""A transparency-log witness: ``python -m audit.witness``; stdlib + cryptography, no Django.

A site, or any third party, runs this on its own machine with its own Ed25519 key. It
speaks the C2SP tlog-witness protocol (c2sp.org/tlog-witness, the ``add-checkpoint``
call) and returns C2SP ``cosignature/v1`` Ed25519 cosignatures (c2sp.org/tlog-cosignature):
a note signature line whose key ID is SHA-256(name || 0x0A || 0x04 || public key)[:4]
and whose signature is ``u64 timestamp (big-endian) || Ed25519 signature`` over

    cosignature/v1
    time <timestamp>
    <the checkpoint's note body>

For each log it trusts (by origin and signed-note verifier key) it keeps the latest
cosigned ``(size, root)`` in its own state file, and cosigns a new checkpoint only with a
valid RFC 6962/9162 consistency proof from exactly that state. So it never cosigns a
smaller tree nor a different root at the same size. Check and update run under one lock
and the state is on disk (written to a temporary file, fsynced, renamed) before the
cosignature leaves. Every refusal is logged, to stderr and as a JSON line in the refusal
log, since a refused checkpoint signed by the log's key may be proof of misbehaviour.

Status codes (tlog-witness, add-checkpoint): 404 unknown origin; 403 no signature by a
trusted key or a trusted key's signature that fails; 400 malformed request or old size
above the checkpoint size; 409 old size not the latest cosigned size (body: that size
and a newline, ``Content-Type: text/x.tlog.size``); 422 a consistency proof that does not
verify, a proof with old size zero, an empty tree with a wrong root, or another root at
the same size; 200 with the cosignature line.

Only ``audit.merkle`` and ``audit.note`` are imported from fedgov: both are standard
library plus ``cryptography``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import logging
import os
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit import merkle, note

logger = logging.getLogger("fedgov.witness")

COSIGNATURE_TYPE = b"\x04"
COSIGNATURE_HEADER = "cosignature/v1\n"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_BODY = 1 << 16


class Refusal(Exception):
    """An add-checkpoint request the witness does not cosign, with its HTTP status."""

    def __init__(self, status: int, reason: str, body: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body


def cosigner_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID of an Ed25519 ``cosignature/v1`` key (tlog-cosignature)."""
    return hashlib.sha256(
        name.encode() + b"\n" + COSIGNATURE_TYPE + note.raw_public(public_key)
    ).digest()[:4]


def cosigner_vkey(name: str, public_key: Ed25519PublicKey) -> str:
    """The signed-note verifier key of a cosigner: ``name+hex(key ID)+base64(0x04 || key)``."""
    encoded = base64.b64encode(COSIGNATURE_TYPE + note.raw_public(public_key)).decode()
    return f"{name}+{cosigner_key_id(name, public_key).hex()}+{encoded}"


def cosigned_message(body: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


def cosign(body: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """One ``cosignature/v1`` note signature line over checkpoint ``body``."""
    if not 0 < timestamp <= 2**63 - 1:
        raise ValueError("a cosignature timestamp is a positive u64 below 2**63")
    signature = key.sign(cosigned_message(body, timestamp))
    blob = cosigner_key_id(name, key.public_key()) + struct.pack(">Q", timestamp) + signature
    return f"{note.SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Cosignature:
    name: str
    timestamp: int
    line: str


def claims_cosigner(line: str, name: str, public_key: Ed25519PublicKey) -> bool:
    """Whether ``line`` names this cosigner: its name and key ID (signed-note: a verifier
    ignores signatures by names and key IDs it does not know, and fails one it knows that
    does not verify)."""
    line = line.rstrip("\n")
    if not line.startswith(note.SIGNATURE_PREFIX):
        return False
    signer, _, blob = line[len(note.SIGNATURE_PREFIX) :].rpartition(" ")
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error:
        return False
    return signer == name and raw[:4] == cosigner_key_id(name, public_key)


def open_cosignature(line: str, body: str, name: str, public_key: Ed25519PublicKey) -> Cosignature:
    """Check one cosignature line by the cosigner (``name``, ``public_key``) over ``body``.

    Raises ``note.NoteError`` when it is by another key, malformed, or does not verify.
    """
    line = line.rstrip("\n")
    if not line.startswith(note.SIGNATURE_PREFIX):
        raise note.NoteError(f"not a note signature line: {line!r}")
    signer, _, blob = line[len(note.SIGNATURE_PREFIX) :].rpartition(" ")
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:
        raise note.NoteError("cosignature is not base64") from exc
    if signer != name or raw[:4] != cosigner_key_id(name, public_key):
        raise note.NoteError(
            f"cosignature is not by {name}/{cosigner_key_id(name, public_key).hex()}"
        )
    if len(raw) != 4 + 8 + 64:
        raise note.NoteError("an Ed25519 cosignature is key ID, 8-byte timestamp and 64 bytes")
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    if timestamp == 0 or timestamp > 2**63 - 1:
        raise note.NoteError("cosignature timestamp is zero or above 2**63 - 1")
    try:
        public_key.verify(raw[12:], cosigned_message(body, timestamp))
    except Exception as exc:  # cryptography's InvalidSignature
        raise note.NoteError(f"cosignature by {name} does not verify") from exc
    return Cosignature(name, timestamp, line + "\n")


@dataclass(frozen=True)
class LogKey:
    """A log the witness follows: its origin (= key name) and Ed25519 public key."""

    origin: str
    public_key: Ed25519PublicKey

    @classmethod
    def from_vkey(cls, vkey: str) -> LogKey:
        """Parse ``name+hex(key ID)+base64(0x01 || key)`` (signed-note verifier key)."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError(f"{vkey!r} is not a name+hash+key verifier key")
        name, key_hash, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"verifier key of {name!r} is not base64") from exc
        if len(raw) != 33 or raw[:1] != note.ED25519_TYPE:
            raise ValueError(f"verifier key of {name!r} is not an Ed25519 (0x01) key")
        public = Ed25519PublicKey.from_public_bytes(raw[1:])
        if note.key_hash(name, public).hex() != key_hash:
            raise ValueError(f"verifier key of {name!r}: key hash does not match name and key")
        return cls(name, public)


class State:
    """The latest cosigned (size, root) per origin, kept in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logs: dict[str, tuple[int, bytes]] = {}
        if path.exists():
            data = json.loads(path.read_text())
            for origin, entry in data.get("logs", {}).items():
                self.logs[origin] = (int(entry["size"]), base64.b64decode(entry["root"]))

    def get(self, origin: str) -> tuple[int, bytes]:
        return self.logs.get(origin, (0, merkle.EMPTY_ROOT))

    def put(self, origin: str, size: int, root: bytes) -> None:
        logs = dict(self.logs)
        logs[origin] = (size, root)
        data = {
            "logs": {
                o: {"size": s, "root": base64.b64encode(r).decode()}
                for o, (s, r) in sorted(logs.items())
            }
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        self.logs = logs


def _decimal(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii() or (text != "0" and text.startswith("0")):
        raise Refusal(400, f"{what} {text!r} is not a decimal without leading zeroes")
    return int(text)


def parse_request(raw: bytes) -> tuple[int, list[bytes], str]:
    """Old size, consistency proof and checkpoint note of an add-checkpoint body."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(400, "request body is not UTF-8") from exc
    head, sep, checkpoint = text.partition("\n\n")
    if not sep or not checkpoint:
        raise Refusal(400, "request has no empty line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise Refusal(400, "request does not start with an old size line")
    old = _decimal(lines[0][4:], "old size")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            digest = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise Refusal(400, "a consistency proof line is not base64") from exc
        if len(digest) != merkle.HASH_SIZE:
            raise Refusal(400, "a consistency proof line is not a 32-byte hash")
        proof.append(digest)
    return old, proof, checkpoint


class Witness:
    """The witness's decisions, without HTTP: :meth:`add_checkpoint` returns a cosignature
    line or raises :class:`Refusal`."""

    def __init__(
        self,
        *,
        name: str,
        key: Ed25519PrivateKey,
        logs: list[LogKey],
        state: State,
        refusals: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not name or any(c.isspace() for c in name) or "+" in name:
            raise ValueError("a witness name is non-empty, with no spaces and no '+'")
        self.name = name
        self.key = key
        self.logs = {log.origin: log for log in logs}
        self.state = state
        self.refusals = refusals
        self.clock = clock
        self.lock = threading.Lock()

    def add_checkpoint(self, raw: bytes) -> str:
        origin, old, size = None, None, None
        try:
            old, proof, checkpoint = parse_request(raw)
            try:
                body, _signatures = note.split(checkpoint)
            except note.NoteError as exc:
                raise Refusal(400, f"checkpoint is not a signed note: {exc}") from exc
            origin = body.split("\n", 1)[0]
            log = self.logs.get(origin)
            if log is None:
                raise Refusal(404, f"unknown log origin {origin!r}")
            try:
                note.open_note(checkpoint, {origin: log.public_key}, origin)
            except note.NoteError as exc:
                raise Refusal(403, str(exc)) from exc
            try:
                signed = note.parse_checkpoint(body)
            except note.NoteError as exc:
                raise Refusal(400, str(exc)) from exc
            size = signed.size
            if old > size:
                raise Refusal(400, f"old size {old} is above the checkpoint size {size}")
            if size == 0 and signed.root != merkle.EMPTY_ROOT:
                raise Refusal(422, "a checkpoint of size 0 must have the empty tree's root")
            with self.lock:
                known_size, known_root = self.state.get(origin)
                if old != known_size:
                    raise Refusal(
                        409,
                        f"old size {old} is not the latest cosigned size {known_size}",
                        body=f"{known_size}\n",
                    )
                if old == 0 and proof:
                    raise Refusal(422, "old size 0 needs an empty consistency proof")
                if old == size:
                    if signed.root != known_root or proof:
                        raise Refusal(
                            422, f"another root at the already cosigned size {size}: a fork"
                        )
                elif old and not merkle.verify_consistency(
                    old, size, known_root, signed.root, proof
                ):
                    raise Refusal(422, f"consistency proof from size {old} to {size} fails")
                # Persisted before the cosignature is returned (tlog-witness).
                self.state.put(origin, size, signed.root)
                timestamp = int(self.clock())
            return cosign(body, self.name, self.key, timestamp)
        except Refusal as refusal:
            self._log_refusal(refusal, origin, old, size)
            raise

    def _log_refusal(
        self, refusal: Refusal, origin: str | None, old: int | None, size: int | None
    ) -> None:
        record = {
            "time": int(self.clock()),
            "status": refusal.status,
            "reason": refusal.reason,
            "origin": origin,
            "old": old,
            "size": size,
        }
        logger.warning("refused add-checkpoint: %s", json.dumps(record, sort_keys=True))
        if self.refusals is not None:
            with self.lock, open(self.refusals, "a") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")


def make_handler(witness: Witness, prefix: str = "") -> type[BaseHTTPRequestHandler]:
    path = prefix.rstrip("/") + "/add-checkpoint"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as tlog-witness recommends
        # Headers and body leave in separate writes: with Nagle's algorithm on, the body
        # waits for the client's delayed ACK (40 ms on Linux).
        disable_nagle_algorithm = True

        def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path != path:
                self._send(404, "not found\n")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send(411, "Content-Length required\n")
                return
            if not 0 <= length <= MAX_BODY:
                self._send(413, "request body too large\n")
                return
            raw = self.rfile.read(length)
            try:
                line = witness.add_checkpoint(raw)
            except Refusal as refusal:
                if refusal.status == 409:
                    self._send(409, refusal.body or "", SIZE_CONTENT_TYPE)
                else:
                    self._send(refusal.status, refusal.reason + "\n")
                return
            self._send(200, line)

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s %s", self.address_string(), format % args)

    return Handler


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The witness's own key, created 0600 on first start."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return key
    if path.stat().st_mode & 0o077:
        raise SystemExit(f"{path} is readable by others; a witness key must be 0600")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SystemExit(f"{path} does not hold an Ed25519 private key")
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.witness",
        description="A C2SP tlog-witness: cosigns checkpoints consistent with what it saw.",
    )
    parser.add_argument("--name", required=True, help="the witness's key name, e.g. site-a/w1")
    parser.add_argument("--key", type=Path, required=True, help="Ed25519 PEM (made if absent)")
    parser.add_argument("--state", type=Path, required=True, help="JSON file of latest sizes")
    parser.add_argument("--refusals", type=Path, help="JSON-lines file of refused requests")
    parser.add_argument(
        "--log", action="append", default=[], help="a log to witness: its verifier key (vkey)"
    )
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: any)")
    parser.add_argument("--prefix", default="", help="submission prefix, e.g. /witness")
    parser.add_argument("--print-vkey", action="store_true", help="print the vkey and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    key = load_or_create_key(args.key)
    print(cosigner_vkey(args.name, key.public_key()), flush=True)
    if args.print_vkey:
        return 0
    try:
        logs = [LogKey.from_vkey(vkey) for vkey in args.log]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not logs:
        print("error: name at least one --log verifier key", file=sys.stderr)
        return 2
    witness = Witness(
        name=args.name, key=key, logs=logs, state=State(args.state), refusals=args.refusals
    )
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer(
        (host or "127.0.0.1", int(port)), make_handler(witness, args.prefix)
    )
    # The bound address on its own line, so a parent process can read the port.
    host, port = server.server_address[:2]
    print(f"listening http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
