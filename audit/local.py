"""One witness per site and a timestamp authority, as separate local processes (the demo).

Each site's witness is ``python -m audit.witness`` in its own process with its own key and
state file under ``folder/witnesses/<site>/`` (kept across demo runs, as a site would keep
them), pinned by fedgov through ``audit.trust`` (a ledger event, once per key). The TSA is
``python -m audit.tsa_responder`` (OpenSSL's RFC 3161 responder). The caller's settings
then name them: ``FEDGOV_WITNESSES`` with a majority quorum, ``FEDGOV_TSA_URL`` and the
pinned TSA CA. A process that does not start is reported and left out: witnessing and
timestamping delay, they never block the federation.

Both carry their starter's owner mark (``fedgov.processes.owned_env``), as the Flower
processes do: killed outright (``kill -9``), ``manage.py federate`` cannot run ``stop``,
and its witnesses and TSA would serve on, one set more per crash. The starter's watchdog
ends them, and a restart or the beat sweep ends any the watchdog missed, with a ledger
event either way (``training.services.processes.orphans_reap``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from audit import keys, note, trust
from audit.choices import KeyRole
from audit.witness import cosigner_vkey, load_or_create_key
from fedgov.actors import Actor
from fedgov.processes import owned_env

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 10.0


@dataclass
class LocalEvidence:
    """The running processes and what the settings should name."""

    witnesses: list[tuple[str, str]] = field(default_factory=list)
    quorum: int = 0
    tsa_url: str = ""
    tsa_ca: Path | None = None
    problems: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _spawn(args: list[str], lines: int) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``python -m ...`` and read its first ``lines`` lines of output (vkey, address)."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env=owned_env(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    out = []
    for _ in range(lines):
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            process.kill()
            process.wait()
            raise OSError(f"{args[0]} exited before it was listening")
        out.append(line.strip())
    return process, out


def _pin(name: str, key: Ed25519PrivateKey, actor: Actor) -> None:
    raw = note.raw_public(key.public_key())
    for view in trust.trusted(KeyRole.WITNESS):
        if view.name == name and note.raw_public(view.public_key) == raw:
            return
    trust.key_trust(
        actor=actor,
        role=KeyRole.WITNESS,
        name=name,
        public_key=key.public_key(),
        reason=f"the witness {name} runs on its site's own machine (demo)",
    )


def start(folder: Path, sites: list[str], *, actor: Actor) -> LocalEvidence:
    """Start one witness per site and a TSA; returns them, running (call ``stop``)."""
    evidence = LocalEvidence()
    log_vkey = note.verifier_key(settings.FEDGOV_LEDGER_ORIGIN, keys.active_key().public_key)
    for slug in sites:
        home = folder / "witnesses" / slug
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{slug}.{settings.FEDGOV_LEDGER_ORIGIN.split('/')[0]}/witness"
        key = load_or_create_key(home / "key.pem")
        try:
            process, (vkey, listening) = _spawn(
                [
                    "audit.witness",
                    *("--name", name, "--key", str(home / "key.pem")),
                    *("--state", str(home / "state.json")),
                    *("--refusals", str(home / "refusals.jsonl")),
                    *("--log", log_vkey, "--listen", "127.0.0.1:0"),
                ],
                2,
            )
        except OSError as exc:
            evidence.problems.append(f"witness of {slug} did not start: {exc}")
            continue
        evidence.processes.append(process)
        if vkey != cosigner_vkey(name, key.public_key()):
            evidence.problems.append(f"witness of {slug} runs another key than {home}")
            continue
        _pin(name, key, actor)
        evidence.witnesses.append((name, listening.split()[-1]))
    # A majority of the sites' witnesses: no one site can withhold witnessing alone.
    evidence.quorum = len(evidence.witnesses) // 2 + 1 if evidence.witnesses else 0
    tsa_home = folder / "tsa"
    try:
        process, (listening,) = _spawn(["audit.tsa_responder", "--dir", str(tsa_home)], 1)
    except OSError as exc:
        evidence.problems.append(f"the TSA did not start: {exc}")
    else:
        evidence.processes.append(process)
        evidence.tsa_url = listening.split()[1]
        evidence.tsa_ca = tsa_home / "ca.pem"
    return evidence


@contextlib.contextmanager
def running(
    folder: Path, sites: list[str], *, actor: Actor, override: Callable[[str, Any], None]
) -> Iterator[LocalEvidence]:
    """``start`` them, name them in the settings through ``override(name, value)``, and stop
    them on exit."""
    evidence = start(folder, sites, actor=actor)
    try:
        override("FEDGOV_WITNESSES", evidence.witnesses)
        override("FEDGOV_WITNESS_QUORUM", evidence.quorum)
        if evidence.tsa_url:
            override("FEDGOV_TSA_URL", evidence.tsa_url)
            override("FEDGOV_TSA_CERT_FILES", [evidence.tsa_ca])
        yield evidence
    finally:
        evidence.stop()
