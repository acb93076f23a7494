"""No process fedgov starts outlives the fedgov process that owns it (Linux, /proc).

Every outside process fedgov starts (SuperLink, SuperNodes, the stand-in's SuperNode
"VMs", the demo's site witnesses and TSA) carries ``FEDGOV_PROCESS_OWNER=<pid>:<start
time>`` in its environment. Flower starts its own helpers (SuperExec, ServerApp,
ClientApp) with ``subprocess.Popen`` and the inherited environment, some in sessions of
their own, so the mark reaches every descendant wherever it sits in the process tree,
which process groups alone do not.

Two things act on the mark:
- a watchdog, one per owner, started with the owner's first child: it polls the owner
  and, once the owner is gone (a ``kill -9`` included), ends every process bearing its
  mark, then exits;
- ``reap_orphans()``, which a restart calls: it ends every marked process whose owner is
  gone, whoever owned it (the watchdog may have been killed too).

The start time in the mark keeps a recycled pid from passing for the owner. Standard
library only: the watchdog runs this file as a script, without Django.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

OWNER_ENV = "FEDGOV_PROCESS_OWNER"
TERM_GRACE_SECONDS = 3.0
WATCH_INTERVAL_SECONDS = 0.2
PROC = Path("/proc")


@dataclass(frozen=True)
class Found:
    """A marked process: its pid, its owner's mark and the start of its command line."""

    pid: int
    owner: str
    command: str


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields resume after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its exit status is left
        return None
    return fields[19]


def mark_of(pid: int) -> str | None:
    start = _start_time(pid)
    return f"{pid}:{start}" if start is not None else None


def owner_alive(mark: str) -> bool:
    pid_text, _, start = mark.partition(":")
    if not (pid_text.isascii() and pid_text.isdigit()):
        return False
    return _start_time(int(pid_text)) == start


def marked_processes() -> Iterator[Found]:
    """Every live process bearing an owner mark, except this one."""
    needle = OWNER_ENV.encode() + b"="
    me = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for item in environ.split(b"\0"):
            if item.startswith(needle):
                owner = item[len(needle) :].decode(errors="replace")
                yield Found(int(entry.name), owner, command.decode(errors="replace").strip())
                break


def terminate(found: list[Found], *, grace: float = TERM_GRACE_SECONDS) -> None:
    """SIGTERM each process, SIGKILL whichever is still there after ``grace`` seconds."""
    for process in found:
        _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_start_time(p.pid) for p in found):
        time.sleep(0.05)
    for process in found:
        if _start_time(process.pid) is not None:
            _signal(process.pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def reap_orphans(*, grace: float = TERM_GRACE_SECONDS) -> list[Found]:
    """End every marked process whose owner is gone; returns what it ended."""
    orphans = [p for p in marked_processes() if not owner_alive(p.owner)]
    terminate(orphans, grace=grace)
    return orphans


_watchdog: subprocess.Popen | None = None


def owned_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with this process's owner mark, the watchdog started if it is not yet.

    Pass the result as a child's environment; the child and everything it starts is then
    ended when this process ends, however it ends.
    """
    global _watchdog
    mark = mark_of(os.getpid())
    assert mark is not None  # this process is alive
    if _watchdog is None or _watchdog.poll() is not None:
        clean = {k: v for k, v in os.environ.items() if k != OWNER_ENV}
        _watchdog = subprocess.Popen(
            # -I: isolated, the standard library only; this file imports nothing else.
            [sys.executable, "-I", str(Path(__file__).resolve()), "watch", mark]
            + ([str(records)] if (records := record_dir()) is not None else []),
            env=clean,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C to the owner's terminal must not end the watchdog
            # before the owner's own cleanup has run.
            start_new_session=True,
        )
    return {**env, OWNER_ENV: mark}


def record_dir() -> Path | None:
    """Where watchdogs leave what they ended (``<VAR_DIR>/processes``), with Django set up."""
    try:
        from django.conf import settings

        return Path(settings.VAR_DIR) / "processes"
    except Exception:
        return None


def record_path(records: Path, mark: str) -> Path:
    return records / f"reaped-{mark.replace(':', '-')}.json"


def watch(mark: str, records: Path | None = None) -> None:
    """Wait for the owner to go, then end every process bearing its mark.

    With ``records``, what it ended is written there as JSON for the restart to put in
    the ledger (``training.services.processes.orphans_reap``): this script has no
    database, and a cleanup nobody records is one the ledger cannot show.
    """
    while owner_alive(mark):
        time.sleep(WATCH_INTERVAL_SECONDS)
    ended = [p for p in marked_processes() if p.owner == mark]
    terminate(ended)
    if ended and records is not None:
        with contextlib.suppress(OSError):
            records.mkdir(parents=True, exist_ok=True)
            path = record_path(records, mark)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(
                json.dumps({"owner": mark, "processes": [[p.pid, p.command] for p in ended]}),
                encoding="utf-8",
            )
            os.replace(tmp, path)


def watchdog_records(records: Path) -> Iterator[tuple[Path, list[Found]]]:
    """The records watchdogs left in ``records``: each file with the processes it ended."""
    for path in sorted(records.glob("reaped-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found = [
                Found(int(pid), str(data["owner"]), str(cmd)) for pid, cmd in data["processes"]
            ]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half-written by a watchdog killed mid-way: os.replace makes it rare
        yield path, found


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "watch":
        watch(sys.argv[2], Path(sys.argv[3]) if len(sys.argv) == 4 else None)
    else:
        sys.exit("usage: processes.py watch PID:START [RECORD_DIR]")
