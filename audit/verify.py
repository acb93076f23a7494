"""Offline verifier of fedgov evidence bundles: ``python -m audit.verify BUNDLE``.

Standard library plus ``cryptography`` only; it imports no Django and no fedgov app, so a
regulator can run it with ``audit/__init__.py``, ``audit/merkle.py``, ``audit/note.py`` and
this file. Pin the keys you trust with ``--trusted-key`` (a PEM public key file or a
``name+hash+base64`` verifier key); otherwise the keys shipped in the bundle are used,
which proves integrity but not origin. A report's bundle (``report/`` files) is checked
too: its signed statement, its data, the events it cites, its anchor checkpoint and, with
``--pdf FILE``, the PDF. Exits 0 when everything checks, 1 on a finding (naming the first
bad sequence number for the ledger part), 2 when the bundle cannot be read.

Witnesses (``audit/witness.py`` is then needed too): pin their ``cosignature/v1`` keys
with ``--witness-key`` (the vkey a witness prints) and the verifier also fails an entry
older than ``--max-lag`` seconds (default 3600, measured at ``--at``, default now) that no
checkpoint with ``--quorum`` valid cosignatures covers; with ``--witness-state FILE`` (a
witness's state file) it fails a bundle whose tree is behind, or differs from, what that
witness cosigned: a rollback or a rewrite. A cosignature dated before the checkpoint it
signs is refused, and so is a checkpoint signed outside its key's validity window in
``keys.json``.

Trusted time: with ``--tsa-cert FILE`` (the TSA's CA or certificate, PEM) each
checkpoint's RFC 3161 token is checked: its imprint is SHA-256 of the checkpoint note,
its signature chains to the pinned certificate, and it is not older than the time the
checkpoint states. This check (only) needs pyHanko and ``audit/tsa.py``. A bundle without
tokens is reported as "no trusted time".
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import itertools
import json
import re
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import merkle, note, witness

FORMAT = "fedgov-evidence-bundle/1"
ENTRY_FIELDS = ("actor", "event_type", "payload", "seq", "subject_id", "subject_type", "time")
REPORT_FORMAT = "fedgov-report-statement/1"
REPORT_DATA = "report/data.jsonl"
REPORT_STATEMENT = "report/statement.json"
REPORT_SIGNATURE = "report/signature.json"
REPORT_FILES = (REPORT_DATA, REPORT_STATEMENT, REPORT_SIGNATURE)
STATEMENT_FIELDS = ("anchor_size", "cited_seqs", "data_sha256", "format", "pdf_sha256", "report_id")
DATA_KINDS = ("run", "round")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# I-JSON's exact integer range (RFC 7493 §2.2); RFC 8785 writes numbers as IEEE doubles.
_SAFE_INT = 2**53 - 1
_LISTED_LINE_FINDINGS = 10


class BundleError(Exception):
    """The bundle cannot be read at all (missing file, not JSON, wrong format)."""


class PdfError(BundleError):
    """The PDF given with ``--pdf`` cannot be read."""


@dataclass(frozen=True, order=True)
class Finding:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}"


@dataclass
class ReportResult:
    """What a bundle's report states (None where unreadable) and what is wrong with it."""

    report_id: str | None = None
    run_lines: int = 0
    round_lines: int = 0
    cited: int | None = None
    anchor_size: int | None = None
    key_id: str | None = None
    keys_pinned: bool = False
    # None: no --pdf given; else whether its SHA-256 is the statement's pdf_sha256
    pdf_matches: bool | None = None
    findings: list[str] = field(default_factory=list)


@dataclass
class Result:
    entries: int = 0
    checkpoints: int = 0
    redacted: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report: ReportResult | None = None

    @property
    def ok(self) -> bool:
        return not self.findings and (self.report is None or not self.report.findings)


@dataclass
class _Ledger:
    """What the ledger part of a bundle proved, for the report checks."""

    keys: dict[str, Ed25519PublicKey]
    pinned: bool
    roots: dict[int, bytes] = field(default_factory=dict)
    # seq -> size of the checkpoint its inclusion proof verified against
    proved: dict[int, int] = field(default_factory=dict)
    # (from, to) sizes of the consistency proofs that verified
    links: set[tuple[int, int]] = field(default_factory=set)
    # size -> the time its valid checkpoint states; size -> a checked RFC 3161 time
    checkpoint_times: dict[int, str] = field(default_factory=dict)
    timestamped: dict[int, datetime] = field(default_factory=dict)


class _Source:
    """A bundle folder or zip, read as text files by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive = zipfile.ZipFile(path) if path.is_file() else None
        if self.archive is None and not path.is_dir():
            raise BundleError(f"{path} is neither a bundle folder nor a zip file")

    def has(self, name: str) -> bool:
        if self.archive is not None:
            try:
                self.archive.getinfo(name)
            except KeyError:
                return False
            return True
        return (self.path / name).is_file()

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


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{what} is not JSON: {exc}") from exc


def key_id_of(key: Ed25519PublicKey) -> str:
    """fedgov's key id: the first 8 bytes of SHA-256 over the raw public key, in hex."""
    return hashlib.sha256(note.raw_public(key)).hexdigest()[:16]


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


@dataclass
class WitnessPolicy:
    """Pinned witness keys (name -> key), the quorum, the lag, witnesses' states seen."""

    keys: dict[str, Ed25519PublicKey]
    quorum: int = 1
    max_lag: int = 3600
    at: datetime | None = None
    states: list[tuple[str, int, bytes]] = field(default_factory=list)


def load_witness_key(spec: str) -> tuple[str, Ed25519PublicKey]:
    """A witness's ``name+hex(key ID)+base64(0x04 || key)`` cosignature verifier key."""
    name, _, rest = spec.partition("+")
    key_hash, _, encoded = rest.partition("+")
    raw = _b64(encoded, f"witness key {spec!r}")
    if len(raw) != 33 or raw[:1] != witness.COSIGNATURE_TYPE:
        raise BundleError(f"{spec!r} is not a cosignature/v1 (0x04) Ed25519 verifier key")
    key = Ed25519PublicKey.from_public_bytes(raw[1:])
    if witness.cosigner_key_id(name, key).hex() != key_hash:
        raise BundleError(f"witness key {spec!r}: its key ID does not match name and key")
    return name, key


def load_witness_state(path: Path, origin: str) -> tuple[str, int, bytes]:
    """(file, size, root) a witness's state file holds for ``origin``."""
    try:
        entry = json.loads(path.read_text())["logs"][origin]
        return str(path), int(entry["size"]), _b64(entry["root"], "a witness root")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"witness state {path} holds no state for {origin}: {exc!r}") from exc


def _witness_findings(
    policy: WitnessPolicy,
    items: list[dict[str, Any]],
    roots: dict[int, bytes],
    times: dict[int, str],
) -> list[Finding]:
    findings: list[Finding] = []
    witnessed = 0
    for item in items:
        size = item["size"]
        if size not in roots:
            continue
        if len(_valid_cosigners(policy, item, findings)) >= policy.quorum:
            witnessed = max(witnessed, size)
    now = policy.at or datetime.now(UTC)
    cutoff = (now - timedelta(seconds=policy.max_lag)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    late = [seq for seq, time in times.items() if seq >= witnessed and time < cutoff]
    if late:
        findings.append(
            Finding(
                min(late),
                f"entry written at {times[min(late)]} and no checkpoint with {policy.quorum} "
                f"valid cosignatures by the pinned witnesses covers it within {policy.max_lag} s "
                f"(newest witnessed checkpoint: size {witnessed})",
            )
        )
    return findings + _witness_state_findings(policy, items, roots, times)


def _valid_cosigners(
    policy: WitnessPolicy, item: dict[str, Any], findings: list[Finding]
) -> set[str]:
    """The pinned witnesses whose cosignature on ``item`` verifies; refusals go to ``findings``."""
    size = item["size"]
    body = note.split(item["note"])[0]
    signed_at = _posix(note.parse_checkpoint(body).time)
    valid = set()
    for line in item.get("cosignatures", []):
        for name, key in policy.keys.items():
            try:
                cosigned = witness.open_cosignature(line, body, name, key)
            except note.NoteError as exc:
                if witness.claims_cosigner(line, name, key):
                    # fedgov stores a cosignature only once it verifies: one by a
                    # pinned witness that no longer does was changed afterwards.
                    findings.append(
                        Finding(size - 1, f"cosignature on size {size} is refused: {exc}")
                    )
                continue
            if signed_at is not None and cosigned.timestamp < signed_at:
                # A witness cannot cosign a checkpoint before it was signed: the line
                # was made for another note, or the checkpoint's time is forged.
                findings.append(
                    Finding(
                        size - 1,
                        f"cosignature by {name} on size {size} is dated "
                        f"{cosigned.timestamp}, before the checkpoint's own time "
                        f"({signed_at}): refused",
                    )
                )
                continue
            valid.add(name)
    return valid


def _witness_state_findings(
    policy: WitnessPolicy,
    items: list[dict[str, Any]],
    roots: dict[int, bytes],
    times: dict[int, str],
) -> list[Finding]:
    """What the witnesses' own state files say against the bundle's tree."""
    findings: list[Finding] = []
    # What the bundle shows of the log: its checkpoints, valid or not (an invalid one is a
    # finding already), and its entries.
    newest = max([item["size"] for item in items] + [max(times, default=-1) + 1])
    for where, seen, root in policy.states:
        if seen == 0:
            continue
        if seen in roots and roots[seen] != root:
            findings.append(
                Finding(
                    seen - 1,
                    f"the checkpoint at size {seen} is not the tree the witness ({where}) "
                    "cosigned: entries below it were rewritten",
                )
            )
        elif newest < seen:
            findings.append(
                Finding(
                    newest,
                    f"the bundle's newest checkpoint is at size {newest} but the witness "
                    f"({where}) cosigned size {seen}: rolled back",
                )
            )
    return findings


def _key_windows(
    records: list[dict[str, Any]],
) -> dict[bytes, tuple[str | None, str | None]]:
    """Raw public key -> (valid_from, valid_to) from keys.json, where it states them."""
    windows: dict[bytes, tuple[str | None, str | None]] = {}
    for record in records:
        if "valid_from" in record or "valid_to" in record:
            raw = _b64(record["public_key"], "a public key")
            windows[raw] = (record.get("valid_from"), record.get("valid_to"))
    return windows


def _outside(moment: str, window: tuple[str | None, str | None] | None) -> str | None:
    """Why a checkpoint signed at ``moment`` falls outside its key's validity window."""
    if window is None:
        return None
    valid_from, valid_to = window
    if valid_from is None:
        return "its key is not on the trusted list (keys.json states no validity window)"
    # All times here are RFC 3339 UTC in one form ("...Z", whole seconds), so they sort.
    if moment < valid_from:
        return f"signed at {moment}, before its key was trusted ({valid_from})"
    if valid_to is not None and moment >= valid_to:
        return f"signed at {moment}, after its key's trust ended ({valid_to})"
    return None


def _posix(moment: str) -> int | None:
    try:
        return int(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _timestamp_findings(
    items: list[dict[str, Any]], ledger: _Ledger, pinned: list[Path] | None, notes: list[str]
) -> list[Finding]:
    """Check each checkpoint's RFC 3161 token against the pinned TSA certificates."""
    stamped = [item for item in items if item.get("timestamp") and item["size"] in ledger.roots]
    if not stamped:
        notes.append("no trusted time: no checkpoint in the bundle carries an RFC 3161 timestamp")
        return []
    if not pinned:
        notes.append(
            f"{len(stamped)} RFC 3161 timestamp(s) not checked: pin the TSA with --tsa-cert"
        )
        return []
    # pyHanko is needed for this check only; the rest of the verifier runs without it.
    from audit import tsa

    certs = tsa.load_pinned(pinned)
    findings: list[Finding] = []
    for item in stamped:
        size = item["size"]
        check = tsa.check_token(
            _b64(item["timestamp"], "a timestamp"), item["note"].encode(), certs
        )
        signed_at = _posix(ledger.checkpoint_times[size])
        if not check.ok or check.time is None:
            findings.append(Finding(size - 1, f"timestamp of checkpoint {size}: {check.problem}"))
        elif signed_at is not None and check.time.timestamp() < signed_at:
            findings.append(
                Finding(
                    size - 1,
                    f"timestamp of checkpoint {size} ({check.time:%Y-%m-%dT%H:%M:%SZ}) is "
                    f"older than the time the checkpoint states",
                )
            )
        else:
            ledger.timestamped[size] = check.time
    if ledger.timestamped:
        newest = max(ledger.timestamped)
        notes.append(
            f"trusted time: {len(ledger.timestamped)} checkpoint(s) timestamped by the pinned "
            f"TSA; size {newest} existed by {ledger.timestamped[newest]:%Y-%m-%dT%H:%M:%SZ}"
        )
    return findings


def _read_contents(
    source: _Source, manifest: dict[str, Any], first: int, result: Result
) -> dict[str, bytes]:
    """Every file the manifest lists, each checked against its hash (a finding if not)."""
    contents = {}
    for name, digest in manifest["files"].items():
        if name in REPORT_FILES and not source.has(name):
            continue  # the report check names it as a finding: the ledger part is readable
        contents[name] = source.read(name)
        if hashlib.sha256(contents[name]).hexdigest() != digest:
            result.findings.append(Finding(first, f"{name} does not match its manifest hash"))
    return contents


def _ledger_keys(
    contents: dict[str, bytes], trusted: dict[str, Ed25519PublicKey] | None, result: Result
) -> _Ledger:
    """The keys checkpoints must be signed with: the pinned ones, else the bundle's own."""
    ledger = _Ledger(keys=trusted or {}, pinned=trusted is not None)
    if trusted is None:
        ledger.keys = {
            record["key_id"]: Ed25519PublicKey.from_public_bytes(
                _b64(record["public_key"], "a public key")
            )
            for record in _json(contents["keys.json"], "keys.json")
        }
        result.notes.append(
            "trusting the public keys shipped in the bundle; pin them with --trusted-key"
        )
    return ledger


def _check_checkpoints(
    items: list[dict[str, Any]],
    ledger: _Ledger,
    origin: str,
    windows: dict[bytes, tuple[str | None, str | None]],
    result: Result,
) -> None:
    """Record the root of every checkpoint whose signature, statement and key window
    verify."""
    for item in items:
        size = item["size"]
        try:
            body, key_id = note.open_note(item["note"], ledger.keys, origin)
            signed = note.parse_checkpoint(body)
        except note.NoteError as exc:
            result.findings.append(Finding(size - 1, f"checkpoint at size {size}: {exc}"))
            continue
        if signed.origin != origin or signed.size != size:
            result.findings.append(
                Finding(size - 1, f"checkpoint at size {size} states {signed.origin} {signed.size}")
            )
            continue
        outside = _outside(signed.time, windows.get(note.raw_public(ledger.keys[key_id])))
        if outside:
            result.findings.append(Finding(size - 1, f"checkpoint at size {size}: {outside}"))
            continue
        ledger.roots[size] = signed.root
        ledger.checkpoint_times[size] = signed.time
        result.checkpoints += 1


def _check_consistency(contents: dict[str, bytes], ledger: _Ledger, result: Result) -> None:
    """RFC 9162 consistency between the verified checkpoints the bundle links."""
    roots = ledger.roots
    for item in _json(contents["proofs/consistency.json"], "proofs/consistency.json"):
        size1, size2 = item["from"], item["to"]
        if size1 not in roots or size2 not in roots:
            continue  # already reported as a bad checkpoint
        proof = [_b64(p, "a consistency proof") for p in item["proof"]]
        if merkle.verify_consistency(size1, size2, roots[size1], roots[size2], proof):
            ledger.links.add((size1, size2))
        else:
            result.findings.append(
                Finding(size1 - 1, f"checkpoints at sizes {size1} and {size2} are not consistent")
            )


def _inclusion_proofs(contents: dict[str, bytes]) -> dict[int, dict[str, Any]]:
    proofs = {}
    for line in contents["proofs/inclusion.jsonl"].decode().splitlines():
        item = _json(line.encode(), "an inclusion proof")
        proofs[item["seq"]] = item
    return proofs


@dataclass
class _EntryWalk:
    """What the walk over the entries found, for the checks that need every entry."""

    expected: int  # the seq after the last entry read in order
    times: dict[int, str] = field(default_factory=dict)
    leaves: list[bytes] = field(default_factory=list)
    # Inclusion-proof findings, judged once the roots are recomputed from the leaves.
    proof_findings: list[Finding] = field(default_factory=list)


def _entry_findings(
    entry: dict[str, Any],
    proofs: dict[int, dict[str, Any]],
    ledger: _Ledger,
    damaged: bool,
    invalid_sizes: set[int],
    walk: _EntryWalk,
) -> list[Finding]:
    seq = entry["seq"]
    findings = _check_entry(entry, proofs.get(seq), ledger.roots)
    if damaged and seq not in proofs:
        # The exporter could not prove this entry from a damaged ledger; the damage
        # itself is a finding below, at the first bad seq it found.
        findings = [f for f in findings if f.message != "no inclusion proof"]
    if findings and proofs.get(seq, {}).get("size") in invalid_sizes:
        findings = [f for f in findings if "inclusion proof" not in f.message]
    if findings and "inclusion proof" in findings[0].message:
        walk.proof_findings += findings  # judged below, once the roots are recomputed
        findings = []
    if not findings and seq in proofs:
        ledger.proved[seq] = proofs[seq]["size"]
    return findings


def _check_entries(
    contents: dict[str, bytes],
    proofs: dict[int, dict[str, Any]],
    ledger: _Ledger,
    first: int,
    damaged: bool,
    invalid_sizes: set[int],
    result: Result,
) -> _EntryWalk:
    """Each entry in seq order: its leaf hash and its inclusion proof."""
    # A bundle from seq 0 holds every leaf below its checkpoints: their roots are then
    # recomputed from the entries themselves, as ledger_verify does, which names the
    # checkpoint the entries no longer give instead of every entry whose proof fails.
    walk = _EntryWalk(expected=first)
    for line in contents["entries.jsonl"].decode().splitlines():
        entry = _json(line.encode(), "an entry")
        seq = entry.get("seq")
        if seq != walk.expected:
            result.findings.append(
                Finding(walk.expected, f"entry is missing (next entry is {seq})")
            )
            break
        walk.expected += 1
        result.entries += 1
        walk.times[seq] = str(entry.get("time", ""))
        result.redacted += entry.get("redacted") is True
        if first == 0 and len(walk.leaves) == seq:
            walk.leaves.append(_entry_leaf_hash(entry))
        result.findings += _entry_findings(entry, proofs, ledger, damaged, invalid_sizes, walk)
    return walk


def _damage_finding(manifest: dict[str, Any], first: int) -> Finding | None:
    """The exporter's own finding: it can only add to what is checked above."""
    damage = manifest.get("damaged")
    if not damage:
        return None
    problems = damage.get("problems") or ["(no detail)"]
    return Finding(
        int(damage.get("first_bad_seq", first)),
        f"exported from a damaged ledger; ledger_verify found: {problems[0]}",
    )


def verify_bundle(
    path: Path,
    trusted: dict[str, Ed25519PublicKey] | None = None,
    pdf: Path | None = None,
    witnesses: WitnessPolicy | None = None,
    tsa_certs: list[Path] | None = None,
) -> Result:
    """Check a bundle, its report if it has one, and ``pdf`` against that report.

    Ledger findings come sorted by seq, report findings in ``result.report``. Raises
    ``BundleError`` if the bundle is unreadable, ``PdfError`` if ``pdf`` is.

    In order: every file against the manifest's hashes; each checkpoint's signature;
    consistency between checkpoints; each entry's leaf hash and inclusion proof; the
    roots the entries themselves give; the witnesses' cosignatures (when pinned); and
    last the signed report and the PDF.
    """
    pdf_sha256 = _file_sha256(pdf) if pdf is not None else None
    source = _Source(path)
    result = Result()
    manifest = _json(source.read("manifest.json"), "manifest.json")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"unknown bundle format {manifest.get('format')!r}")
    origin, first, last = manifest["origin"], manifest["from_seq"], manifest["to_seq"]
    has_report = "report" in manifest or source.has(REPORT_STATEMENT)
    contents = _read_contents(source, manifest, first, result)
    if result.findings:
        return result

    ledger = _ledger_keys(contents, trusted, result)
    checkpoint_items = _json(contents["checkpoints.json"], "checkpoints.json")
    windows = _key_windows(_json(contents["keys.json"], "keys.json"))
    _check_checkpoints(checkpoint_items, ledger, origin, windows, result)
    result.findings += _timestamp_findings(checkpoint_items, ledger, tsa_certs, result.notes)
    _check_consistency(contents, ledger, result)
    proofs = _inclusion_proofs(contents)
    # Sizes of checkpoints the bundle carries that did not verify (already a finding).
    invalid_sizes = {item["size"] for item in checkpoint_items} - ledger.roots.keys()
    damaged = bool(manifest.get("damaged"))
    walk = _check_entries(contents, proofs, ledger, first, damaged, invalid_sizes, result)
    if walk.expected <= last and not any(f.seq >= walk.expected for f in result.findings):
        result.findings.append(Finding(walk.expected, "entry is missing (the bundle ends early)"))
    unlike = _roots_unlike_entries(walk.leaves, ledger.roots)
    result.findings += unlike
    bad_sizes = {f.seq + 1 for f in unlike}
    # A proof against a checkpoint whose root the entries do not give is a consequence of
    # that finding, not an entry of its own at fault.
    result.findings += [
        f for f in walk.proof_findings if proofs.get(f.seq, {}).get("size") not in bad_sizes
    ]
    if witnesses is not None:
        result.findings += _witness_findings(witnesses, checkpoint_items, ledger.roots, walk.times)
    damage = _damage_finding(manifest, first)
    if damage is not None:
        result.findings.append(damage)
    result.findings.sort()

    if has_report:
        result.report = _check_report(source, manifest, contents, ledger, pdf_sha256)
        if pdf is None:
            result.notes.append(
                "the PDF itself was not checked; add --pdf REPORT.pdf to check that its "
                "SHA-256 is the signed statement's pdf_sha256"
            )
    return result


def _entry_leaf_hash(entry: dict[str, Any]) -> bytes:
    """The leaf hash the entry's own contents give (a redacted entry: the one it carries)."""
    if entry.get("redacted") is True or "leaf" not in entry:
        return _b64(entry.get("leaf_hash", ""), f"leaf hash of {entry.get('seq')}")
    return merkle.leaf_hash(str(entry["leaf"]).encode())


def _roots_unlike_entries(leaves: list[bytes], roots: dict[int, bytes]) -> list[Finding]:
    """Checkpoints whose signed root is not the root of the bundle's entries 0..size-1."""
    node = merkle.nodes_from_leaves(leaves)
    return [
        Finding(size - 1, f"checkpoint at size {size}: signed root is not the entries' root")
        for size in sorted(roots)
        if size <= len(leaves) and merkle.root_from_nodes(size, node) != roots[size]
    ]


def _check_entry(
    entry: dict[str, Any], proof: dict[str, Any] | None, roots: dict[int, bytes]
) -> list[Finding]:
    seq = entry["seq"]
    if entry.get("redacted") is True:
        # Retention removed the contents: the leaf hash cannot be recomputed, only shown
        # to be the one the signed tree holds at this place.
        if "leaf" in entry or "payload" in entry:
            return [Finding(seq, "entry is marked redacted but carries contents")]
        digest = _b64(entry["leaf_hash"], f"leaf hash of {seq}")
    else:
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
            return [
                Finding(seq, f"entry fields {', '.join(differing)} differ from its hashed leaf")
            ]
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


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise PdfError(f"cannot read the PDF {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


# --- the report: report/statement.json, report/signature.json, report/data.jsonl ---------


def canonical_problem(raw: bytes) -> tuple[object, str | None]:
    """``raw`` parsed, and why it is not RFC 8785 canonical JSON (None when it is).

    The check re-serialises with ``json.dumps(sort_keys=True, ensure_ascii=False,
    separators=(",", ":"))``, which writes exactly RFC 8785's bytes for strings without lone
    surrogates, integers within ±(2**53 - 1), and objects whose member names sort the same
    by code point as by UTF-16 code unit. Anything else (fractions, exponents, larger
    integers, names beyond the BMP that sort differently) is reported as a problem rather
    than guessed at: fedgov writes none of them.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "is not UTF-8"
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        return None, f"is not JSON ({exc})"
    problem = _beyond_checked_json(value, "$")
    if problem is not None:
        return value, problem
    if json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")) != text:
        return value, "is not RFC 8785 canonical JSON (sorted members, no whitespace)"
    return value, None


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _well_formed(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _beyond_checked_json(value: object, path: str) -> str | None:
    """Where ``value`` leaves the JSON subset whose canonical form json.dumps writes."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return None if _well_formed(value) else f"holds a lone surrogate at {path}"
    if isinstance(value, int):
        if -_SAFE_INT <= value <= _SAFE_INT:
            return None
        return f"holds the integer {value} at {path}, beyond ±(2**53 - 1)"
    if isinstance(value, float):
        return (
            f"holds the number {value!r} at {path}; fedgov writes fractions as strings, "
            "and this verifier checks the RFC 8785 form of integers only"
        )
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _beyond_checked_json(item, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None
    assert isinstance(value, dict)  # json.loads makes nothing else
    if not all(_well_formed(name) for name in value):
        return f"holds a member name with a lone surrogate at {path}"
    if sorted(value) != sorted(value, key=lambda name: name.encode("utf-16-be")):
        return f"holds member names at {path} whose RFC 8785 (UTF-16) order is not code-point order"
    for name, item in value.items():
        problem = _beyond_checked_json(item, f"{path}.{name}")
        if problem is not None:
            return problem
    return None


def _check_report(
    source: _Source,
    manifest: dict[str, Any],
    contents: dict[str, bytes],
    ledger: _Ledger,
    pdf_sha256: str | None,
) -> ReportResult:
    report = ReportResult(keys_pinned=ledger.pinned)
    declared = manifest.get("report", {})
    named = declared.get("statement", REPORT_STATEMENT) if isinstance(declared, dict) else None
    if named != REPORT_STATEMENT:
        report.findings.append(
            f'manifest.json: "report" must be an object naming {REPORT_STATEMENT}'
        )
        declared = {}
    if isinstance(declared.get("report_id"), str):
        report.report_id = declared["report_id"]
    files: dict[str, bytes] = {}
    for name in REPORT_FILES:
        if name in contents:
            files[name] = contents[name]
        elif source.has(name):
            files[name] = source.read(name)
        else:
            report.findings.append(f"{name} is missing from the bundle")

    statement = None
    if REPORT_STATEMENT in files:
        statement = _check_statement(files[REPORT_STATEMENT], declared, report)
        if REPORT_SIGNATURE in files:
            _check_signature(files[REPORT_SIGNATURE], files[REPORT_STATEMENT], ledger, report)
    if REPORT_DATA in files:
        _check_data(files[REPORT_DATA], statement, report)
    if statement is not None:
        _check_citations(statement, ledger, report)
        if pdf_sha256 is not None:
            report.pdf_matches = pdf_sha256 == statement["pdf_sha256"]
            if not report.pdf_matches:
                report.findings.append(
                    f"the PDF's SHA-256 {pdf_sha256} is not the statement's pdf_sha256 "
                    f"{statement['pdf_sha256']}"
                )
    return report


def _check_statement(
    raw: bytes, declared: dict[str, Any], report: ReportResult
) -> dict[str, Any] | None:
    """The statement when its members are well typed (a finding per problem otherwise)."""
    value, problem = canonical_problem(raw)
    if problem is not None:
        report.findings.append(f"{REPORT_STATEMENT} {problem}")
    if not isinstance(value, dict) or sorted(value) != list(STATEMENT_FIELDS):
        report.findings.append(
            f"{REPORT_STATEMENT} must be an object with exactly the members "
            f"{', '.join(STATEMENT_FIELDS)}"
        )
        return None
    problems = []
    if value["format"] != REPORT_FORMAT:
        problems.append(f"format is {value['format']!r}, not {REPORT_FORMAT!r}")
    report_id = value["report_id"]
    if not isinstance(report_id, str) or not report_id:
        problems.append("report_id must be a non-empty string")
    else:
        if report.report_id not in (None, report_id):
            problems.append(f"report_id {report_id} is not manifest.json's {report.report_id}")
        report.report_id = report_id
    for name in ("data_sha256", "pdf_sha256"):
        if not isinstance(value[name], str) or not _SHA256_HEX.fullmatch(value[name]):
            problems.append(f"{name} must be 64 lowercase hex digits")
    anchor, cited = value["anchor_size"], value["cited_seqs"]
    if type(anchor) is not int or anchor < 1:
        problems.append("anchor_size must be a positive integer")
    elif not isinstance(cited, list) or not all(type(seq) is int for seq in cited):
        problems.append("cited_seqs must be a list of integers")
    elif any(a >= b for a, b in itertools.pairwise(cited)):
        problems.append("cited_seqs must be strictly ascending")
    elif cited and not 0 <= cited[0] <= cited[-1] < anchor:
        problems.append(f"cited_seqs must lie in 0..{anchor - 1} (below anchor_size)")
    report.findings += [f"{REPORT_STATEMENT}: {text}" for text in problems]
    return None if problems else value


def _check_signature(raw: bytes, statement: bytes, ledger: _Ledger, report: ReportResult) -> None:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        report.findings.append(f"{REPORT_SIGNATURE} is not a JSON object")
        return
    key_id = value.get("key_id")
    if isinstance(key_id, str):
        report.key_id = key_id
    if value.get("algorithm") != "Ed25519":
        report.findings.append(f"{REPORT_SIGNATURE}: algorithm must be Ed25519")
    if value.get("signed_file") != REPORT_STATEMENT:
        report.findings.append(f"{REPORT_SIGNATURE}: signed_file must be {REPORT_STATEMENT}")
    try:
        signature = base64.b64decode(value.get("signature"), validate=True)  # type: ignore[arg-type]  # None or a non-string is refused by the TypeError below
    except (TypeError, ValueError):
        signature = b""
    if len(signature) != 64:
        report.findings.append(f"{REPORT_SIGNATURE}: signature is not a base64 Ed25519 signature")
        return
    key = {key_id_of(k): k for k in ledger.keys.values()}.get(str(key_id))
    if key is None:
        where = "the pinned keys (--trusted-key)" if ledger.pinned else "the bundle's keys.json"
        report.findings.append(f"{REPORT_SIGNATURE}: key {key_id!r} is not among {where}")
        return
    try:
        key.verify(signature, statement)
    except InvalidSignature:
        report.findings.append(
            f"{REPORT_SIGNATURE}: the signature by key {key_id} does not verify over "
            f"{REPORT_STATEMENT}"
        )


def _check_data(raw: bytes, statement: dict[str, Any] | None, report: ReportResult) -> None:
    if statement is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != statement["data_sha256"]:
            report.findings.append(
                f"{REPORT_DATA}: its SHA-256 {actual} is not the statement's data_sha256 "
                f"{statement['data_sha256']}"
            )
    lines = raw.split(b"\n")
    if lines[-1]:
        report.findings.append(f"{REPORT_DATA} does not end with a newline")
    else:
        lines.pop()
    bad = 0
    for number, line in enumerate(lines, 1):
        value, problem = canonical_problem(line)
        kind = value.get("kind") if isinstance(value, dict) else None
        if kind == "run":
            report.run_lines += 1
        elif kind == "round":
            report.round_lines += 1
        elif problem is None:
            problem = f"is not an object of kind {' or '.join(DATA_KINDS)}"
        if problem is not None:
            bad += 1
            if bad <= _LISTED_LINE_FINDINGS:
                report.findings.append(f"{REPORT_DATA} line {number} {problem}")
    if bad > _LISTED_LINE_FINDINGS:
        report.findings.append(
            f"{REPORT_DATA}: {bad - _LISTED_LINE_FINDINGS} more lines are not canonical report data"
        )


def _check_citations(statement: dict[str, Any], ledger: _Ledger, report: ReportResult) -> None:
    anchor, cited = statement["anchor_size"], statement["cited_seqs"]
    report.anchor_size, report.cited = anchor, len(cited)
    if anchor not in ledger.roots:
        report.findings.append(
            f"anchor_size {anchor} is not the size of a checkpoint in the bundle whose "
            "signature verified"
        )
    unproved = [seq for seq in cited if seq not in ledger.proved]
    if unproved:
        shown = ", ".join(map(str, unproved[:10])) + (" ..." if len(unproved) > 10 else "")
        report.findings.append(
            f"cited_seqs: {len(unproved)} cited event(s) have no entry with a verified "
            f"inclusion proof in the bundle: seq {shown}"
        )
    if anchor in ledger.roots:
        for size in sorted({ledger.proved[seq] for seq in cited if seq in ledger.proved}):
            if not _linked(size, anchor, ledger.links):
                report.findings.append(
                    f"cited events are proven in the checkpoint at size {size}, which no "
                    f"verified consistency proof links to the anchor at size {anchor}"
                )


def _linked(size: int, anchor: int, links: set[tuple[int, int]]) -> bool:
    """Whether verified consistency proofs chain the checkpoints at ``size`` and ``anchor``."""
    reached, frontier = {size}, [size]
    while frontier:
        here = frontier.pop()
        for a, b in links:
            for there in (b,) if a == here else (a,) if b == here else ():
                if there not in reached:
                    reached.add(there)
                    frontier.append(there)
    return anchor in reached


def _print_report(report: ReportResult, failures: int) -> None:
    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    trust = (
        "pinned with --trusted-key"
        if report.keys_pinned
        else "from the bundle's keys.json: not pinned, so origin is not proven"
    )
    pdf = {
        None: "not checked (add --pdf FILE)",
        True: "checked: its SHA-256 is the statement's pdf_sha256",
        False: "checked: its SHA-256 is NOT the statement's pdf_sha256",
    }[report.pdf_matches]
    print(f"report:        {shown(report.report_id)}")
    print(
        f"data lines:    {report.run_lines + report.round_lines} "
        f"({report.run_lines} run, {report.round_lines} rounds)"
    )
    print(f"cited events:  {shown(report.cited)}")
    print(f"anchor size:   {shown(report.anchor_size)}")
    print(f"signing key:   {shown(report.key_id)} ({trust})")
    print(f"PDF:           {pdf}")
    verdict = f"FAILED ({failures} finding{'s' if failures > 1 else ''})" if failures else "OK"
    print(f"result:        {verdict}")


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
    parser.add_argument(
        "--pdf",
        type=Path,
        help="the report's PDF: check that it is the one the bundle's signed statement names",
    )
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        help="a witness's cosignature/v1 verifier key, name+hash+base64 (repeatable)",
    )
    parser.add_argument("--quorum", type=int, default=1, help="cosignatures needed (default 1)")
    parser.add_argument(
        "--max-lag", type=int, default=3600, help="seconds an entry may stay unwitnessed"
    )
    parser.add_argument("--at", help="judge the lag at this UTC time (ISO 8601), not now")
    parser.add_argument(
        "--witness-state",
        action="append",
        default=[],
        type=Path,
        help="a witness's state file: fail a bundle behind or unlike what it cosigned",
    )
    parser.add_argument(
        "--tsa-cert",
        action="append",
        default=[],
        type=Path,
        help="the timestamp authority's CA or certificate (PEM): check the checkpoints' "
        "RFC 3161 timestamps against it (repeatable; needs pyHanko)",
    )
    args = parser.parse_args(argv)
    try:
        trusted = dict(load_trusted_key(spec) for spec in args.trusted_key) or None
        policy = None
        if args.witness_key or args.witness_state:
            if not args.witness_key:
                raise BundleError("--witness-state needs the witnesses' keys (--witness-key)")
            if not 1 <= args.quorum <= len(args.witness_key):
                raise BundleError(f"--quorum must be 1..{len(args.witness_key)}")
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else None
            origin = _json(_Source(args.bundle).read("manifest.json"), "manifest.json")["origin"]
            policy = WitnessPolicy(
                keys=dict(load_witness_key(spec) for spec in args.witness_key),
                quorum=args.quorum,
                max_lag=args.max_lag,
                at=at.astimezone(UTC) if at else None,
                states=[load_witness_state(path, origin) for path in args.witness_state],
            )
        result = verify_bundle(
            args.bundle, trusted, pdf=args.pdf, witnesses=policy, tsa_certs=args.tsa_cert
        )
    except PdfError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except (BundleError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
        print(f"ERROR: cannot read bundle {args.bundle}: {exc}", file=sys.stderr)
        return 2
    for text in result.notes:
        print(f"note: {text}", file=sys.stderr)
    if not result.findings:
        print(f"OK: {result.entries} entries, {result.checkpoints} checkpoints verified")
        if result.redacted:
            print(
                f"{result.redacted} of them had their contents removed under retention: "
                "only their place in the signed tree was checked"
            )
    for finding in result.findings:
        print(f"FAIL {finding}", file=sys.stderr)
    if result.findings:
        print(f"first bad seq: {result.findings[0].seq}", file=sys.stderr)
    if result.report is not None:
        for text in result.report.findings:
            print(f"FAIL report: {text}", file=sys.stderr)
        _print_report(result.report, len(result.findings) + len(result.report.findings))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
