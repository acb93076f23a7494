"""What fedgov checks before it signs a checkpoint: it never signs what it has not verified.

A signature says "these were the entries"; signing whatever tree head the database holds
would let anyone with write access to the tables have fedgov vouch for their edits. So
before a checkpoint is signed, everything since the last checkpoint fedgov signed is
verified from the rows up:

1. the latest stored checkpoint is signed by a trusted key within its window, states
   this log's origin and its own size and root, and no checkpoint claims more entries
   than the tree head (a cut tail);
2. the stored perfect subtrees of that checkpoint's tree fold to its signed root, so the
   old part of the tree is the one that was signed;
3. no entry after it is redacted (retention empties only entries a checkpoint covers);
   every entry after it is rebuilt from its columns (``audit.leaf``) and hashed, and its
   stored leaf hash must match; sequence numbers must run without a gap;
4. every subtree hash completed since then is recomputed from those leaves and must match
   the stored row, and none may be missing or left over;
5. the new root, folded from the recomputed frontier, must equal the tree head's stored
   frontier, and a consistency proof from the previous signed root to it must verify
   (RFC 9162 section 2.1.4.2).

Any mismatch raises :class:`UnverifiedLedger` naming where. The first checkpoint of a
ledger verifies the whole ledger this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection

from audit import integrity, merkle, note, selectors
from audit.models import Checkpoint, TreeHead
from fedgov.errors import TransitionNotAllowed

# Entries rebuilt per query: bounds memory on a long stretch since the last checkpoint.
BATCH = 1 << 13


class UnverifiedLedger(TransitionNotAllowed):
    """The stored ledger does not verify; fedgov refuses to sign it.

    ``seq`` is the first sequence number found bad, or None when the damage lies in a
    range the check cannot narrow (then the message names the range).
    """

    def __init__(self, message: str, seq: int | None = None) -> None:
        self.seq = seq
        where = f"seq {seq}: " if seq is not None else ""
        super().__init__(f"refusing to sign a checkpoint: {where}{message}")


@dataclass(frozen=True)
class Verified:
    """The tree fedgov may sign, and the signed checkpoint it extends (if any)."""

    size: int
    root: bytes
    previous: Checkpoint | None


def _previous(
    head_size: int,
    keys: Mapping[str, Ed25519PublicKey],
    origin: str,
    windows: integrity.Windows | None,
) -> tuple[Checkpoint | None, bytes]:
    beyond = Checkpoint.objects.filter(size__gt=head_size).order_by("size").first()
    if beyond is not None:
        raise UnverifiedLedger(
            f"a checkpoint at size {beyond.size} exists but the tree head says {head_size}: "
            "entries after it were cut off",
            seq=head_size,
        )
    row = Checkpoint.objects.filter(size__lte=head_size).order_by("-size").first()
    if row is None:
        return None, merkle.EMPTY_ROOT
    last = row.size - 1
    try:
        body, key_id = note.open_note(row.note, dict(keys), origin)
        signed = note.parse_checkpoint(body)
    except note.NoteError as exc:
        raise UnverifiedLedger(f"latest checkpoint (size {row.size}): {exc}", seq=last) from exc
    outside = integrity.window_problem(key_id, signed.time, windows)
    if outside is not None:
        raise UnverifiedLedger(f"latest checkpoint (size {row.size}): {outside}", seq=last)
    if signed.origin != origin or signed.size != row.size or signed.root != bytes(row.root):
        raise UnverifiedLedger(
            f"latest checkpoint (size {row.size}) states origin {signed.origin!r}, size "
            f"{signed.size} and a root that its row does not repeat",
            seq=last,
        )
    return row, signed.root


def _stored_nodes(level: int, first: int, end: int) -> dict[int, bytes]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT idx, hash FROM audit_subtreehash WHERE level = %s AND idx >= %s AND idx < %s",
            [level, first, end],
        )
        return {idx: bytes(digest) for idx, digest in cursor.fetchall()}


def _check_nodes(lo: int, hi: int, computed: dict[tuple[int, int], bytes]) -> None:
    """The stored nodes completed by entries [lo, hi) are exactly ``computed``."""
    for level in range(1, hi.bit_length() + 1):
        # A node (level, idx) is completed by its last leaf, (idx + 1) << level - 1.
        first, end = ((lo + (1 << level)) >> level) - 1, hi >> level
        if first >= end:
            continue
        stored = _stored_nodes(level, first, end)
        for index in range(first, end):
            want, have = computed[(level, index)], stored.get(index)
            if have != want:
                start, stop = index << level, ((index + 1) << level) - 1
                what = "is missing for" if have is None else "does not match"
                raise UnverifiedLedger(
                    f"stored subtree hash (level {level}, index {index}) {what} the entries "
                    f"{start}..{stop} it covers",
                    seq=start,
                )


def _no_unsigned_redaction(start: int, size: int) -> None:
    # Retention may empty an entry only under a signed checkpoint that covers it (the
    # triggers' rule): an emptied entry after the last checkpoint has a leaf hash that
    # nothing can be checked against any more.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(seq) FROM audit_ledgerentry "
            "WHERE seq >= %s AND seq < %s AND redacted_at IS NOT NULL",
            [start, size],
        )
        seq = cursor.fetchone()[0]
    if seq is not None:
        raise UnverifiedLedger(
            "entry's contents were removed though no signed checkpoint covered it", seq=seq
        )


def _nothing_past(size: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(seq) FROM audit_ledgerentry WHERE seq >= %s", [size])
        stray = cursor.fetchone()[0]
    if stray is not None:
        raise UnverifiedLedger(f"an entry exists past the tree head's size {size}", seq=stray)
    clauses = " OR ".join(
        f"(level = {level} AND idx >= {size >> level})" for level in range(1, size.bit_length() + 2)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(level) FROM audit_subtreehash WHERE {clauses}")  # noqa: S608
        if cursor.fetchone()[0] is not None:
            raise UnverifiedLedger(
                f"subtree hashes exist for entries past the tree head's size {size}: "
                "the tail was cut",
                seq=size,
            )


def verify_unsigned(
    *,
    head: TreeHead,
    keys: Mapping[str, Ed25519PublicKey],
    origin: str,
    windows: integrity.Windows | None = None,
) -> Verified:
    """Verify everything since the last signed checkpoint; return the tree to sign.

    ``head`` should be locked by the caller so no append moves it meanwhile. Raises
    :class:`UnverifiedLedger` on the first thing that does not verify.
    """
    size = head.size
    previous, previous_root = _previous(size, keys, origin, windows)
    start = previous.size if previous is not None else 0
    hashes: list[bytes] = []
    levels: list[int] = []
    if start:
        nodes = merkle.root_nodes(start)
        try:
            found = selectors.fetch_nodes(nodes)
        except LookupError as exc:
            raise UnverifiedLedger(f"the tree of the checkpoint at size {start}: {exc}") from exc
        hashes = [found[node] for node in nodes]
        levels = [level for level, _index in nodes]
        if merkle.fold(hashes) != previous_root:
            raise UnverifiedLedger(
                f"stored hashes of entries 0..{start - 1} no longer give the signed root of "
                f"the checkpoint at size {start}; run ledger_verify to find the entry"
            )
    _no_unsigned_redaction(start, size)
    connection.ensure_connection()
    db = integrity._Cursor(connection.connection, connection.vendor)
    try:
        for lo in range(start, size, BATCH):
            hi = min(lo + BATCH, size)
            problems, leaves = integrity._entries_slow(db, lo, hi)
            if problems:
                first = min(problems)
                raise UnverifiedLedger(first.message, seq=first.seq)
            computed: dict[tuple[int, int], bytes] = {}
            for seq, digest in enumerate(leaves, start=lo):
                # The same frontier walk an append makes (audit.services._append).
                level, current = 0, digest
                while levels and levels[-1] == level:
                    levels.pop()
                    current = merkle.node_hash(hashes.pop(), current)
                    level += 1
                    computed[(level, seq >> level)] = current
                hashes.append(current)
                levels.append(level)
            _check_nodes(lo, hi, computed)
    finally:
        db.close()
    _nothing_past(size)
    if bytes(head.frontier) != b"".join(hashes):
        raise UnverifiedLedger(
            f"the tree head's frontier does not match the entries 0..{size - 1}", seq=size - 1
        )
    root = merkle.fold(hashes) if hashes else merkle.EMPTY_ROOT
    if start and start < size:
        proof = selectors.consistency(size1=start, size2=size)
        if not merkle.verify_consistency(start, size, previous_root, root, proof.path):
            raise UnverifiedLedger(
                f"the tree at size {size} is not consistent with the checkpoint at size {start}",
                seq=start,
            )
    return Verified(size=size, root=root, previous=previous)
