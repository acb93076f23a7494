"""Full verification of the stored ledger: every leaf, every subtree hash, every checkpoint.

The ledger is checked in aligned chunks of ``2**CHUNK_LEVEL`` entries. For each chunk one
query brings the entries' leaf documents and stored leaf hashes as two aggregated values
and another the chunk's stored subtree hashes, so the cost per entry is two SHA-256
calls and a few byte copies, not a Python row per column. Any mismatch sends the chunk
down the slow path, which reads it row by row, rebuilds each leaf in Python from the
columns (``audit.leaf``) and names the first bad sequence number. The slow path is the
authority; the fast path only proves that nothing differs.

Long ledgers are checked by several worker processes, one chunk at a time, when the
database can be reached from another process (not an in-memory SQLite, not inside an
open transaction whose rows others cannot see). Nodes above the chunk level, checkpoints
and the tree head are checked in the calling process against stored nodes, which by then
are known to match the entries.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import connection, connections

from audit import expressions, merkle, note, selectors
from audit.leaf import leaf_document
from audit.models import Checkpoint, LedgerEntry, TreeHead

CHUNK_LEVEL = 13
# Fewer chunks than this are checked in-process: starting workers would cost more.
PARALLEL_FROM_CHUNKS = 4
# Checkpoints whose roots and consistency proofs are fetched together.
CHECKPOINT_BATCH = 256
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
    workers: int = 1
    redacted: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ChunkResult:
    lo: int
    hi: int
    top: bytes | None
    problems: list[Problem]
    redacted: int = 0


class _Cursor:
    """A cursor on a raw DB-API connection, taking Django's ``%s`` placeholders.

    On PostgreSQL it is a server-binding cursor fetching results in binary: the chunk's
    aggregated hashes then arrive as raw bytes, not hex text to decode.
    """

    def __init__(self, raw_connection: Any, vendor: str) -> None:
        self.vendor = vendor
        if vendor == "postgresql":
            import psycopg

            self.cursor = psycopg.Cursor(raw_connection)
        else:
            self.cursor = raw_connection.cursor()

    def rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if self.vendor == "postgresql":
            self.cursor.execute(sql, params, binary=True)
        else:
            self.cursor.execute(sql.replace("%s", "?"), params)
        return self.cursor.fetchall()

    def close(self) -> None:
        self.cursor.close()


def _blob(value: Any) -> bytes:
    """An aggregated column, as bytes (psycopg may hand back a memoryview)."""
    if value is None:
        return b""
    return value if isinstance(value, bytes) else bytes(value)


def _entries_fast_sql(vendor: str, nodes: str = "NULL") -> str:
    """The chunk's entries aggregated, and ``nodes``, a fixed scalar subquery (its values
    are parameters placed before the entries' own), as a seventh column."""
    # A redacted entry's contents are gone: it gives an empty leaf, and its stored leaf
    # hash stands in for the recomputed one.
    if vendor == "postgresql":
        # Aggregates over an ordered subquery: PostgreSQL 15 sorts the input of an
        # aggregate with its own ORDER BY even when the index scan delivers it sorted.
        return (
            "SELECT count(*), min(seq), max(seq), count(redacted_at), "  # noqa: S608
            "convert_to(string_agg(CASE WHEN redacted_at IS NULL THEN leaf ELSE '' END, E'\\n'), "
            "'UTF8'), "
            f"string_agg(leaf_hash, ''::bytea), {nodes} "
            "FROM (SELECT seq, leaf, leaf_hash, redacted_at FROM audit_ledgerentry "
            "WHERE seq >= %s AND seq < %s ORDER BY seq) AS chunk"
        )
    # SQLite before 3.44 has no ORDER BY inside an aggregate either. Both databases keep
    # the subquery's order in practice; any other order would only send the chunk to the
    # slow path. Both values come back as bytes: group_concat copies a blob's bytes as they
    # are, and CAST AS BLOB takes the UTF-8 text as it is stored, with no hex encoding to
    # undo and no text to decode and encode again in Python. (A database in another text
    # encoding would only send every chunk to the slow path.)
    return (
        "SELECT count(*), min(seq), max(seq), count(redacted_at), "  # noqa: S608
        "CAST(group_concat(CASE WHEN redacted_at IS NULL THEN leaf ELSE '' END, char(10)) "
        "AS BLOB), "
        f"CAST(group_concat(leaf_hash, '') AS BLOB), {nodes} "
        "FROM (SELECT seq, leaf, leaf_hash, redacted_at FROM audit_ledgerentry "
        "WHERE seq >= %s AND seq < %s ORDER BY seq)"
    )


def _time_sql(vendor: str) -> str:
    if vendor == "postgresql":
        return "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    # Django stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC.
    return (
        "replace(CASE WHEN length(created_at) = 19 THEN created_at || '.000000' "
        "ELSE created_at END, ' ', 'T') || 'Z'"
    )


def _node_ranges(lo: int, hi: int, top: int) -> list[tuple[int, int, int]]:
    """(level, first idx, end idx) of the stored nodes of levels 1..top inside [lo, hi)."""
    ranges = []
    for level in range(1, top + 1):
        first, end = -(-lo >> level), hi >> level
        if first < end:
            ranges.append((level, first, end))
    return ranges


def _node_clauses(ranges: list[tuple[int, int, int]]) -> tuple[str, list[int]]:
    """SQL selecting the stored nodes of ``ranges``."""
    where = " OR ".join(["(level = %s AND idx >= %s AND idx < %s)"] * len(ranges))
    return where, [value for span in ranges for value in span]


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


Fetched = tuple[tuple[Any, ...], bytes]


def _nodes_fast_sql(vendor: str, ranges: list[tuple[int, int, int]]) -> tuple[str, list[int]]:
    """A scalar subquery: the stored subtree hashes of ``ranges``, concatenated by level
    then index, as bytes."""
    if not ranges:
        return "NULL", []
    if vendor == "postgresql":
        where, params = _node_clauses(ranges)
        return (
            "(SELECT string_agg(hash, ''::bytea) FROM (SELECT hash "  # noqa: S608
            f"FROM audit_subtreehash WHERE {where} ORDER BY level, idx) AS nodes)",
            params,
        )
    # One primary-key range per level, read in key order, the levels one after another
    # (an order SQLite keeps in practice; any other only sends the chunk to the slow path).
    arm = (
        "SELECT hash FROM (SELECT hash FROM audit_subtreehash "
        "WHERE level = %s AND idx >= %s AND idx < %s ORDER BY idx)"
    )
    union = " UNION ALL ".join([arm] * len(ranges))
    return (
        f"(SELECT CAST(group_concat(hash, '') AS BLOB) FROM ({union}))",  # noqa: S608
        [value for span in ranges for value in span],
    )


def _fetch(db: _Cursor, lo: int, hi: int) -> Fetched:
    """The fast path's one read: the chunk's entries, aggregated, and its stored subtree
    hashes, concatenated by level then index. One statement, not one per level: each
    statement is a round trip (and, from the reading thread, a wait for the GIL)."""
    nodes, node_params = _nodes_fast_sql(db.vendor, _node_ranges(lo, hi, CHUNK_LEVEL))
    row = db.rows(_entries_fast_sql(db.vendor, nodes), [*node_params, lo, hi])[0]
    return row[:6], _blob(row[6])


def _check_fetched(lo: int, hi: int, fetched: Fetched) -> ChunkResult | None:
    """The fast path, on what ``_fetch`` read: a clean result, or None when anything
    differs (the caller then reads the chunk again on the slow path, which names it).
    Touches no database, so it can run while the next chunk is being read."""
    (count, first, last, redacted, docs, stored), stored_nodes = fetched
    if count != hi - lo or first != lo or last != hi - 1:
        return None
    sha = _sha256
    kept = _blob(stored)
    # The 0x00 leaf prefix goes in with one pass over the chunk, not one copy per leaf.
    prefixed = (b"\x00" + _blob(docs).replace(b"\n", b"\n\x00")).split(b"\n")
    if redacted:
        leaves = [
            sha(doc).digest() if len(doc) > 1 else kept[32 * i : 32 * i + 32]
            for i, doc in enumerate(prefixed)
        ]
    else:
        leaves = [sha(doc).digest() for doc in prefixed]
    if len(leaves) != count or b"".join(leaves) != kept:
        return None
    levels = _levels_of(leaves, CHUNK_LEVEL)
    if b"".join(b"".join(level) for level in levels[1:]) != stored_nodes:
        return None
    top = levels[CHUNK_LEVEL][0] if hi - lo == 1 << CHUNK_LEVEL else None
    return ChunkResult(lo, hi, top, [], redacted or 0)


def check_chunk(db: _Cursor, lo: int, hi: int) -> ChunkResult:
    """Check entries [lo, hi) and the subtree hashes inside them; ``lo`` is chunk-aligned."""
    return _check_fetched(lo, hi, _fetch(db, lo, hi)) or _check_chunk_slow(db, lo, hi)


def _check_chunk_slow(db: _Cursor, lo: int, hi: int) -> ChunkResult:
    """A chunk the fast path could not prove: row by row where the entries differ, then
    the stored subtree hashes, naming the first that differs."""
    problems, leaves = _entries_slow(db, lo, hi)
    if problems:
        return ChunkResult(lo, hi, None, problems)
    levels = _levels_of(leaves, CHUNK_LEVEL)
    problems = _subtrees(db, lo, hi, levels)
    top = levels[CHUNK_LEVEL][0] if hi - lo == 1 << CHUNK_LEVEL and not problems else None
    redacted = db.rows(
        "SELECT count(redacted_at) FROM audit_ledgerentry WHERE seq >= %s AND seq < %s",
        [lo, hi],
    )[0][0]
    return ChunkResult(lo, hi, top, problems, redacted or 0)


def _entries_slow(db: _Cursor, lo: int, hi: int) -> tuple[list[Problem], list[bytes]]:
    """Row by row: rebuild each leaf from its columns and name what differs."""
    # The only interpolation is the fixed, vendor-chosen time expression.
    rows = db.rows(
        "SELECT seq, event_type, actor_id, actor_repr, subject_type, subject_id, "  # noqa: S608
        f"{_time_sql(db.vendor)}, payload, leaf, leaf_hash, redacted_at FROM audit_ledgerentry "
        "WHERE seq >= %s AND seq < %s ORDER BY seq",
        [lo, hi],
    )
    seqs = [row[0] for row in rows]
    if seqs != list(range(lo, lo + len(rows))):
        expected = next(s for s, got in zip(range(lo, hi), seqs, strict=False) if s != got)
        return [Problem(expected, "entry is missing or out of place (sequence has a gap)")], []
    if len(rows) < hi - lo:
        return [Problem(lo + len(rows), "entry is missing (the tree is longer than the table)")], []
    problems, leaves = [], []
    for row in rows:
        seq, event_type, actor_id, label, subject_type, subject_id, time, payload = row[:8]
        leaf, kept, redacted_at = row[8:]
        if redacted_at is not None:
            leaves.append(bytes(kept))  # redacted: only the hash is left to check, in the tree
            continue
        document = leaf_document(
            seq=seq,
            event_type=event_type,
            actor=f"user:{actor_id}" if actor_id is not None else label,
            subject_type=subject_type,
            subject_id=subject_id,
            time=time,
            payload=payload,
        )
        digest = _sha256(b"\x00" + document).digest()
        leaves.append(digest)
        if digest != bytes(kept):
            problems.append(
                Problem(seq, "leaf hash does not match the entry's columns and payload")
            )
        elif leaf.encode() != document:
            problems.append(
                Problem(
                    seq,
                    "the stored leaf differs from the entry's columns: the leaf column's "
                    "definition was altered",
                )
            )
    return problems, leaves


def _stored_subtrees(db: _Cursor, ranges: list[tuple[int, int, int]]) -> bytes:
    """The chunk's stored subtree hashes, concatenated by level then index."""
    if db.vendor == "postgresql":
        where, params = _node_clauses(ranges)
        # The joined clauses are fixed text; every value is a parameter.
        sql = (
            "SELECT string_agg(hash, ''::bytea) FROM (SELECT hash "  # noqa: S608
            f"FROM audit_subtreehash WHERE {where} ORDER BY level, idx) AS nodes"
        )
        return _blob(db.rows(sql, params)[0][0])
    # SQLite sorts an OR of ranges in a temporary tree; one range per level is read in
    # key order straight from the primary key index.
    sql = (
        "SELECT CAST(group_concat(hash, '') AS BLOB) FROM (SELECT hash FROM audit_subtreehash "
        "WHERE level = %s AND idx >= %s AND idx < %s ORDER BY idx)"
    )
    return b"".join(_blob(db.rows(sql, list(span))[0][0]) for span in ranges)


def _subtrees(db: _Cursor, lo: int, hi: int, levels: list[list[bytes]]) -> list[Problem]:
    ranges = _node_ranges(lo, hi, CHUNK_LEVEL)
    if not ranges:
        return []
    expected = b"".join(b"".join(level) for level in levels[1:])
    if _stored_subtrees(db, ranges) == expected:
        return []
    where, params = _node_clauses(ranges)
    # Slow path, only on a problem: the lowest level and first index that differ.
    stored = {
        (level, idx): bytes(digest)
        for level, idx, digest in db.rows(
            f"SELECT level, idx, hash FROM audit_subtreehash WHERE {where}",  # noqa: S608
            params,
        )
    }
    computed = [
        (level, (lo >> level) + offset, digest)
        for level in range(1, len(levels))
        for offset, digest in enumerate(levels[level])
    ]
    for level, index, digest in computed:
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


# --- worker processes -------------------------------------------------------------------

_worker_db: _Cursor | None = None


def _worker_start(alias: str) -> None:
    """Open this worker's own connection; the one inherited from the parent is left alone."""
    global _worker_db
    wrapper = connections[alias]
    raw = wrapper.get_new_connection(wrapper.get_connection_params())
    _worker_db = _Cursor(raw, wrapper.vendor)


def _worker_chunk(span: tuple[int, int]) -> ChunkResult:
    assert _worker_db is not None, "worker started without a connection"
    return check_chunk(_worker_db, *span)


def worker_count() -> int:
    """Worker processes for a long ledger: ``FEDGOV_VERIFY_WORKERS``; else one on SQLite,
    and the CPUs (max 4) on PostgreSQL.

    On SQLite the one process already keeps two cores busy (its reading thread runs the
    statements without the GIL), and two forked workers measured slower than one process
    at 1M entries on this two-core machine, every time (bench/ledger_verify.py: 3.8 s
    against 3.1 s at load 1-2 before the reading thread; ratio 3.07 against 2.51 at load
    13 with it). On PostgreSQL, where the server does the reading, the two measurements
    at load 12-13 disagreed (workers 13.1 s against one process 30.2 s, then 10.3 s
    against 7.9 s), so the default there stays as it was."""
    configured = os.environ.get("FEDGOV_VERIFY_WORKERS", "").strip()
    if configured:
        return max(int(configured), 1)
    if connection.vendor == "sqlite":
        return 1
    return max(min(os.cpu_count() or 1, 4), 1)


def _can_fork(chunks: int, workers: int) -> bool:
    if workers < 2 or chunks < PARALLEL_FROM_CHUNKS:
        return False
    if connection.in_atomic_block:
        return False  # other processes would not see this transaction's rows
    # is_in_memory_db is the SQLite backend's own method, absent from the base stubs.
    if connection.vendor == "sqlite" and connection.is_in_memory_db():  # type: ignore[attr-defined]
        return False
    if connection.vendor not in ("sqlite", "postgresql"):
        return False
    # Forking a process that runs other threads can copy a lock some thread holds.
    return threading.active_count() == 1 and not multiprocessing.current_process().daemon


def _chunk_results(spans: list[tuple[int, int]], workers: int) -> Iterator[ChunkResult]:
    if workers > 1:
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, _worker_start, (connection.alias,)) as pool:
            # In order, so the first problem met is the first in the ledger; leaving the
            # block early terminates the pool.
            yield from pool.imap(_worker_chunk, spans)
        return
    connection.ensure_connection()
    db = _Cursor(connection.connection, connection.vendor)
    try:
        yield from _prefetched(db, spans)
    finally:
        db.close()


def _prefetched(db: _Cursor, spans: list[tuple[int, int]]) -> Iterator[ChunkResult]:
    """Chunks in order, each read by a helper thread while the one before it is hashed.

    The database does its part (the scan and the aggregation: sqlite3 releases the GIL
    while a statement runs; PostgreSQL works in its own process) at the same time as
    this process hashes, so one process keeps two cores busy. One statement at a time
    uses the connection: the slow path runs only after the read in flight has finished,
    and the thread is gone when this generator ends, however it ends.
    """
    if not spans:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-read") as reader:
        pending = reader.submit(_fetch, db, *spans[0])
        for number, (lo, hi) in enumerate(spans):
            fetched = pending.result()
            if number + 1 < len(spans):
                pending = reader.submit(_fetch, db, *spans[number + 1])
            result = _check_fetched(lo, hi, fetched)
            if result is None:
                pending.result()
                result = _check_chunk_slow(db, lo, hi)
            yield result


# --- above the chunks: higher nodes, checkpoints, tree head ------------------------------


class _Higher:
    """Nodes above the chunk level, built from the tops of full chunks."""

    def __init__(self) -> None:
        self.nodes: dict[merkle.Node, bytes] = {}

    def add(self, lo: int, top: bytes) -> list[Problem]:
        index = lo >> CHUNK_LEVEL
        self.nodes[(CHUNK_LEVEL, index)] = top
        completed = []
        level = CHUNK_LEVEL
        while index & 1:
            left = self.nodes[(level, index - 1)]
            right = self.nodes[(level, index)]
            level, index = level + 1, index >> 1
            self.nodes[(level, index)] = merkle.node_hash(left, right)
            completed.append((level, index))
        if not completed:
            return []
        try:
            stored = selectors.fetch_nodes(completed)
        except LookupError:
            stored = {}
        for level, index in completed:
            if stored.get((level, index)) != self.nodes[(level, index)]:
                start = index << level
                return [
                    Problem(
                        start,
                        f"stored subtree hash (level {level}, index {index}) is missing or does "
                        f"not match the entries {start}..{((index + 1) << level) - 1}",
                    )
                ]
        return []


Windows = Mapping[str, tuple[datetime, datetime | None]]


def window_problem(key_id: str, signed_time: str, windows: Windows | None) -> str | None:
    """Why a signature stated at ``signed_time`` by ``key_id`` falls outside the key's
    trusted window (``audit.trust``), or None when it lies inside or no windows are given."""
    if windows is None:
        return None
    window = windows.get(key_id)
    if window is None:
        return f"key {key_id} is not in the trusted list"
    try:
        moment = datetime.strptime(signed_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return f"signed time {signed_time!r} is not RFC 3339 UTC to the second"
    start, end = window
    if moment < start or (end is not None and moment >= end):
        until = end.strftime("%Y-%m-%dT%H:%M:%SZ") if end else "now"
        return (
            f"signed at {signed_time} by key {key_id}, outside its trusted window "
            f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')} to {until}"
        )
    return None


class _Checkpoints:
    """Signature, stated facts, root and consistency of each checkpoint, in size order.

    Roots come from stored nodes, which the chunk pass has already matched to the entries.
    """

    def __init__(
        self, keys: dict[str, Ed25519PublicKey], origin: str, windows: Windows | None = None
    ) -> None:
        self.keys = keys
        self.origin = origin
        self.windows = windows
        self.previous: tuple[int, bytes] | None = None
        self.count = 0

    def check(self, upto: int) -> list[Problem]:
        rows = Checkpoint.objects.filter(size__lte=upto).order_by("size").iterator(chunk_size=500)
        batch: list[Checkpoint] = []
        for row in rows:
            batch.append(row)
            if len(batch) == CHECKPOINT_BATCH:
                problems = self._batch(batch)
                if problems:
                    return problems
                batch = []
        return self._batch(batch) if batch else []

    def _batch(self, rows: list[Checkpoint]) -> list[Problem]:
        wanted: set[merkle.Node] = set()
        previous = self.previous[0] if self.previous else None
        for row in rows:
            wanted.update(merkle.root_nodes(row.size))
            if previous is not None:
                wanted.update(merkle.consistency_nodes(previous, row.size))
            previous = row.size
        try:
            found = selectors.fetch_nodes(wanted)
        except LookupError as exc:
            return [Problem(rows[0].size - 1, f"checkpoint at size {rows[0].size}: {exc}")]

        def node(level: int, index: int) -> bytes:
            return found[(level, index)]

        for row in rows:
            problems = self._one(row, node)
            if problems:
                return problems
        return []

    def _one(self, row: Checkpoint, node: merkle.NodeGetter) -> list[Problem]:
        self.count += 1
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
        outside = window_problem(key_id, signed.time, self.windows)
        facts.append((outside is None, outside or ""))
        problems = [
            Problem(last, f"checkpoint at size {row.size}: {why}") for ok, why in facts if not ok
        ]
        if problems:
            return problems
        if merkle.root_from_nodes(row.size, node) != signed.root:
            return [
                Problem(
                    last, f"checkpoint at size {row.size}: signed root is not the entries' root"
                )
            ]
        if self.previous is not None:
            size1, root1 = self.previous
            proof = merkle.consistency_proof(size1, row.size, node)
            if not merkle.verify_consistency(size1, row.size, root1, signed.root, proof):
                return [
                    Problem(
                        last,
                        f"checkpoint at size {row.size} is not consistent with size {size1}",
                    )
                ]
        self.previous = (row.size, signed.root)
        return []


def _deparsed(expression: str) -> str:
    """PostgreSQL shows a generation expression with casts of varchar columns to text."""
    return re.sub(r"\((\w+)\)::text", r"\1", expression).replace('"', "")


def schema_problems() -> list[Problem]:
    """The guard the fast path relies on: ``leaf`` is still generated from the columns."""
    field = LedgerEntry._meta.get_field("leaf")
    expected = field.generated_sql(connection)[0]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT is_generated, generation_expression FROM information_schema.columns "
                "WHERE table_name = 'audit_ledgerentry' AND column_name = 'leaf'"
            )
            column = cursor.fetchone()
            cursor.execute(
                "SELECT prosrc, provolatile FROM pg_proc WHERE proname = %s",
                [expressions.PG_FUNCTION],
            )
            functions = cursor.fetchall()
            generated = (
                column is not None
                and column[0] == "ALWAYS"
                and _deparsed(column[1]) == _deparsed(expected)
                and functions == [(expressions.PG_BODY, "i")]
            )
        else:
            cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_ledgerentry'"
            )
            row = cursor.fetchone()
            definition = f'"leaf" text GENERATED ALWAYS AS ({expected}) STORED'
            generated = row is not None and definition in row[0]
    if generated:
        return []
    return [
        Problem(
            0,
            "the ledger's leaf column is no longer generated by fedgov's expression: "
            "leaves could differ from the entries' columns",
        )
    ]


def verify_ledger(
    *,
    keys: dict[str, Ed25519PublicKey],
    origin: str,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    windows: Windows | None = None,
) -> Report:
    """Recompute every leaf and subtree hash and check every checkpoint against ``keys``.

    ``keys`` are the trusted public keys by id (``audit.keys.public_keys()``): a checkpoint
    signed by any other key is a problem. ``workers`` defaults to ``worker_count()``;
    short ledgers and in-transaction calls run in this process. ``windows`` (key id ->
    valid from, valid to; ``audit.trust.windows()``) also fails a checkpoint whose stated
    time lies outside its key's window. Returns a report; raises
    nothing for tampering.
    """
    head = TreeHead.objects.filter(pk=1).first()
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(seq) FROM audit_ledgerentry")
        max_seq = cursor.fetchone()[0]
    checkpoint_end = Checkpoint.objects.order_by("-size").values_list("size", flat=True).first()
    head_size = head.size if head else 0
    end = max(head_size, (max_seq + 1) if max_seq is not None else 0, checkpoint_end or 0)
    report = Report(size=end)
    redacted = 0
    problems = schema_problems()
    if problems:
        report.problems = problems
        return report
    chunk = 1 << CHUNK_LEVEL
    spans = [(lo, min(lo + chunk, end)) for lo in range(0, end, chunk)]
    wanted = worker_count() if workers is None else workers
    report.workers = wanted if _can_fork(len(spans), wanted) else 1
    higher = _Higher()
    verified = end
    for result in _chunk_results(spans, report.workers):
        problems = result.problems
        if not problems and result.top is not None:
            problems = higher.add(result.lo, result.top)
        if problems:
            verified = result.lo
            break
        redacted += result.redacted
        if progress is not None:
            progress(result.hi, end)
    report.redacted = redacted
    if redacted:
        problems += _early_redactions()
    checkpoints = _Checkpoints(keys, origin, windows)
    problems += checkpoints.check(verified)
    report.checkpoints = checkpoints.count
    if not problems:
        problems = _head_problems(head, end)
    report.problems = sorted(problems)
    return report


def _early_redactions() -> list[Problem]:
    """Entries whose contents were removed before the AI Act's six-month minimum."""
    days = settings.FEDGOV_LEDGER_RETENTION_MIN_DAYS
    if connection.vendor == "postgresql":
        young = "redacted_at - created_at < make_interval(days => %s)"
    else:
        young = "julianday(redacted_at) - julianday(created_at) < %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(seq) FROM audit_ledgerentry WHERE redacted_at IS NOT NULL AND {young}",  # noqa: S608
            [days],
        )
        seq = cursor.fetchone()[0]
    if seq is None:
        return []
    return [
        Problem(
            seq,
            f"entry's contents were removed less than {days} days after it was written, "
            "before the minimum retention",
        )
    ]


def _head_problems(head: TreeHead | None, end: int) -> list[Problem]:
    if end == 0:
        return []
    if head is None or head.size != end:
        size = head.size if head else 0
        return [Problem(min(size, end), f"tree head says size {size}; the entries end at {end}")]
    nodes = merkle.root_nodes(end)
    found = selectors.fetch_nodes(nodes)
    if bytes(head.frontier) != b"".join(found[node] for node in nodes):
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
