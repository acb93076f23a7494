"""The site's record of tickets it has used: one use per ticket, across restarts.

Each ticket's id (SHA-256 of its signed body) is written to a file on the site's disk
before the handler runs, so a crash in the middle of training still counts as a use.
Writes are atomic and durable: a new file is written, fsync'd and renamed over the old
one, then the directory is fsync'd (rename(2) is atomic on POSIX; without the fsyncs a
power loss could bring back the older file). Concurrent ClientApp processes of one
SuperNode serialise on an ``flock`` beside the file. Stdlib only.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path

from fedgov_flower.ticket import TicketRefused

_ID = re.compile(r"^[0-9a-f]{64}$")


class UsedTickets:
    """A file of used ticket ids (one per line) with a claim that refuses a second use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _read(self) -> set[str]:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return set()
        ids = set()
        for line in text.splitlines():
            if not _ID.match(line):
                # A damaged store must not silently forget uses: refuse everything.
                raise TicketRefused("used_store_damaged", f"{self.path} has a malformed line")
            ids.add(line)
        return ids

    def __contains__(self, ticket_id: str) -> bool:
        return ticket_id in self._read()

    def claim(self, ticket_id: str) -> None:
        """Record ``ticket_id`` as used; raise ``TicketRefused("ticket_used")`` if it was."""
        if not _ID.match(ticket_id):
            raise ValueError("a ticket id is 64 lowercase hex digits")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = self._read()
            if ticket_id in used:
                raise TicketRefused("ticket_used", "this ticket was already used at this site")
            used.add(ticket_id)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".used-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write("".join(f"{i}\n" for i in sorted(used)))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
