"""Benchmark: governed round time ÷ plain round time, interleaved on one federation.

Real flower-superlink and three flower-supernode processes train the demo task; one
ServerApp alternates a plain FedAvg round (ungoverned baseline handler) and a governed
round (fedgov gate + signed ticket + site verification + hash reporting over REST), then
a plain FedProx round and a ``fedgov_flower.governed(FedProx)`` round: the wrapper around
a strategy that is not FedAvg. ``ratio`` is the larger of the two ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BASE_PORT = 18530
API_PORT = 18539


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round of each")
    parser.add_argument("--rounds", type=int, default=None, help="pairs of rounds (default 5)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 5)

    import benchkit  # bench/benchkit.py, beside the benchmarks (this folder is on sys.path)

    with tempfile.TemporaryDirectory(prefix="fedgov-bench-overhead-") as tmp:
        state = Path(tmp)
        benchkit.setup_django(state / "var")
        # The governed FedAvg and the wrapped FedProx each take one fedgov round per pair.
        scenario = benchkit.make_scenario(runs=1, rounds=2 * rounds)
        with benchkit.FedgovServer(API_PORT) as server:
            summary = benchkit.run_federation(
                state_dir=state,
                base_port=BASE_PORT,
                scenario=scenario,
                api_url=server.url,
                run_id=scenario.run_ids[0],
                rounds=rounds,
                mode="interleaved-wrapped",
            )
    plain = summary["round_seconds"].get("plain", [])
    governed = summary["round_seconds"].get("governed", [])
    governance = [r["seconds_governance"] for r in summary["rounds"].values()]
    plain_prox = summary["round_seconds"].get("plain_fedprox", [])
    governed_prox = summary["round_seconds"].get("governed_fedprox", [])
    ratio_fedavg = benchkit.median(governed) / benchkit.median(plain)
    ratio_wrapped = benchkit.median(governed_prox) / benchkit.median(plain_prox)
    ratio = max(ratio_fedavg, ratio_wrapped)
    print(
        json.dumps(
            {
                "bench": "round_overhead",
                "ratio": round(ratio, 4),
                "target": "<= 1.05",
                "rounds_each": rounds,
                "ratio_fedavg": round(ratio_fedavg, 4),
                "ratio_wrapped_fedprox": round(ratio_wrapped, 4),
                "median_plain_fedprox_s": round(benchkit.median(plain_prox), 3),
                "median_governed_fedprox_s": round(benchkit.median(governed_prox), 3),
                "median_plain_s": round(benchkit.median(plain), 3),
                "median_governed_s": round(benchkit.median(governed), 3),
                "median_governance_calls_s": round(benchkit.median(governance), 3),
                "plain_s": [round(x, 3) for x in plain],
                "governed_s": [round(x, 3) for x in governed],
            }
        )
    )


if __name__ == "__main__":
    main()
