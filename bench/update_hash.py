"""Benchmark: canonical update hash throughput ÷ raw hashlib.sha256 over the same bytes."""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedgov_flower.update_hash import update_hash

MIB = 1024 * 1024


def make_update(total_bytes: int) -> dict[str, np.ndarray]:
    """A model-like update: a few big float32 matrices plus small bias vectors."""
    rng = np.random.default_rng(7)
    layers = 8
    per_layer = total_bytes // layers // 4
    cols = 1024
    update = {}
    for i in range(layers):
        update[f"layer{i}.weight"] = rng.standard_normal((per_layer // cols, cols), np.float32)
        update[f"layer{i}.bias"] = rng.standard_normal(cols, np.float32)
    return update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="8 MiB, 3 repeats")
    parser.add_argument("--mib", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    mib = args.mib or (8 if args.quick else 256)
    repeats = args.repeats or (3 if args.quick else 11)
    update = make_update(mib * MIB)
    nbytes = sum(a.nbytes for a in update.values())

    def raw_once() -> float:
        start = time.perf_counter()
        sha = hashlib.sha256()
        for array in update.values():
            sha.update(array)
        sha.hexdigest()
        return time.perf_counter() - start

    def canonical_once() -> float:
        start = time.perf_counter()
        update_hash(update)
        return time.perf_counter() - start

    raw_times, canon_times = [], []
    for i in range(repeats):
        # Interleaved, alternating which goes first, so load drift hits both sides alike.
        if i % 2:
            canon_times.append(canonical_once())
            raw_times.append(raw_once())
        else:
            raw_times.append(raw_once())
            canon_times.append(canonical_once())

    raw, canon = statistics.median(raw_times), statistics.median(canon_times)
    print(
        json.dumps(
            {
                "bench": "update_hash",
                "ratio": round(raw / canon, 4),
                "target": ">= 0.90",
                "bytes": nbytes,
                "arrays": len(update),
                "repeats": repeats,
                "raw_sha256_mib_s": round(nbytes / MIB / raw, 1),
                "canonical_mib_s": round(nbytes / MIB / canon, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
