"""Exclusive claims on a piece of work, held only as long as their holder lives.

A claim by timing (a lease that expires) either lets two workers in at once or keeps a
dead worker's work blocked until it runs out. These claims end with their holder:
- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``), released on unlock or
  when the connection ends, which a killed worker's connection does;
- SQLite: an ``flock`` on a file beside the database, released on unlock or when the
  process ends. SQLite's own locking is per file, on one host, and so is this.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection


def _pg_keys(name: str, key: int) -> tuple[int, int]:
    # The two-int form: a namespace per name, the key in the second int (both int4).
    # Ids past 2**31 wrap; two ids sharing a lock only ever makes one of them wait.
    namespace = zlib.crc32(name.encode()) - 2**31
    return namespace, (key % 2**32) - 2**31


def _lock_dir() -> Path:
    name = str(settings.DATABASES["default"].get("NAME", ""))
    if name and ":memory:" not in name and "mode=memory" not in name:
        return Path(name).resolve().parent / "locks"
    return Path(settings.VAR_DIR) / "locks"


@contextlib.contextmanager
def exclusive(name: str, key: int) -> Iterator[bool]:
    """Hold the claim ``(name, key)`` for the block if nobody holds it; yields whether we do.

    Never waits: a caller that did not get the claim sees ``False`` at once.
    """
    if connection.vendor == "postgresql":
        keys = _pg_keys(name, key)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", keys)
            held = bool(cursor.fetchone()[0])
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", keys)
        return
    directory = _lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{name}-{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases its flock
