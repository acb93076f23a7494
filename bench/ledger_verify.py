"""Benchmark: full ledger verification vs raw hashing, and one inclusion proof, at 1M entries.

Prints one JSON line. ``ratio`` = median time of ``audit.integrity.verify_ledger`` (what
``manage.py ledger_verify`` runs: every leaf recomputed from its row, every stored
subtree hash and every checkpoint checked; on PostgreSQL by worker processes, one per
CPU up to four, on SQLite by one process with a reading thread (``workers`` says which);
``one_process_ratio`` is the same check in one process) over N
entries / median time of bare ``hashlib.sha256`` over the inputs that check must hash,
in the same process and the same run: the N leaf inputs (0x00 and each entry's leaf
document, about 270 bytes here) and the N - 1 interior nodes (65 bytes each).
``ratio_vs_2n_65b`` is the same verify time over 2N hashes of 65 bytes, the smaller
baseline this bench used before, kept for comparison. Target <= 2.0. ``cpu_ratio`` is
the same quotient in CPU seconds (this process's threads and its worker processes, not a
PostgreSQL server's): the work itself, whatever else the machine runs. Also reported: one
inclusion proof's median time and query count at N (target <= 3 queries), and the
process's peak RSS. The ledger is built with bulk inserts of precomputed rows, the same
rows ``ledger_append`` would write. Uses a throw-away database: a temporary SQLite file,
or ``<name>_bench_verify`` on the PostgreSQL named by ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "fedgov.settings"
os.environ.setdefault("FEDGOV_VAR_DIR", tempfile.mkdtemp(prefix="fedgov-bench-verify-"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from audit import keys, selectors  # noqa: E402
from audit.integrity import CHUNK_LEVEL, verify_ledger  # noqa: E402
from audit.leaf import format_time, leaf_document  # noqa: E402
from audit.models import LedgerEntry, TreeHead, TrustedKey  # noqa: E402
from audit.services import (  # noqa: E402
    _INSERT_ENTRY,
    _INSERT_NODE,
    _insert_rows,
    checkpoint_create,
)
from fedgov import clock  # noqa: E402
from fedgov.actors import Actor  # noqa: E402

sha256 = hashlib.sha256


def _payload(seq: int) -> str:
    return json.dumps(
        {"round_id": seq // 10, "site_id": seq % 10, "ok": True, "sha": f"{seq:064x}"},
        sort_keys=True,
        separators=(",", ":"),
    )


def _leaf_input(seq: int, payload: str, time: str) -> bytes:
    """What SHA-256 hashes for entry ``seq``: 0x00 and its leaf document (RFC 9162 2.1.1)."""
    return b"\x00" + leaf_document(
        seq=seq,
        event_type="gate.decided",
        actor="system:bench",
        subject_type="round",
        subject_id=str(seq // 10),
        time=time,
        payload=payload,
    )


class Builder:
    """Appends precomputed leaves block by block, keeping the tree's frontier."""

    def __init__(self) -> None:
        self.frontier: list[tuple[int, bytes]] = []
        self.size = 0
        self.now = clock.now()
        self.time = format_time(self.now)
        self.stamp = LedgerEntry._meta.get_field("created_at").get_db_prep_save(
            self.now, connection
        )

    def _push(self, level: int, digest: bytes, index: int, nodes: list) -> None:
        while self.frontier and self.frontier[-1][0] == level:
            _level, left = self.frontier.pop()
            digest = sha256(b"\x01" + left + digest).digest()
            level, index = level + 1, index >> 1
            nodes.append((level, index, digest))
        self.frontier.append((level, digest))

    def add(self, count: int) -> None:
        lo = self.size
        rows, leaves = [], []
        for seq in range(lo, lo + count):
            payload = _payload(seq)
            digest = sha256(_leaf_input(seq, payload, self.time)).digest()
            leaves.append(digest)
            rows.append(
                (
                    seq,
                    "gate.decided",
                    None,
                    "system:bench",
                    "round",
                    str(seq // 10),
                    self.stamp,
                    payload,
                    digest,
                )
            )
        nodes: list[tuple[int, int, bytes]] = []
        block = 1 << CHUNK_LEVEL
        if count == block and lo % block == 0:
            current = leaves
            for level in range(1, CHUNK_LEVEL + 1):
                current = [
                    sha256(b"\x01" + a + b).digest()
                    for a, b in zip(current[0::2], current[1::2], strict=True)
                ]
                first = lo >> level
                nodes += [(level, first + i, d) for i, d in enumerate(current)]
            self._push(CHUNK_LEVEL, current[0], lo >> CHUNK_LEVEL, nodes)
        else:
            for offset, digest in enumerate(leaves):
                self._push(0, digest, lo + offset, nodes)
        with transaction.atomic(), connection.cursor() as cursor:
            _insert_rows(cursor, _INSERT_ENTRY, rows)
            _insert_rows(cursor, _INSERT_NODE, nodes)
            self.size += count
            frontier = b"".join(d for _l, d in self.frontier)
            TreeHead.objects.update_or_create(
                pk=1, defaults={"size": self.size, "frontier": frontier}
            )


def build(total: int, checkpoints: int) -> str:
    """Build the ledger; returns the entries' time as their leaves state it."""
    builder = Builder()
    # Pin the signing key with a bare row: trusting it through audit.trust would append
    # an event and shift the blocks this builder aligns; ledger_verify's replay of key
    # events is not what this bench measures.
    key = keys.active_key()
    TrustedKey.objects.create(
        key_id=key.key_id,
        role="log",
        name=settings.FEDGOV_LEDGER_ORIGIN,
        public_key=keys.raw_public_bytes(key.public_key),
        valid_from=builder.now - timedelta(days=1),
        reason="bench",
        added_by="bench",
    )
    block = 1 << CHUNK_LEVEL
    every = max(total // checkpoints, 1)
    next_checkpoint = every
    actor = Actor.system("bench")
    while builder.size < total:
        builder.add(min(block, total - builder.size))
        if builder.size >= next_checkpoint or builder.size == total:
            checkpoint_create(actor=actor)
            next_checkpoint += every
    return builder.time


def _cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its reaped children (the worker
    processes); on PostgreSQL the server's own processes are not in it."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_hashing(total: int, time_text: str, cpu: list[float] | None = None) -> float:
    """Seconds of bare SHA-256 over exactly the inputs a verifier of ``total`` entries
    must hash: each entry's leaf input (0x00 and its leaf document, the same bytes the
    ledger's leaf hashes cover) and the tree's ``total - 1`` interior nodes (0x01 and two
    32-byte hashes: 65 bytes each). Inputs are built untimed, a block at a time, so that
    only hashing is on the clock."""
    elapsed = used = 0.0
    block = 1 << CHUNK_LEVEL
    for lo in range(0, total, block):
        inputs = [
            _leaf_input(seq, _payload(seq), time_text) for seq in range(lo, min(lo + block, total))
        ]
        began, cpu_began = time.perf_counter(), time.process_time()
        for data in inputs:
            sha256(data).digest()
        elapsed += time.perf_counter() - began
        used += time.process_time() - cpu_began
    node = bytes(range(65))
    began, cpu_began = time.perf_counter(), time.process_time()
    for _ in range(total - 1):
        sha256(node).digest()
    if cpu is not None:
        cpu.append(used + time.process_time() - cpu_began)
    return elapsed + time.perf_counter() - began


def time_hashing_65(calls: int) -> float:
    """The earlier, smaller baseline: ``calls`` hashes of 65 bytes, reported alongside."""
    data = bytes(range(65))
    began = time.perf_counter()
    for _ in range(calls):
        sha256(data).digest()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~2,000 entries, a CI smoke")
    parser.add_argument(
        "--entries", type=int, help="ledger size (default 1,000,000; 2,000 with --quick)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side")
    args = parser.parse_args()
    total, checkpoints = (2_000, 3) if args.quick else (1_000_000, 10)
    total = args.entries or total
    repeats = max(args.repeats, 1)

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    db = connection.settings_dict
    tmp = None
    if db["ENGINE"].endswith("sqlite3"):
        tmp = tempfile.mkdtemp(prefix="fedgov-bench-verify-db-")
        db.setdefault("TEST", {})["NAME"] = str(Path(tmp) / "bench.sqlite3")
    else:
        db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}_bench_verify"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        began = time.perf_counter()
        time_text = build(total, checkpoints)
        with connection.cursor() as cursor:
            # Planner statistics as autovacuum would leave them on a ledger this size.
            cursor.execute("ANALYZE")
        build_seconds = time.perf_counter() - began
        trusted = keys.public_keys()
        verify_times, hash_times, hash65_times = [], [], []
        verify_cpu: list[float] = []
        hash_cpu: list[float] = []
        for _ in range(repeats):
            began, cpu_began = time.perf_counter(), _cpu_seconds()
            report = verify_ledger(keys=trusted, origin=settings.FEDGOV_LEDGER_ORIGIN)
            verify_times.append(time.perf_counter() - began)
            verify_cpu.append(_cpu_seconds() - cpu_began)
            if not report.ok or report.size != total:
                raise SystemExit(f"the built ledger did not verify: {report.problems[:3]}")
            hash_times.append(time_hashing(total, time_text, hash_cpu))
            hash65_times.append(time_hashing_65(2 * total))
        # One run in a single process, for comparison with the worker processes' figure.
        began = time.perf_counter()
        single = verify_ledger(keys=trusted, origin=settings.FEDGOV_LEDGER_ORIGIN, workers=1)
        single_s = time.perf_counter() - began
        if not single.ok:
            raise SystemExit(
                f"the built ledger did not verify in one process: {single.problems[:3]}"
            )
        rng = random.Random(7)
        proof_times, proof_queries = [], []
        for _ in range(50):
            seq = rng.randrange(total)
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                selectors.inclusion(seq=seq, size=total)
                proof_times.append(time.perf_counter() - began)
            proof_queries.append(len(queries))
        verify_median = statistics.median(verify_times)
        hash_median = statistics.median(hash_times)
        ratio = verify_median / hash_median
        hash65_median = statistics.median(hash65_times)
        print(
            json.dumps(
                {
                    "bench": "ledger_verify",
                    "ratio": round(ratio, 3),
                    "target": "<= 2.0",
                    "ok": ratio <= 2.0 and max(proof_queries) <= 3,
                    "database": connection.vendor,
                    "entries": total,
                    "checkpoints": report.checkpoints,
                    "workers": report.workers,
                    "one_process_s": round(single_s, 3),
                    "one_process_ratio": round(single_s / hash_median, 3),
                    "verify_s": round(verify_median, 3),
                    "sha256_leaves_and_nodes_s": round(hash_median, 3),
                    "sha256_2n_65b_s": round(hash65_median, 3),
                    "ratio_vs_2n_65b": round(verify_median / hash65_median, 3),
                    # CPU seconds, not wall: what the check costs whatever else the machine
                    # runs. Above the wall ratio when the reading overlaps the hashing on a
                    # free core; on PostgreSQL it leaves out the server's own work.
                    "verify_cpu_s": round(statistics.median(verify_cpu), 3),
                    "sha256_cpu_s": round(statistics.median(hash_cpu), 3),
                    "cpu_ratio": round(
                        statistics.median(verify_cpu) / statistics.median(hash_cpu), 3
                    ),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                    "load_average_at_start": load_at_start,
                    "entries_per_s": round(total / verify_median),
                    "inclusion_proof_ms": round(1000 * statistics.median(proof_times), 3),
                    "inclusion_proof_queries": max(proof_queries),
                    "inclusion_queries_target": "<= 3",
                    "peak_rss_mb": round(
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                    ),
                    "build_s": round(build_seconds, 1),
                    "repeats": repeats,
                }
            )
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if tmp:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
