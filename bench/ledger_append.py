"""Benchmark: ledger appends/s vs django-auditlog LogEntry inserts/s, same run, same database.

Prints one JSON line; ``ratio`` = median ledger appends/s / median auditlog inserts/s in
the batched mode (a batch of events in one transaction, still one Merkle leaf, one
subtree update and one canonical-JSON payload per event; auditlog gets ``bulk_create`` of
the same rows). The single mode (one event per transaction, the path a service takes) is
reported beside it. Target >= 1.0. Uses a throw-away database: a temporary SQLite file,
or ``<name>_bench_append`` on the PostgreSQL named by ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
os.environ.setdefault("FEDGOV_VAR_DIR", tempfile.mkdtemp(prefix="fedgov-bench-append-"))

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from audit import events  # noqa: E402
from audit.services import LedgerEvent, ledger_append, ledger_append_many  # noqa: E402
from fedgov.actors import Actor  # noqa: E402

# The benchmark's own event type, in the catalogue so the append pays its check.
EVENT = events.register(
    events.EventType(
        "bench.rule_evaluated",
        "One rule result of a benchmark gate.",
        required=("round_id", "site_id", "rule", "ok", "article", "inputs_sha256"),
    )
).name


def _payload(i: int) -> dict:
    # What a gate decision or consent event records: ids, a verdict, a hash.
    return {
        "round_id": i // 10,
        "site_id": i % 10,
        "rule": "consent",
        "ok": i % 7 != 0,
        "article": "6(1)(a)",
        "inputs_sha256": f"{i:064x}",
    }


def run_ledger(start: int, count: int, batch: int, actor: Actor) -> float:
    began = time.perf_counter()
    if batch == 1:
        for i in range(start, start + count):
            with transaction.atomic():
                ledger_append(
                    event_type=EVENT,
                    actor=actor,
                    subject_type="round",
                    subject_id=i // 10,
                    payload=_payload(i),
                )
    else:
        for lo in range(start, start + count, batch):
            events = [
                LedgerEvent(EVENT, "round", i // 10, _payload(i))
                for i in range(lo, min(lo + batch, start + count))
            ]
            with transaction.atomic():
                ledger_append_many(actor=actor, events=events)
    return count / (time.perf_counter() - began)


def run_auditlog(start: int, count: int, batch: int, content_type) -> float:
    from auditlog.models import LogEntry

    def row(i: int) -> LogEntry:
        return LogEntry(
            content_type=content_type,
            object_pk=str(i // 10),
            object_id=i // 10,
            object_repr=f"round {i // 10}",
            action=LogEntry.Action.CREATE,
            changes=_payload(i),
        )

    began = time.perf_counter()
    if batch == 1:
        for i in range(start, start + count):
            with transaction.atomic():
                row(i).save()
    else:
        for lo in range(start, start + count, batch):
            with transaction.atomic():
                LogEntry.objects.bulk_create(
                    [row(i) for i in range(lo, min(lo + batch, start + count))]
                )
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a CI smoke")
    args = parser.parse_args()
    count, rounds, batch = (300, 3, 100) if args.quick else (3000, 5, 100)

    db = connection.settings_dict
    tmp = None
    if db["ENGINE"].endswith("sqlite3"):
        tmp = tempfile.mkdtemp(prefix="fedgov-bench-append-db-")
        db.setdefault("TEST", {})["NAME"] = str(Path(tmp) / "bench.sqlite3")
    else:
        db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}_bench_append"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from django.contrib.contenttypes.models import ContentType

        content_type = ContentType.objects.get_for_model(ContentType)
        actor = Actor.system("bench")
        rates: dict[str, dict[str, list[float]]] = {
            mode: {"ledger": [], "auditlog": []} for mode in ("single", "batch")
        }
        position = 0
        for _round in range(rounds):
            for mode, size in (("single", 1), ("batch", batch)):
                # One commit per event is bound by the disk's fsync on both sides; fewer
                # events keep that mode's run short without changing its rate.
                events = count if size > 1 else max(count // 10, 20)
                # Alternate who goes first so neither side always meets a warmer cache.
                order = ("ledger", "auditlog") if _round % 2 == 0 else ("auditlog", "ledger")
                for side in order:
                    if side == "ledger":
                        rate = run_ledger(position, events, size, actor)
                    else:
                        rate = run_auditlog(position, events, size, content_type)
                    rates[mode][side].append(rate)
                position += events
        medians = {
            mode: {side: statistics.median(values) for side, values in sides.items()}
            for mode, sides in rates.items()
        }
        ratio = medians["batch"]["ledger"] / medians["batch"]["auditlog"]
        single_ratio = medians["single"]["ledger"] / medians["single"]["auditlog"]
        print(
            json.dumps(
                {
                    "bench": "ledger_append",
                    "ratio": round(ratio, 3),
                    "target": ">= 1.0",
                    "ok": ratio >= 1.0,
                    "database": connection.vendor,
                    "batch_events_per_round": count,
                    "single_events_per_round": max(count // 10, 20),
                    "rounds": rounds,
                    "batch_size": batch,
                    "batch_ledger_per_s": round(medians["batch"]["ledger"]),
                    "batch_auditlog_per_s": round(medians["batch"]["auditlog"]),
                    "single_ledger_per_s": round(medians["single"]["ledger"]),
                    "single_auditlog_per_s": round(medians["single"]["auditlog"]),
                    "single_ratio": round(single_ratio, 3),
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
