"""Full verification of the stored ledger: every leaf, every subtree hash, every checkpoint.

Rows are read in aligned chunks of ``2**CHUNK_LEVEL`` entries by key range, so memory
stays flat however long the ledger is. Within a chunk all hashing is done level by level
in list comprehensions; nodes above the chunk level are few and kept in memory. The
verification stops at the first chunk that shows a problem and reports every problem of
that chunk, sorted by the sequence number they name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection

from audit import merkle, note, selectors
from audit.leaf import json_string
from audit.models import Checkpoint, TreeHead

CHUNK_LEVEL = 13
_sha256 = hashlib.sha256


@dataclass(frozen=True, order=True)
class Problem:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}"


@dataclass
class Report:
    size: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _time_sql() -> str:
    if connection.vendor == "postgresql":
        return "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    # Django stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC.
    return (
        "replace(CASE WHEN length(created_at) = 19 THEN created_at || '.000000' "
        "ELSE created_at END, ' ', 'T') || 'Z'"
    )


def _fetch_entries(lo: int, hi: int) -> list[tuple]:
    # The only interpolation is the fixed, vendor-chosen time expression.
    sql = (
        "SELECT seq, event_type, actor_id, actor_repr, subject_type, subject_id, "  # noqa: S608
        f"{_time_sql()}, payload, leaf_hash FROM audit_ledgerentry "
        "WHERE seq >= %s AND seq < %s ORDER BY seq"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [lo, hi])
        return cursor.fetchall()


def _fetch_levels(lo: int, hi: int, top: int) -> list[tuple]:
    """Stored nodes of levels 1..top lying wholly inside leaves [lo, hi), by level and idx."""
    clauses, params = [], []
    for level in range(1, top + 1):
        first, end = -(-lo >> level), hi >> level
        if first < end:
            clauses.append("(level = %s AND idx >= %s AND idx < %s)")
            params += [level, first, end]
    if not clauses:
        return []
    # The joined clauses are fixed text; every value is a parameter.
    where = " OR ".join(clauses)
    sql = f"SELECT level, idx, hash FROM audit_subtreehash WHERE {where} ORDER BY level, idx"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _leaf_hashes(rows: list[tuple]) -> list[bytes]:
    enc, sha = json_string, _sha256
    return [
        sha(
            (
                f'\x00{{"actor":{enc(f"user:{actor_id}" if actor_id is not None else label)},'
                f'"event_type":{enc(event_type)},"payload":{payload},"seq":{seq},'
                f'"subject_id":{enc(subject_id)},"subject_type":{enc(subject_type)},'
                f'"time":"{time}"}}'
            ).encode()
        ).digest()
        for seq, event_type, actor_id, label, subject_type, subject_id, time, payload, _h in rows
    ]


def _levels_of(leaves: list[bytes], top: int) -> list[list[bytes]]:
    levels, current, sha = [leaves], leaves, _sha256
    for _level in range(top):
        if len(current) < 2:
            break
        current = [
            sha(b"\x01" + a + b).digest()
            for a, b in zip(current[0::2], current[1::2], strict=False)
        ]
        levels.append(current)
    return levels


class _Walk:
    """The state of one verification pass."""

    def __init__(self, keys: dict[str, Ed25519PublicKey], origin: str) -> None:
        self.keys = keys
        self.origin = origin
        self.high: dict[merkle.Node, bytes] = {}
        self.levels: list[list[bytes]] = []
        self.lo = 0
        self.previous: tuple[int, bytes] | None = None

    def node(self, level: int, index: int) -> bytes:
        if level >= CHUNK_LEVEL and (level, index) in self.high:
            return self.high[(level, index)]
        return self.levels[level][index - (self.lo >> level)]

    def entries(self, rows: list[tuple], lo: int, hi: int) -> list[Problem]:
        problems = []
        seqs = [row[0] for row in rows]
        if seqs != list(range(lo, lo + len(rows))):
            expected = next(s for s, got in zip(range(lo, hi), seqs, strict=False) if s != got)
            return [Problem(expected, "entry is missing or out of place (sequence has a gap)")]
        if len(rows) < hi - lo:
            return [Problem(lo + len(rows), "entry is missing (the tree is longer than the table)")]
        leaves = _leaf_hashes(rows)
        stored = [bytes(row[8]) for row in rows]
        if leaves != stored:
            for row, computed, kept in zip(rows, leaves, stored, strict=True):
                if computed != kept:
                    problems.append(
                        Problem(row[0], "leaf hash does not match the entry's columns and payload")
                    )
        self.levels = _levels_of(leaves, CHUNK_LEVEL)
        return problems

    def subtrees(self, lo: int, hi: int) -> list[Problem]:
        rows = _fetch_levels(lo, hi, CHUNK_LEVEL)
        expected = [
            (level, (lo >> level) + offset, digest)
            for level in range(1, len(self.levels))
            for offset, digest in enumerate(self.levels[level])
        ]
        if rows == expected:
            return []
        # Slow path, only on a problem: the lowest level and first index that differ.
        stored = {(level, idx): digest for level, idx, digest in rows}
        for level, index, digest in expected:
            kept = stored.get((level, index))
            if kept != digest:
                start, end = index << level, ((index + 1) << level) - 1
                what = "is missing for" if kept is None else "does not match"
                return [
                    Problem(
                        start,
                        f"stored subtree hash (level {level}, index {index}) {what} "
                        f"the entries {start}..{end} it covers",
                    )
                ]
        return [Problem(lo, "stored subtree hashes exist that no complete subtree explains")]

    def higher(self, lo: int, count: int) -> list[Problem]:
        """Nodes above the chunk level completed by this (full) chunk."""
        if count != 1 << CHUNK_LEVEL:
            return []
        index = lo >> CHUNK_LEVEL
        self.high[(CHUNK_LEVEL, index)] = self.levels[CHUNK_LEVEL][0]
        completed = []
        level = CHUNK_LEVEL
        while index & 1:
            left = self.high[(level, index - 1)]
            right = self.high[(level, index)]
            level, index = level + 1, index >> 1
            self.high[(level, index)] = merkle.node_hash(left, right)
            completed.append((level, index))
        if not completed:
            return []
        try:
            stored = selectors.fetch_nodes(completed)
        except LookupError:
            stored = {}
        for level, index in completed:
            if stored.get((level, index)) != self.high[(level, index)]:
                start = index << level
                return [
                    Problem(
                        start,
                        f"stored subtree hash (level {level}, index {index}) is missing or does "
                        f"not match the entries {start}..{((index + 1) << level) - 1}",
                    )
                ]
        return []

    def checkpoint(self, row: Checkpoint) -> list[Problem]:
        last = row.size - 1
        try:
            body, key_id = note.open_note(row.note, self.keys, self.origin)
            signed = note.parse_checkpoint(body)
        except note.NoteError as exc:
            return [Problem(last, f"checkpoint at size {row.size}: {exc}")]
        facts = [
            (signed.origin == self.origin, f"origin {signed.origin!r} is not {self.origin!r}"),
            (signed.size == row.size, f"note states size {signed.size}"),
            (signed.root == bytes(row.root), "stored root differs from the signed root"),
            (key_id == row.key_id, f"signed by key {key_id}, row names {row.key_id}"),
            (
                signed.time == row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                f"signed time {signed.time} differs from the stored time",
            ),
        ]
        problems = [
            Problem(last, f"checkpoint at size {row.size}: {why}") for ok, why in facts if not ok
        ]
        if problems:
            return problems
        root = merkle.root_from_nodes(row.size, self.node)
        if root != signed.root:
            return [
                Problem(
                    last, f"checkpoint at size {row.size}: signed root is not the entries' root"
                )
            ]
        if self.previous is not None:
            size1, root1 = self.previous
            proof = selectors.consistency(size1=size1, size2=row.size)
            if not merkle.verify_consistency(size1, row.size, root1, signed.root, proof.path):
                return [
                    Problem(
                        last,
                        f"checkpoint at size {row.size} is not consistent with size {size1}",
                    )
                ]
        self.previous = (row.size, signed.root)
        return []


def verify_ledger(
    *,
    keys: dict[str, Ed25519PublicKey],
    origin: str,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Recompute every leaf and subtree hash and check every checkpoint against ``keys``.

    ``keys`` are the trusted public keys by id (``audit.keys.public_keys()``): a checkpoint
    signed by any other key is a problem. Returns a report; raises nothing for tampering.
    """
    head = TreeHead.objects.filter(pk=1).first()
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(seq) FROM audit_ledgerentry")
        max_seq = cursor.fetchone()[0]
    checkpoint_end = Checkpoint.objects.order_by("-size").values_list("size", flat=True).first()
    head_size = head.size if head else 0
    end = max(head_size, (max_seq + 1) if max_seq is not None else 0, checkpoint_end or 0)
    report = Report(size=end)
    walk = _Walk(keys, origin)
    chunk = 1 << CHUNK_LEVEL
    for lo in range(0, end, chunk):
        hi = min(lo + chunk, end)
        walk.lo = lo
        rows = _fetch_entries(lo, hi)
        problems = walk.entries(rows, lo, hi)
        if not problems:
            problems = walk.subtrees(lo, hi) or walk.higher(lo, hi - lo)
        if not problems:
            for row in Checkpoint.objects.filter(size__gt=lo, size__lte=hi).order_by("size"):
                report.checkpoints += 1
                problems = walk.checkpoint(row)
                if problems:
                    break
        if problems:
            report.problems = sorted(problems)
            return report
        if progress is not None:
            progress(hi, end)
    report.problems = _head_problems(head, end, walk)
    return report


def _head_problems(head: TreeHead | None, end: int, walk: _Walk) -> list[Problem]:
    if end == 0:
        return []
    if head is None or head.size != end:
        size = head.size if head else 0
        return [Problem(min(size, end), f"tree head says size {size}; the entries end at {end}")]
    frontier = [walk.node(level, index) for level, index in merkle.root_nodes(end)]
    if bytes(head.frontier) != b"".join(frontier):
        return [Problem(end - 1, "tree head's frontier hashes do not match the entries")]
    # Subtree rows past the end mean entries were cut off behind the guards.
    clauses = " OR ".join(
        f"(level = {level} AND idx >= {end >> level})" for level in range(1, end.bit_length() + 2)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM audit_subtreehash WHERE {clauses}")  # noqa: S608
        extra = cursor.fetchone()[0]
    if extra:
        return [Problem(end, "subtree hashes exist for entries past the end: the tail was cut")]
    return []
