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
from fedgov.processes import Found, reap_orphans


def _program(command: str) -> str:
    # Program names only: the rest of argv can carry node config, paths and addresses.
    words = [PurePath(w).name for w in command.split()[:2]]
    if len(words) == 2 and words[0].startswith("python"):
        return f"{words[0]} {words[1]}"[:64]
    return (words[0] if words else "?")[:64]


def orphans_reap(*, actor: Actor) -> list[Found]:
    """End every process fedgov started whose owner is gone; returns what was ended.

    Writes one ``processes.orphans_reaped`` event (host, count, pid and program of each)
    when there was anything to end, and nothing otherwise.
    """
    found = reap_orphans()
    if found:
        with transaction.atomic(durable=True):
            ledger_append(
                event_type="processes.orphans_reaped",
                actor=actor,
                subject_type="host",
                subject_id=socket.gethostname()[:64] or "localhost",
                payload={
                    "count": len(found),
                    "processes": [{"pid": p.pid, "program": _program(p.command)} for p in found],
                },
            )
    return found
