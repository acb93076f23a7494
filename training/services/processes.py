"""Outside processes left by a crash: found, ended, and told to the ledger.

``fedgov.processes`` marks every process fedgov starts with its owner; a watchdog ends
them when the owner dies. This service is the restart's half: whatever is still marked
with a dead owner (the watchdog was killed too, or the machine was busy) is ended here,
and the ledger records that it happened.
"""

from __future__ import annotations

import socket
from pathlib import PurePath

from django.db import transaction

from audit.services import ledger_append
from fedgov.actors import Actor
from fedgov.processes import Found, reap_orphans, record_dir, watchdog_records


def program_name(command: str) -> str:
    """The program a command line runs, without its arguments (for the ledger and logs)."""
    # Program names only: the rest of argv can carry node config, paths and addresses.
    words = [PurePath(w).name for w in command.split()[:3]]
    if len(words) == 3 and words[0].startswith("python") and words[1] == "-m":
        # A module run as a program (the witness, the TSA): its module name says which.
        return " ".join(words)[:64]
    if len(words) >= 2 and words[0].startswith("python"):
        return f"{words[0]} {words[1]}"[:64]
    return (words[0] if words else "?")[:64]


def orphans_reap(*, actor: Actor) -> list[Found]:
    """End every process fedgov started whose owner is gone; returns what was ended.

    Writes one ``processes.orphans_reaped`` event (host, count, owner pids, pid and
    program of each, ``by``: "restart") when there was anything to end, and one more
    (``by``: "watchdog") per record a watchdog left of what it ended when its owner
    died; nothing otherwise. Returns both.
    """
    found = reap_orphans()
    host = socket.gethostname()[:64] or "localhost"
    if found:
        with transaction.atomic(durable=True):
            _record(actor, host, found, by="restart")
    # What watchdogs ended when their owner died is recorded now, once, then forgotten.
    records = record_dir()
    for path, ended in watchdog_records(records) if records is not None else ():
        with transaction.atomic(durable=True):
            _record(actor, host, ended, by="watchdog")
        # After the commit: a crash in between records it twice, never not at all.
        path.unlink(missing_ok=True)
        found = [*found, *ended]
    return found


def _record(actor: Actor, host: str, found: list[Found], *, by: str) -> None:
    ledger_append(
        event_type="processes.orphans_reaped",
        actor=actor,
        subject_type="host",
        subject_id=host,
        payload={
            "count": len(found),
            "by": by,
            "owner_pids": sorted({int(p.owner.partition(":")[0] or 0) for p in found}),
            "processes": [{"pid": p.pid, "program": program_name(p.command)} for p in found],
        },
    )
