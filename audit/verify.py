"""Offline verifier of fedgov evidence bundles: ``python -m audit.verify BUNDLE``.

Standard library plus ``cryptography`` only; it imports no Django and no fedgov app, so a
regulator can run it with ``audit/__init__.py``, ``audit/merkle.py``, ``audit/note.py`` and
this file. Pin the keys you trust with ``--trusted-key`` (a PEM public key file or a
``name+hash+base64`` verifier key); otherwise the keys shipped in the bundle are used,
which proves integrity but not origin. Exits 0 when everything checks, 1 naming the first
bad sequence number, 2 when the bundle cannot be read.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import merkle, note

FORMAT = "fedgov-evidence-bundle/1"
ENTRY_FIELDS = ("actor", "event_type", "payload", "seq", "subject_id", "subject_type", "time")


class BundleError(Exception):
    """The bundle cannot be read at all (missing file, not JSON, wrong format)."""


@dataclass(frozen=True, order=True)
class Finding:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}"


@dataclass
class Result:
    entries: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


class _Source:
    """A bundle folder or zip, read as text files by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive = zipfile.ZipFile(path) if path.is_file() else None
        if self.archive is None and not path.is_dir():
            raise BundleError(f"{path} is neither a bundle folder nor a zip file")

    def read(self, name: str) -> bytes:
        try:
            if self.archive is not None:
                return self.archive.read(name)
            return (self.path / name).read_bytes()
        except (KeyError, FileNotFoundError) as exc:
            raise BundleError(f"the bundle has no {name}") from exc


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError) as exc:
        raise BundleError(f"{what} is not base64") from exc


def _json(raw: bytes, what: str):
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{what} is not JSON: {exc}") from exc


def load_trusted_key(spec: str) -> tuple[str, Ed25519PublicKey]:
    """A key from a PEM public-key file or a ``name+hash+base64`` verifier key."""
    path = Path(spec)
    if path.is_file():
        key = serialization.load_pem_public_key(path.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise BundleError(f"{spec} is not an Ed25519 public key")
        return path.name, key
    _name, _, rest = spec.partition("+")
    _hash, _, encoded = rest.partition("+")
    raw = _b64(encoded, f"verifier key {spec!r}")
    if len(raw) != 33 or raw[:1] != note.ED25519_TYPE:
        raise BundleError(f"{spec!r} is neither a PEM file nor an Ed25519 verifier key")
    return spec, Ed25519PublicKey.from_public_bytes(raw[1:])


def verify_bundle(path: Path, trusted: dict[str, Ed25519PublicKey] | None = None) -> Result:
    """Check a bundle; returns findings sorted by seq. Raises ``BundleError`` if unreadable."""
    source = _Source(path)
    result = Result()
    manifest = _json(source.read("manifest.json"), "manifest.json")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"unknown bundle format {manifest.get('format')!r}")
    origin, first, last = manifest["origin"], manifest["from_seq"], manifest["to_seq"]
    contents = {}
    for name, digest in manifest["files"].items():
        contents[name] = source.read(name)
        if hashlib.sha256(contents[name]).hexdigest() != digest:
            result.findings.append(Finding(first, f"{name} does not match its manifest hash"))
    if result.findings:
        return result

    if trusted is None:
        trusted = {
            record["key_id"]: Ed25519PublicKey.from_public_bytes(
                _b64(record["public_key"], "a public key")
            )
            for record in _json(contents["keys.json"], "keys.json")
        }
        result.notes.append(
            "trusting the public keys shipped in the bundle; pin them with --trusted-key"
        )

    roots: dict[int, bytes] = {}
    for item in _json(contents["checkpoints.json"], "checkpoints.json"):
        size = item["size"]
        try:
            body, _key_id = note.open_note(item["note"], trusted, origin)
            signed = note.parse_checkpoint(body)
        except note.NoteError as exc:
            result.findings.append(Finding(size - 1, f"checkpoint at size {size}: {exc}"))
            continue
        if signed.origin != origin or signed.size != size:
            result.findings.append(
                Finding(size - 1, f"checkpoint at size {size} states {signed.origin} {signed.size}")
            )
            continue
        roots[size] = signed.root
        result.checkpoints += 1

    for item in _json(contents["proofs/consistency.json"], "proofs/consistency.json"):
        size1, size2 = item["from"], item["to"]
        if size1 not in roots or size2 not in roots:
            continue  # already reported as a bad checkpoint
        proof = [_b64(p, "a consistency proof") for p in item["proof"]]
        if not merkle.verify_consistency(size1, size2, roots[size1], roots[size2], proof):
            result.findings.append(
                Finding(size1 - 1, f"checkpoints at sizes {size1} and {size2} are not consistent")
            )

    proofs = {}
    for line in contents["proofs/inclusion.jsonl"].decode().splitlines():
        item = _json(line.encode(), "an inclusion proof")
        proofs[item["seq"]] = item

    expected = first
    for line in contents["entries.jsonl"].decode().splitlines():
        entry = _json(line.encode(), "an entry")
        seq = entry.get("seq")
        if seq != expected:
            result.findings.append(Finding(expected, f"entry is missing (next entry is {seq})"))
            break
        expected += 1
        result.entries += 1
        result.findings += _check_entry(entry, proofs.get(seq), roots)
    if expected <= last and not any(f.seq >= expected for f in result.findings):
        result.findings.append(Finding(expected, "entry is missing (the bundle ends early)"))
    result.findings.sort()
    return result


def _check_entry(entry: dict, proof: dict | None, roots: dict[int, bytes]) -> list[Finding]:
    seq = entry["seq"]
    leaf = entry["leaf"].encode()
    digest = merkle.leaf_hash(leaf)
    if digest != _b64(entry["leaf_hash"], f"leaf hash of {seq}"):
        return [Finding(seq, "leaf hash is not SHA-256(0x00 || leaf)")]
    try:
        document = json.loads(leaf)
    except json.JSONDecodeError:
        return [Finding(seq, "leaf is not JSON")]
    if not isinstance(document, dict) or sorted(document) != list(ENTRY_FIELDS):
        return [Finding(seq, "leaf does not hold exactly the entry fields")]
    differing = [name for name in ENTRY_FIELDS if document[name] != entry.get(name)]
    if differing:
        return [Finding(seq, f"entry fields {', '.join(differing)} differ from its hashed leaf")]
    if proof is None:
        return [Finding(seq, "no inclusion proof")]
    size = proof["size"]
    if size not in roots:
        return [Finding(seq, f"inclusion proof names size {size}, which no valid checkpoint has")]
    path = [_b64(p, f"inclusion proof of {seq}") for p in proof["proof"]]
    if not merkle.verify_inclusion(digest, seq, size, path, roots[size]):
        return [
            Finding(seq, f"inclusion proof does not lead to the checkpoint root at size {size}")
        ]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.verify", description="Verify a fedgov evidence bundle offline."
    )
    parser.add_argument("bundle", type=Path, help="bundle folder or .zip")
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        help="PEM public key file or name+hash+base64 verifier key (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        trusted = dict(load_trusted_key(spec) for spec in args.trusted_key) or None
        result = verify_bundle(args.bundle, trusted)
    except (BundleError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
        print(f"ERROR: cannot read bundle {args.bundle}: {exc}", file=sys.stderr)
        return 2
    for text in result.notes:
        print(f"note: {text}", file=sys.stderr)
    if not result.ok:
        for finding in result.findings:
            print(f"FAIL {finding}", file=sys.stderr)
        print(f"first bad seq: {result.findings[0].seq}", file=sys.stderr)
        return 1
    print(f"OK: {result.entries} entries, {result.checkpoints} checkpoints verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
