"""Benchmark: the demo's 3-site governed round, tuned local deployment ÷ Flower defaults.

Both federations are real flower-superlink + flower-supernode processes on this machine,
run one after the other in this one invocation against the same live fedgov, with the
same governed app and data. "Default" is Flower's default settings with the site training
the torch model in its per-message ClientApp process. "Tuned" is fedgov's local
deployment: ``training.flower.supervisor.tuned_env()`` (the SuperExec task poll set
through its own variable; the SuperNode's and the ServerApp grid's hard-coded 3 s sleeps
capped by ``training/flower/tuning/sitecustomize.py``) and the site training the same
linear model in numpy (no torch import per message). What stays is Flower's design: one
fresh ``flwr-clientapp`` process per message, whose own imports cost about 1 s of CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

API_PORT = 18549
DEFAULT_PORT = 18550
TUNED_PORT = 18555


def torch_import_seconds() -> float:
    """Median time a fresh Python needs to import torch (paid by every ClientApp process)."""
    import statistics
    import subprocess
    import time

    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def clientapp_import_seconds() -> float:
    """CPU time a fresh process spends importing Flower's ClientApp runner (per message)."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import flwr.supernode.cli.flwr_clientapp"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round per deployment")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per deployment (3)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)

    import benchkit  # bench/benchkit.py, beside the benchmarks (this folder is on sys.path)

    from training.flower.supervisor import tuned_env

    results = {}
    with tempfile.TemporaryDirectory(prefix="fedgov-bench-roundtime-") as tmp:
        state = Path(tmp)
        benchkit.setup_django(state / "var")
        scenario = benchkit.make_scenario(runs=2, rounds=rounds)
        with benchkit.FedgovServer(API_PORT) as server:
            for (name, port, env), run_id in zip(
                [
                    ("default", DEFAULT_PORT, {"FEDGOV_SITE_TRAINER": "torch"}),
                    ("tuned", TUNED_PORT, tuned_env()),
                ],
                scenario.run_ids,
                strict=True,
            ):
                summary = benchkit.run_federation(
                    state_dir=state / name,
                    base_port=port,
                    scenario=scenario,
                    api_url=server.url,
                    run_id=run_id,
                    rounds=rounds,
                    extra_env=env,
                )
                results[name] = summary
    default = results["default"]["round_seconds"]["governed"]
    tuned = results["tuned"]["round_seconds"]["governed"]
    governance = [r["seconds_governance"] for r in results["tuned"]["rounds"].values()]
    ratio = benchkit.median(tuned) / benchkit.median(default)
    print(
        json.dumps(
            {
                "bench": "round_time",
                "ratio": round(ratio, 4),
                "target": "<= 0.5",
                "rounds_each": rounds,
                "median_default_s": round(benchkit.median(default), 3),
                "median_tuned_s": round(benchkit.median(tuned), 3),
                "default_s": [round(x, 3) for x in default],
                "tuned_s": [round(x, 3) for x in tuned],
                "where_the_time_goes": {
                    "torch_import_per_clientapp_process_s": round(torch_import_seconds(), 3),
                    "governance_calls_per_round_s": round(benchkit.median(governance), 3),
                    "default": "polls: SuperNode 3 s, grid 3 s, SuperExec 1 s; torch per message",
                    "tuned": "polls 0.1 s; numpy linear model per message",
                    "flwr_clientapp_import_cpu_s": round(clientapp_import_seconds(), 3),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
