"""Supervised local Flower processes: a SuperLink and one SuperNode per site, by process group.

Each process starts in its own session (its own process group), so stopping it signals
the whole group: the ``flwr-clientapp`` and ``flwr-serverapp`` children a SuperNode or a
SuperLink spawns go down with it, even one that ignores SIGTERM (SIGKILL follows). Pid
files and logs live under ``<var>/flower/``. No Django here: the e2e test and the
benchmarks use it directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedgov.processes import owned_env

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
APP_DIR = Path(__file__).resolve().parent / "app"


@dataclass(frozen=True)
class SiteNode:
    """One site's SuperNode: its fedgov identity and its ClientAppIo port."""

    site_id: int
    slug: str
    port: int


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


TUNING_DIR = Path(__file__).resolve().parent / "tuning"


def tuned_env(poll: float = 0.1) -> dict[str, str]:
    """Extra environment for a tuned local federation: short polls everywhere Flower allows.

    The SuperExec's task poll has its own setting; the SuperNode's and the ServerApp grid's
    3 s sleeps are capped by ``tuning/sitecustomize.py`` (see there).
    """
    return {
        "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": str(poll),
        "FEDGOV_FLOWER_POLL_CAP": str(poll),
        "FEDGOV_FLOWER_TUNED": "1",
    }


def flower_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every Flower process: no telemetry, no update check, our code importable."""
    env = dict(os.environ)
    extra = extra or {}
    paths = [str(REPO_ROOT), env.get("PYTHONPATH", "")]
    if extra.get("FEDGOV_FLOWER_TUNED") == "1":
        paths.insert(0, str(TUNING_DIR))
    env.update(
        {
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            # The SuperLink and SuperNodes spawn flower-superexec and flwr-* by name.
            "PATH": os.pathsep.join(p for p in (str(BIN_DIR), env.get("PATH", "")) if p),
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        }
    )
    env.update(extra)
    return env


def federation_specs(
    *,
    base_port: int,
    sites: Iterable[SiteNode],
    public_key_b64: str,
    api_url: str,
    site_tokens: dict[str, str] | None = None,
    service_token: str = "",
    cache_dir: Path,
    extra_env: dict[str, str] | None = None,
    tls: Any = None,
    node_keys: dict[str, Any] | None = None,
) -> list[ProcessSpec]:
    """A SuperLink on ``base_port`` and one local SuperNode per site.

    Insecure by default; with ``tls`` (an ``admission.LocalPki``) and ``node_keys`` (slug →
    ``admission.SupernodeKey``) the SuperLink serves TLS and admits only registered
    SuperNode keys (``--enable-supernode-auth``). ``extra_env`` goes to every process
    (``tuned_env()`` for the tuned deployment).
    """
    common = dict(extra_env or {})
    if tls is not None:
        link_security = [
            "--ssl-certfile", str(tls.server_cert),
            "--ssl-keyfile", str(tls.server_key),
            "--ssl-ca-certfile", str(tls.ca_cert),
            "--enable-supernode-auth",
        ]  # fmt: skip
    else:
        link_security = ["--insecure"]
    specs = [
        ProcessSpec(
            "superlink",
            [
                str(BIN_DIR / "flower-superlink"),
                *link_security,
                "--host", "127.0.0.1",
                "--port", str(base_port),
                # Without this the SuperLink runs `uv sync` and may fetch a CUDA torch.
                "--disable-runtime-dependency-installation",
            ],
            # The ServerApp the SuperLink spawns inherits this; never put it in run config.
            {**common, **({"FEDGOV_SERVICE_TOKEN": service_token} if service_token else {})},
        )
    ]  # fmt: skip
    for site in sites:
        node_config = (
            f'fedgov-site-id={site.site_id} fedgov-site="{site.slug}" '
            f'fedgov-public-key="{public_key_b64}" fedgov-api="{api_url}" '
            f'fedgov-cache-dir="{cache_dir}"'
        )
        if tls is not None:
            key = (node_keys or {})[site.slug]
            node_security = [
                "--root-certificates", str(tls.ca_cert),
                "--auth-supernode-private-key", str(key.private_key),
            ]  # fmt: skip
        else:
            node_security = ["--insecure"]
        env = dict(common)
        if site_tokens and site.slug in site_tokens:
            env["FEDGOV_SITE_TOKEN"] = site_tokens[site.slug]
        specs.append(
            ProcessSpec(
                f"supernode-{site.slug}",
                [
                    str(BIN_DIR / "flower-supernode"),
                    *node_security,
                    "--superlink", f"127.0.0.1:{base_port}",
                    "--host", "127.0.0.1",
                    "--port", str(site.port),
                    "--node-config", node_config,
                ],
                env,
            )
        )  # fmt: skip
    return specs


class Supervisor:
    """Starts, stops and reports on named process groups; state in ``<state_dir>``.

    ``owned`` (the default) ties every process to this one's life (``fedgov.processes``):
    they end when it ends, however it ends. ``manage.py flower up`` without
    ``--foreground`` starts daemons on purpose and passes ``owned=False``.
    """

    def __init__(self, state_dir: Path, *, owned: bool = True) -> None:
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.owned = owned

    def _pid_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    def start(self, spec: ProcessSpec) -> int:
        if self.alive(spec.name):
            raise RuntimeError(f"{spec.name} already runs (pid {self.pid(spec.name)})")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{spec.name}.log").open("ab")
        try:
            process = subprocess.Popen(
                spec.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(spec),
                cwd=self.state_dir,
                start_new_session=True,
            )
        finally:
            log.close()
        self._pid_file(spec.name).write_text(
            json.dumps({"pid": process.pid, "argv": spec.argv[:1]})
        )
        return process.pid

    def _env(self, spec: ProcessSpec) -> dict[str, str]:
        env = flower_env(spec.env)
        # Marked as ours: a watchdog ends it, and all it starts, if we die first.
        return owned_env(env) if self.owned else env

    def pid(self, name: str) -> int | None:
        try:
            return int(json.loads(self._pid_file(name).read_text())["pid"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def names(self) -> list[str]:
        if not self.state_dir.is_dir():
            return []
        return sorted(p.stem for p in self.state_dir.glob("*.pid"))

    def alive(self, name: str) -> bool:
        pid = self.pid(name)
        if pid is None:
            return False
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self, name: str, *, grace: float = 5.0) -> None:
        """SIGTERM the process groups, wait up to ``grace`` seconds, then SIGKILL them.

        The groups are the process's own and those of its descendants: the SuperLink
        starts its SuperExec in a new session, outside our group.
        """
        pid = self.pid(name)
        if pid is not None:
            groups = {pid} | {_pgid(child) for child in _descendants(pid)}
            groups.discard(None)
            for group in groups:
                _signal_group(group, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(_group_exists(g) for g in groups):
                _reap(pid)
                time.sleep(0.1)
            for group in groups:
                if _group_exists(group):
                    _signal_group(group, signal.SIGKILL)
            for _ in range(50):
                _reap(pid)
                if not any(_group_exists(g) for g in groups):
                    break
                time.sleep(0.1)
        self._pid_file(name).unlink(missing_ok=True)

    def stop_all(self, *, grace: float = 5.0) -> None:
        # SuperNodes first, so none of them reconnects to a SuperLink that is going away.
        for name in sorted(self.names(), key=lambda n: n == "superlink"):
            self.stop(name, grace=grace)

    def status(self) -> dict[str, dict]:
        return {name: {"pid": self.pid(name), "alive": self.alive(name)} for name in self.names()}


def _parents() -> dict[int, int]:
    """pid → parent pid for every process, read from /proc (Linux)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields resume after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def _descendants(pid: int) -> set[int]:
    parents = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _reap(pid: int) -> None:
    # A leader we started is our child: reap it, or it stays a zombie in its group.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def free_port_block(count: int, *, first: int = 18500, last: int = 18599) -> int:
    """The first port of ``count`` consecutive free ports in ``first..last``.

    Two test sessions on one machine must not fight over the SuperLink's port; a small
    race stays possible between this probe and the bind, so callers start at once.
    """
    for base in range(first, last - count + 2):
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports in {first}..{last}")


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def write_flwr_home(home: Path, *, name: str, port: int) -> Path:
    """A private FLWR_HOME whose config names our SuperLink (never the user's ~/.flwr)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    return home


def flwr_run(
    *,
    home: Path,
    connection: str,
    run_config: dict[str, object],
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    app_dir: Path | None = None,
) -> str:
    """Submit the app (fedgov's demo, or ``app_dir``) with ``flwr run``; returns its output
    (the run id is in it)."""

    def toml_value(value: object) -> str:
        return (
            json.dumps(value)
            if isinstance(value, str)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )

    overrides = " ".join(f"{k}={toml_value(v)}" for k, v in run_config.items())
    command = [str(BIN_DIR / "flwr"), "run", str(app_dir or APP_DIR), connection]
    result = subprocess.run(
        [*command, "--run-config", overrides],
        env=flower_env({"FLWR_HOME": str(home), **(env or {})}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"flwr run failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result.stdout


def flwr_run_status(*, home: Path, connection: str, run_id: str, timeout: float = 30.0) -> str:
    """The status Flower gives a run (``flwr ls --run-id N --format json``), e.g.
    ``finished:completed``; "" when it cannot be read."""
    result = subprocess.run(
        [str(BIN_DIR / "flwr"), "ls", connection, "--run-id", str(run_id), "--format", "json"],
        env=flower_env({"FLWR_HOME": str(home)}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        runs = json.loads(result.stdout).get("runs", [])
    except (ValueError, AttributeError):
        return ""
    return str(runs[0].get("status", "")) if runs else ""
