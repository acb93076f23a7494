"""The ledger side of a report: the anchor checkpoint and batched inclusion proofs.

Uses the ledger engineer's public API (``checkpoint_create``, ``selectors.fetch_nodes``)
plus ``audit.merkle`` for the proof paths, in batches so 30 000 cited events never need
30 000 queries or sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit import merkle, selectors
from audit.models import Checkpoint, LedgerEntry
from audit.services import checkpoint_create
from fedgov.actors import Actor
from reports.pdf import Anchor, CitedProof

BATCH = 256


def anchor_checkpoint(*, actor: Actor) -> Anchor:
    """The latest checkpoint, signed now if entries were appended since the last one.

    Raises ``TransitionNotAllowed`` when the ledger is empty.
    """
    row = checkpoint_create(actor=actor)
    return Anchor(
        size=row.size,
        root=bytes(row.root),
        key_id=row.key_id,
        created_at=row.created_at,
        note=row.note,
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
        for seq in chunk:
            path = merkle.inclusion_proof(seq, size, lambda lv, ix, got=found: got[(lv, ix)])
            event, subject, leaf = meta[seq]
            yield CitedProof(seq, event, subject, leaf, tuple(path))
