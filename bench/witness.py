"""Benchmark: what witnessing adds per checkpoint, with 4 witness processes on loopback.

Starts four ``python -m audit.witness`` processes (each its own key and state file),
pins their keys, and per round appends a batch of entries, signs a checkpoint, then asks
the four witnesses to cosign it (``audit.witnessing.checkpoint_witness``: one
add-checkpoint request each, in parallel, with a consistency proof from the size each
last cosigned, and each cosignature verified and stored). Prints one JSON line:
``witness_ms`` is the median time of that call, the overhead a checkpoint gains;
``ratio`` = witness_ms / 50 ms, target <= 1.0. ``checkpoint_ms`` (signing, with the
verify-before-sign check) is reported for scale. Uses a throw-away SQLite database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "fedgov.settings"
os.environ.setdefault("FEDGOV_VAR_DIR", tempfile.mkdtemp(prefix="fedgov-bench-witness-"))

import django

django.setup()

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from audit import events, keys, note, trust, witnessing  # noqa: E402
from audit.services import LedgerEvent, checkpoint_create, ledger_append_many  # noqa: E402
from fedgov.actors import Actor  # noqa: E402

events.register(events.EventType("bench.happened", "A benchmark's filler event.", required=("i",)))

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0


def start_witness(folder: Path, number: int, log_vkey: str) -> tuple[subprocess.Popen, str, str]:
    name = f"site-{number}.bench/witness"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "audit.witness", "--name", name,
            "--key", str(folder / f"w{number}.pem"), "--state", str(folder / f"w{number}.json"),
            "--log", log_vkey,
        ],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    vkey = process.stdout.readline().strip()
    url = process.stdout.readline().strip().split(" ", 1)[1]
    return process, vkey, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds, a CI smoke")
    args = parser.parse_args()
    rounds, batch = (8, 20) if args.quick else (60, 100)
    folder = Path(tempfile.mkdtemp(prefix="fedgov-bench-witnesses-"))
    db = connection.settings_dict
    db["ENGINE"] = "django.db.backends.sqlite3"
    db.setdefault("TEST", {})["NAME"] = str(folder / "bench.sqlite3")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    processes = []
    try:
        actor = Actor.system("bench")
        log_vkey = note.verifier_key(settings.FEDGOV_LEDGER_ORIGIN, keys.active_key().public_key)
        policy = []
        for number in range(4):
            process, vkey, url = start_witness(folder, number, log_vkey)
            processes.append(process)
            name, _hash, encoded = vkey.split("+", 2)
            import base64

            raw = base64.b64decode(encoded)[1:]
            trust.key_trust(
                actor=actor,
                role="witness",
                name=name,
                public_key=Ed25519PublicKey.from_public_bytes(raw),
                reason="bench witness",
            )
            policy.append((name, url))
        settings.FEDGOV_WITNESSES = policy
        settings.FEDGOV_WITNESS_QUORUM = 3
        witness_ms, checkpoint_ms, cosigned = [], [], []
        for round_number in range(rounds):
            events = [
                LedgerEvent("bench.happened", "round", round_number, {"i": i}) for i in range(batch)
            ]
            with transaction.atomic():
                ledger_append_many(actor=actor, events=events)
            began = time.perf_counter()
            row = checkpoint_create(actor=actor)
            checkpoint_ms.append(1000 * (time.perf_counter() - began))
            began = time.perf_counter()
            outcome = witnessing.checkpoint_witness(size=row.size)
            witness_ms.append(1000 * (time.perf_counter() - began))
            cosigned.append(outcome.cosigned)
        if min(cosigned) != 4:
            raise SystemExit(f"a witness did not cosign: {cosigned}")
        # The first request of each witness has no proof and a cold connection.
        steady = witness_ms[1:]
        median = statistics.median(steady)
        print(
            json.dumps(
                {
                    "bench": "witness",
                    "ratio": round(median / TARGET_MS, 3),
                    "target": "<= 1.0",
                    "ok": median <= TARGET_MS,
                    "witness_ms": round(median, 2),
                    "witness_p90_ms": round(sorted(steady)[int(0.9 * (len(steady) - 1))], 2),
                    "target_ms": TARGET_MS,
                    "witnesses": 4,
                    "quorum": 3,
                    "checkpoint_ms": round(statistics.median(checkpoint_ms), 2),
                    "rounds": rounds,
                    "entries_per_round": batch,
                    "transport": "HTTP/1.1 on loopback, one witness process each",
                }
            )
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
