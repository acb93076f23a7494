"""Writing evidence bundles: a slice of the ledger with checkpoints, proofs and public keys.

The format is documented in docs/evidence-bundle.md; ``audit.verify`` reads it offline.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from audit import keys, merkle, note, selectors, trust, witness
from audit.choices import KeyRole
from audit.leaf import actor_pseudonym, format_time, leaf_document
from audit.models import Checkpoint, CheckpointTimestamp, LedgerEntry
from audit.services import checkpoint_create
from audit.timestamping import checkpoint_timestamp
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput

FORMAT = "fedgov-evidence-bundle/1"
PROOF_BATCH = 256


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class BundleSummary:
    path: Path
    first_seq: int
    last_seq: int
    anchor_size: int
    checkpoints: int
    # The first bad seq ledger_verify found when writing; None for a sound ledger.
    damaged_seq: int | None = None


def _entry_lines(first: int, last: int) -> Iterator[str]:
    rows = LedgerEntry.objects.filter(seq__gte=first, seq__lte=last).order_by("seq")
    for row in rows.iterator(chunk_size=2000):
        time = format_time(row.created_at)
        if row.redacted_at is not None:
            redacted = {
                "seq": row.seq,
                "event_type": row.event_type,
                "subject_type": row.subject_type,
                "subject_id": row.subject_id,
                "time": time,
                "redacted": True,
                "redacted_at": format_time(row.redacted_at),
                "leaf_hash": b64(bytes(row.leaf_hash)),
            }
            yield json.dumps(redacted, ensure_ascii=False, sort_keys=True) + "\n"
            continue
        actor = actor_pseudonym(row.actor_id, row.actor_repr)
        leaf = leaf_document(
            seq=row.seq,
            event_type=row.event_type,
            actor=actor,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            time=time,
            payload=row.payload,
        )
        record = {
            "seq": row.seq,
            "event_type": row.event_type,
            "actor": actor,
            "subject_type": row.subject_type,
            "subject_id": row.subject_id,
            "time": time,
            "payload": json.loads(row.payload),
            "leaf": leaf.decode(),
            "leaf_hash": b64(bytes(row.leaf_hash)),
        }
        yield json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


def _inclusion_lines(first: int, last: int, size: int) -> Iterator[str]:
    for start in range(first, last + 1, PROOF_BATCH):
        seqs = range(start, min(start + PROOF_BATCH, last + 1))
        wanted = {node for seq in seqs for node in merkle.inclusion_nodes(seq, size)}
        try:
            shared = selectors.fetch_nodes(wanted).__getitem__
            getters = dict.fromkeys(seqs, shared)
        except LookupError:
            # A damaged ledger lost stored hashes: each entry then gets its proof alone if
            # its own path survived, else none; the bundle is still written whole.
            getters = {}
            for seq in seqs:
                try:
                    nodes = merkle.inclusion_nodes(seq, size)
                    getters[seq] = selectors.fetch_nodes(nodes).__getitem__
                except LookupError:
                    continue
        for seq, getter in getters.items():
            path = merkle.inclusion_proof(seq, size, _node_getter(getter))
            record = {"seq": seq, "size": size, "proof": [b64(p) for p in path]}
            yield json.dumps(record, sort_keys=True) + "\n"


def _chosen_checkpoints(
    first: int, last: int, keep: int | None = None, damaged: bool = False
) -> list[Checkpoint]:
    anchor = Checkpoint.objects.filter(size__gt=last).order_by("size").first()
    if anchor is None and not damaged:
        anchor = checkpoint_create(actor=Actor.system("ledger_export"))
        checkpoint_timestamp(size=anchor.size)
    if anchor is None:
        # Never sign a damaged ledger: the bundle carries the checkpoints that exist.
        return list(Checkpoint.objects.filter(size__gt=first).order_by("size"))
    chosen = list(Checkpoint.objects.filter(size__gt=first, size__lte=anchor.size).order_by("size"))
    latest = Checkpoint.objects.order_by("-size").first()
    if latest is not None and latest.size > anchor.size:
        chosen.append(latest)
    if keep is not None and all(cp.size != keep for cp in chosen):
        # A report anchored to a checkpoint signed after the first one covering its
        # entries: without it the report's anchor could not be checked offline.
        chosen += Checkpoint.objects.filter(size=keep)
        chosen.sort(key=lambda cp: cp.size)
    return chosen


def _node_getter(
    get: Callable[[tuple[int, int]], bytes],
) -> Callable[[int, int], bytes]:
    # One closure per seq: a lambda in the loop would see only the last getter.
    return lambda level, index: get((level, index))


def _time(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def _key_records() -> list[dict[str, Any]]:
    origin = settings.FEDGOV_LEDGER_ORIGIN
    # The trusted list's validity windows: the offline verifier refuses a checkpoint whose
    # stated time falls outside its key's window (a key revoked, or not yet trusted).
    windows = trust.windows()
    return [
        {
            "key_id": info.key_id,
            "name": origin,
            "key_hash": note.key_hash(origin, info.public_key).hex(),
            "public_key": b64(note.raw_public(info.public_key)),
            "vkey": note.verifier_key(origin, info.public_key),
            "active": info.active,
            "valid_from": _time(windows[info.key_id][0]) if info.key_id in windows else None,
            "valid_to": _time(windows[info.key_id][1]) if info.key_id in windows else None,
        }
        for info in keys.key_infos()
    ]


def _timestamp_of(checkpoint: Checkpoint) -> str | None:
    stamp = CheckpointTimestamp.objects.filter(checkpoint=checkpoint).first()
    return b64(bytes(stamp.token)) if stamp is not None else None


def bundle_write(
    *, first_seq: int, last_seq: int, out: Path, keep_checkpoint: int | None = None
) -> BundleSummary:
    """Write the bundle of entries ``first_seq..last_seq`` to ``out`` (a folder, or a .zip).

    Signs a checkpoint on demand when none covers ``last_seq`` yet; ``keep_checkpoint``
    names one more checkpoint to include (a report's anchor). Raises ``InvalidInput``
    for a bad range or an existing ``out``.
    """
    size = selectors.tree_size()
    errors: dict[str, list[str]] = {}
    if first_seq < 0:
        errors["from"] = ["must be 0 or more"]
    if last_seq < first_seq:
        errors["to"] = [f"must be at least --from ({first_seq})"]
    elif last_seq >= size:
        errors["to"] = [f"the ledger ends at seq {size - 1}" if size else "the ledger is empty"]
    if out.exists():
        errors["out"] = [f"{out} already exists; a bundle is never overwritten"]
    if errors:
        raise InvalidInput(errors)
    damage = _damage()
    chosen = _chosen_checkpoints(first_seq, last_seq, keep_checkpoint, damaged=bool(damage))
    anchor = next((cp for cp in chosen if cp.size > last_seq), None)
    # (last seq proved, tree size): a damaged ledger with no checkpoint covering the
    # range proves what its newest checkpoint covers, and nothing is signed for the rest.
    proof_range = (last_seq, anchor.size) if anchor is not None else (-1, 0)
    if anchor is None and chosen:
        proof_range = (min(last_seq, chosen[-1].size - 1), chosen[-1].size)
    consistency = []
    for a, b in itertools.pairwise(chosen):
        try:
            path = selectors.consistency(size1=a.size, size2=b.size).path
        except LookupError:
            continue  # stored hashes lost: the verifier reports the unlinked checkpoints
        consistency.append({"from": a.size, "to": b.size, "proof": [b64(p) for p in path]})
    files: dict[str, Iterator[str] | str] = {
        "entries.jsonl": _entry_lines(first_seq, last_seq),
        "checkpoints.json": json.dumps(
            [
                {
                    "size": cp.size,
                    "note": cp.note,
                    # The witnesses' cosignature/v1 lines: appended to the note, they make
                    # a signed note any C2SP client checks with the witnesses' vkeys.
                    "cosignatures": [c.line for c in cp.cosignatures.order_by("witness")],
                    # RFC 3161 token (DER, base64) over the UTF-8 note; null: no trusted time.
                    "timestamp": _timestamp_of(cp),
                }
                for cp in chosen
            ],
            indent=2,
            ensure_ascii=False,
        ),
        "keys.json": json.dumps(_key_records(), indent=2),
        "proofs/inclusion.jsonl": _inclusion_lines(first_seq, *proof_range),
        "proofs/consistency.json": json.dumps(consistency, indent=2),
    }
    if settings.FEDGOV_TSA_CERT_FILES:
        # Informative, as keys.json: a verifier pins the TSA it trusts (--tsa-cert) and
        # may take this file for it only after comparing it with the TSA's published one.
        files["tsa/certs.pem"] = "".join(
            Path(path).read_text() for path in settings.FEDGOV_TSA_CERT_FILES
        )
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "origin": settings.FEDGOV_LEDGER_ORIGIN,
        "from_seq": first_seq,
        "to_seq": last_seq,
        "anchor_size": anchor.size if anchor is not None else None,
        "created_at": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        # What ledger_verify found when the bundle was written; null when nothing.
        "damaged": damage,
        # Informative only: a verifier pins witness keys itself (--witness-key).
        "witnesses": [
            {"name": view.name, "vkey": witness.cosigner_vkey(view.name, view.public_key)}
            for view in trust.trusted(KeyRole.WITNESS)
        ],
        "witness_quorum": settings.FEDGOV_WITNESS_QUORUM,
        "files": {},
    }
    writer = _ZipWriter(out) if out.suffix == ".zip" else _FolderWriter(out)
    written: dict[str, Any] = manifest["files"]
    try:
        for name, content in files.items():
            written[name] = writer.write(name, content)
        writer.write("manifest.json", json.dumps(manifest, indent=2))
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return BundleSummary(
        out,
        first_seq,
        last_seq,
        anchor.size if anchor is not None else 0,
        len(chosen),
        damage["first_bad_seq"] if damage else None,
    )


def _damage() -> dict[str, Any] | None:
    """What a full verification finds wrong with the stored ledger, or None."""
    from audit.integrity import verify_ledger  # the full check; imported when exporting

    report = verify_ledger(
        keys=trust.public_keys(), origin=settings.FEDGOV_LEDGER_ORIGIN, windows=trust.windows()
    )
    listed = trust.list_problems()
    if report.ok and not listed:
        return None
    problems = [str(p) for p in report.problems] + [f"trusted keys: {p}" for p in listed]
    first = report.problems[0].seq if report.problems else 0
    return {"first_bad_seq": first, "problems": problems[:50]}


class _FolderWriter:
    """Writes into a hidden sibling folder, renamed to ``out`` only once complete."""

    def __init__(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.final = out
        self.out = out.with_name(f".{out.name}.{os.getpid()}.partial")
        self.out.mkdir()

    def write(self, name: str, content: Iterator[str] | str) -> str:
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            for piece in [content] if isinstance(content, str) else content:
                data = piece.encode()
                digest.update(data)
                handle.write(piece)
        return digest.hexdigest()

    def commit(self) -> None:
        if self.final.exists():
            self.abort()
            raise InvalidInput({"out": [f"{self.final} appeared meanwhile; nothing written"]})
        self.out.rename(self.final)

    def abort(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)


class _ZipWriter:
    """Writes a hidden sibling zip, linked to ``out`` only once complete: never a partial
    zip, and never over an existing file (``link`` fails if ``out`` exists)."""

    def __init__(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.final = out
        self.temporary = out.with_name(f".{out.name}.{os.getpid()}.partial")
        self.archive = zipfile.ZipFile(self.temporary, "x", compression=zipfile.ZIP_DEFLATED)

    def write(self, name: str, content: Iterator[str] | str) -> str:
        digest = hashlib.sha256()
        with self.archive.open(name, "w") as handle:
            for piece in [content] if isinstance(content, str) else content:
                data = piece.encode()
                digest.update(data)
                handle.write(data)
        return digest.hexdigest()

    def commit(self) -> None:
        self.archive.close()
        try:
            os.link(self.temporary, self.final)
        except FileExistsError as exc:
            raise InvalidInput(
                {"out": [f"{self.final} appeared meanwhile; nothing written"]}
            ) from exc
        finally:
            self.temporary.unlink(missing_ok=True)

    def abort(self) -> None:
        self.archive.close()
        self.temporary.unlink(missing_ok=True)
