"""Process driver: run a VM's SuperNode as a local process, as the Flower appliance would.

When a stand-in VM reaches RUNNING, the driver starts ``flower-supernode`` from exactly that
VM's CONTEXT, in its own process group with its log under the stand-in's var dir; when the
VM leaves RUNNING, or the stand-in stops, it kills the whole group (SIGTERM, then SIGKILL,
because a ``flwr-clientapp`` child has been seen to ignore SIGTERM).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from fedgov.processes import owned_env

logger = logging.getLogger("fedgov.opennebula.standin")

TERM_GRACE_SECONDS = 5.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def supernode_command(
    context: Mapping[str, str], clientappio_port: int, executable: str = "flower-supernode"
) -> list[str]:
    """The command the Flower appliance runs for this CONTEXT (flwr 1.42 flags)."""
    superlink = context.get("ONEAPP_FL_SUPERLINK_ADDRESS", "")
    if not superlink:
        raise ValueError("CONTEXT has no ONEAPP_FL_SUPERLINK_ADDRESS")
    command = [executable]
    if str(context.get("ONEAPP_FL_TLS_ENABLED", "NO")).upper() not in {"YES", "TRUE", "1"}:
        command.append("--insecure")
    command += ["--superlink", superlink]
    # flwr 1.42 calls the ClientAppIo endpoint the "Runtime HTTP API" (--host/--port).
    command += ["--host", "127.0.0.1", "--port", str(clientappio_port)]
    site_id = str(context.get("FEDGOV_SITE_ID", "")).replace("'", "").replace('"', "")
    # ``site-id`` as the appliance sets it; ``fedgov-site-id`` is what fedgov's client mod reads.
    node_config = f"site-id='{site_id}' fedgov-site-id=\"{site_id}\""
    # The app's own node config for this site (``federate --app``: e.g. partition-id=0),
    # as Flower's ``--node-config`` text; fedgov's keys come first and cannot be replaced.
    extra = str(context.get("FEDGOV_NODE_CONFIG", "")).strip()
    if extra:
        node_config = f"{node_config} {extra}"
    command += ["--node-config", node_config]
    return command


def supernode_env(context: Mapping[str, str], cache_dir: Path) -> dict[str, str]:
    """The process environment: the VM's CONTEXT, as one-context exports it inside a VM.

    Built from scratch rather than inherited, so a SuperNode never sees fedgov's own
    secrets (zone credentials, database URL) that a real VM would not have either.
    """
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": os.environ.get("HOME", str(cache_dir)),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": str(REPO_ROOT),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FEDGOV_CACHE_DIR": str(cache_dir),
    }
    env.update({str(k): str(v) for k, v in context.items()})
    return env


def _default_executable() -> str:
    beside = Path(sys.executable).with_name("flower-supernode")
    return (
        str(beside) if beside.exists() else (shutil.which("flower-supernode") or "flower-supernode")
    )


class ProcessDriver:
    """Starts and stops one SuperNode process per (zone, VM)."""

    def __init__(self, log_dir: Path, ports: tuple[int, int], executable: str | None = None):
        self.log_dir = Path(log_dir)
        self.ports = ports
        self.executable = executable or _default_executable()
        self._procs: dict[tuple[int, int], subprocess.Popen] = {}
        self._lock = threading.Lock()

    def _free_port(self) -> int:
        used = {
            int(p.args[p.args.index("--port") + 1])
            for p in self._procs.values()
            if p.poll() is None
        }
        for port in range(self.ports[0], self.ports[1] + 1):
            if port in used:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise RuntimeError(f"no free port in {self.ports[0]}-{self.ports[1]}")

    def start(self, zone_id: int, vm_id: int, context: Mapping[str, str]) -> int | None:
        """Start the VM's SuperNode; returns its pid, or None when the context is unusable."""
        with self._lock:
            key = (zone_id, vm_id)
            if key in self._procs and self._procs[key].poll() is None:
                return self._procs[key].pid
            try:
                command = supernode_command(context, self._free_port(), self.executable)
            except (ValueError, RuntimeError) as exc:
                logger.warning("zone %s VM %s: SuperNode not started: %s", zone_id, vm_id, exc)
                return None
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"zone{zone_id}-vm{vm_id}.log"
            cache_dir = self.log_dir / "cache" / f"zone{zone_id}-vm{vm_id}"
            cache_dir.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    command,
                    # The stand-in's "VMs" live and die with the process hosting it.
                    env=owned_env(supernode_env(context, cache_dir)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=self.log_dir,
                )
            self._procs[key] = proc
            logger.info("zone %s VM %s: SuperNode pid %s", zone_id, vm_id, proc.pid)
            return proc.pid

    def pid(self, zone_id: int, vm_id: int) -> int | None:
        proc = self._procs.get((zone_id, vm_id))
        return proc.pid if proc is not None else None

    def stop(self, zone_id: int, vm_id: int) -> None:
        with self._lock:
            proc = self._procs.pop((zone_id, vm_id), None)
        if proc is not None:
            _kill_group(proc)

    def stop_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
            self._procs.clear()
        for proc in procs:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    pgid = proc.pid  # start_new_session made the SuperNode its group's leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_SECONDS
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # Children (flwr-clientapp) may outlive or ignore SIGTERM: finish the whole group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=TERM_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        logger.error("SuperNode pid %s did not exit after SIGKILL", proc.pid)
