"""Reads of the ledger: roots, proofs and checkpoints as plain data, in few fixed queries."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import IntegerField, Value

from audit import merkle
from audit.models import Checkpoint, LedgerEntry, SubtreeHash, TreeHead


@dataclass(frozen=True)
class LedgerEventView:
    seq: int
    event_type: str
    actor_id: int | None
    actor: str
    subject_type: str
    subject_id: str
    created_at: datetime
    payload: dict[str, Any]
    leaf_hash: bytes


@dataclass(frozen=True)
class CheckpointView:
    size: int
    root: bytes
    created_at: datetime
    key_id: str
    note: str


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    size: int
    leaf_hash: bytes
    root: bytes
    path: list[bytes]


@dataclass(frozen=True)
class ConsistencyProof:
    size1: int
    size2: int
    root1: bytes
    root2: bytes
    path: list[bytes]


def tree_size() -> int:
    return TreeHead.objects.filter(pk=1).values_list("size", flat=True).first() or 0


def fetch_nodes(nodes: Iterable[merkle.Node]) -> dict[merkle.Node, bytes]:
    """The stored hashes of ``nodes`` (level 0 = entries' leaf hashes) in ONE query.

    Raises ``LookupError`` naming a node that is not stored (the tree is shorter).
    """
    wanted = set(nodes)
    inner = [node for node in wanted if node[0] > 0]
    leaves = [index for level, index in wanted if level == 0]
    queries: list[Any] = []
    if inner:
        queries.append(
            SubtreeHash.objects.filter(pk__in=inner).order_by().values_list("level", "idx", "hash")
        )
    if leaves:
        queries.append(
            LedgerEntry.objects.filter(seq__in=leaves)
            .order_by()
            .annotate(level=Value(0, output_field=IntegerField()))
            .values_list("level", "seq", "leaf_hash")
        )
    if not queries:
        return {}
    query = queries[0] if len(queries) == 1 else queries[0].union(queries[1], all=True)
    found = {(level, index): bytes(digest) for level, index, digest in query}
    missing = wanted - found.keys()
    if missing:
        raise LookupError(f"subtree {min(missing)} is not stored")
    return found


def _getter(found: dict[merkle.Node, bytes]) -> merkle.NodeGetter:
    return lambda level, index: found[(level, index)]


def root_at(size: int) -> bytes:
    """The tree root at ``size`` (``size`` <= the tree size); one query."""
    if size == 0:
        return merkle.EMPTY_ROOT
    return merkle.root_from_nodes(size, _getter(fetch_nodes(merkle.root_nodes(size))))


def inclusion(*, seq: int, size: int) -> InclusionProof:
    """Entry ``seq``'s audit path in the tree of ``size``; one query for every hash.

    Raises ``ValueError`` if ``seq >= size`` and ``LookupError`` if ``size`` exceeds the tree.
    """
    nodes = (
        merkle.inclusion_nodes(seq, size) + merkle.root_nodes(size) + [(0, seq)]
    )  # ValueError first, before any query
    found = fetch_nodes(nodes)
    get = _getter(found)
    return InclusionProof(
        seq=seq,
        size=size,
        leaf_hash=found[(0, seq)],
        root=merkle.root_from_nodes(size, get),
        path=merkle.inclusion_proof(seq, size, get),
    )


def consistency(*, size1: int, size2: int) -> ConsistencyProof:
    """The proof that the tree at ``size1`` is a prefix of the tree at ``size2``; one query.

    Raises ``ValueError`` unless ``0 < size1 <= size2`` and ``LookupError`` past the tree.
    """
    nodes = (
        merkle.consistency_nodes(size1, size2) + merkle.root_nodes(size1) + merkle.root_nodes(size2)
    )
    get = _getter(fetch_nodes(nodes))
    return ConsistencyProof(
        size1=size1,
        size2=size2,
        root1=merkle.root_from_nodes(size1, get),
        root2=merkle.root_from_nodes(size2, get),
        path=merkle.consistency_proof(size1, size2, get),
    )


def _checkpoint_view(row: Checkpoint) -> CheckpointView:
    return CheckpointView(row.size, bytes(row.root), row.created_at, row.key_id, row.note)


def latest_checkpoint() -> CheckpointView | None:
    row = Checkpoint.objects.order_by("-size").first()
    return _checkpoint_view(row) if row else None


def checkpoint_at(size: int) -> CheckpointView | None:
    row = Checkpoint.objects.filter(size=size).first()
    return _checkpoint_view(row) if row else None


def events_for(*, subject_type: str, subject_id: str | int) -> list[LedgerEventView]:
    """Every event about one subject, oldest first (e.g. a dataset's whole history)."""
    rows = LedgerEntry.objects.filter(subject_type=subject_type, subject_id=str(subject_id))
    return [
        LedgerEventView(
            seq=row.seq,
            event_type=row.event_type,
            actor_id=row.actor_id,
            actor=row.actor_repr,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            created_at=row.created_at,
            payload=json.loads(row.payload),
            leaf_hash=bytes(row.leaf_hash),
        )
        for row in rows.order_by("seq")
    ]
