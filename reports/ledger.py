"""The ledger side of a report: the anchor checkpoint and batched inclusion proofs.

Uses the ledger engineer's public API (``checkpoint_create``, ``selectors.fetch_nodes``)
plus ``audit.merkle`` for the proof paths, in batches so 30 000 cited events never need
30 000 queries or sit in memory at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings

from audit import merkle, selectors, tsa
from audit.models import Checkpoint, CheckpointTimestamp, LedgerEntry
from audit.services import checkpoint_create
from audit.timestamping import checkpoint_timestamp
from audit.witnessing import checkpoint_witness
from fedgov.actors import Actor
from reports.pdf import Anchor, AnchorCosignature, AnchorTimestamp, CitedProof

BATCH = 256


def anchor_checkpoint(*, actor: Actor) -> Anchor:
    """The latest checkpoint, signed now if entries were appended since the last one, then
    dated by the TSA and cosigned by the witnesses when they are configured (either may
    be missing: a TSA or witness that is down delays, never blocks, and the PDF says so).

    Raises ``TransitionNotAllowed`` when the ledger is empty.
    """
    row = checkpoint_create(actor=actor)
    checkpoint_timestamp(size=row.size)
    if settings.FEDGOV_WITNESSES and row.cosignatures.count() < len(settings.FEDGOV_WITNESSES):
        checkpoint_witness(size=row.size)
    return anchor_of(row)


def anchor_of(row: Checkpoint) -> Anchor:
    """What the PDF shows of a checkpoint, with its stored cosignatures and timestamp."""
    cosignatures = tuple(
        AnchorCosignature(
            witness=c.witness,
            key_id=c.key_id,
            time=datetime.fromtimestamp(c.timestamp, UTC),
            size=row.size,
            line=c.line,
        )
        for c in row.cosignatures.order_by("witness")
    )
    stamp = CheckpointTimestamp.objects.filter(checkpoint=row).first()
    timestamp = None
    if stamp is not None:
        token = bytes(stamp.token)
        gen_time, serial, name = tsa.token_facts(token)
        timestamp = AnchorTimestamp(
            gen_time=gen_time,
            tsa=name,
            serial=serial,
            token_sha256=hashlib.sha256(token).hexdigest(),
        )
    return Anchor(
        size=row.size,
        root=bytes(row.root),
        key_id=row.key_id,
        created_at=row.created_at,
        note=row.note,
        cosignatures=cosignatures,
        timestamp=timestamp,
    )


def checkpoint_of(size: int) -> Checkpoint:
    return Checkpoint.objects.get(size=size)


def cited_proofs(seqs: list[int], size: int) -> Iterator[CitedProof]:
    """Inclusion proofs of ``seqs`` (those below ``size``) in the tree of ``size``."""
    wanted = sorted(s for s in set(seqs) if 0 <= s < size)
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        nodes = {node for seq in chunk for node in merkle.inclusion_nodes(seq, size)}
        found = selectors.fetch_nodes(nodes)
        rows = LedgerEntry.objects.filter(seq__in=chunk).values_list(
            "seq", "event_type", "subject_type", "subject_id", "leaf_hash"
        )
        meta = {
            seq: (event, f"{stype} {sid}", bytes(leaf)) for seq, event, stype, sid, leaf in rows
        }

        def node(level: int, index: int, got: dict[merkle.Node, bytes] = found) -> bytes:
            return got[(level, index)]

        for seq in chunk:
            path = merkle.inclusion_proof(seq, size, node)
            event, subject, leaf = meta[seq]
            yield CitedProof(seq, event, subject, leaf, tuple(path))
