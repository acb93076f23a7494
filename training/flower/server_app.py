"""The ServerApp: the demo model trained with the governed strategy, under fedgov's gate.

Run config (``training/flower/app/pyproject.toml``): ``fedgov-api`` (fedgov's base URL),
``fedgov-run-id``, ``num-server-rounds``, ``local-epochs``, ``sample-timeout``,
``evidence-dir`` (optional: where to write the received arrays and round evidence),
``expected-nodes`` (ask that many nodes which site they serve and bind them in fedgov),
``dp-mechanism``/``dp-clipping-norm``/``dp-noise-multiplier``/``dp-delta`` (the run's
differential-privacy plan, ``fedgov_flower.dp.DpPlan``; absent: no DP),
``mode`` (``governed``, or ``interleaved`` for ``bench/round_overhead.py``). The
service token comes from ``FEDGOV_SERVICE_TOKEN`` or the file in
``FEDGOV_SERVICE_TOKEN_FILE``, never from the run config, which Flower logs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedProx

from fedgov_flower.dp import DpPlan
from fedgov_flower.governance import RestGovernance
from fedgov_flower.governed import register_nodes as package_register_nodes
from fedgov_flower.governed import service_token
from training.flower.dp_strategy import governed_dp
from training.flower.strategy import (
    GovernedFedAvg,
    RunStopped,
    TimedFedAvg,
    TimedFedProx,
    TimedGoverned,
)

log = logging.getLogger("fedgov.flower.server")
app = ServerApp()


def _service_token() -> str:
    return service_token()


def write_evidence(
    directory: Path,
    strategy: GovernedFedAvg,
    accuracy: dict[int, float],
    timings: dict[str, list[float]] | None = None,
    failure: list[str] | None = None,
) -> None:
    """Received arrays (``.npz`` per reply) and a JSON summary, so a test can re-hash them."""
    directory.mkdir(parents=True, exist_ok=True)
    summary = {
        "rounds": {},
        "accuracy": accuracy,
        "round_seconds": timings or {},
        "failure": failure or [],
    }
    for round_no, evidence in sorted(strategy.evidence.items()):
        for node_id, record in evidence.received.items():
            arrays = {name: array.numpy() for name, array in record.items()}
            np.savez(directory / f"round{round_no}-node{node_id}.npz", **arrays)
        summary["rounds"][round_no] = {
            "refusal": evidence.refusal.reason if evidence.refusal else None,
            "ticket_nodes": sorted(evidence.ticket.node_ids) if evidence.ticket else [],
            "accepted": [u.as_json() for u in evidence.accepted],
            "rejected": [u.as_json() for u in evidence.rejected],
            "errors": evidence.errors,
            "aggregate_hash": evidence.aggregate_hash,
            "aggregate_hash_before_noise": evidence.aggregate_hash_before_noise,
            "dp": evidence.dp.as_json() if evidence.dp else None,
            "seconds_governance": evidence.seconds_governance,
        }
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))


def register_nodes(
    grid: Grid, governance: RestGovernance, *, expected: int, timeout: float
) -> dict:
    """Ask every connected node which site it serves and bind it in fedgov (slug → node)."""
    return package_register_nodes(grid, governance, expected=expected, timeout=timeout)


@app.main()
def main(grid: Grid, context: Context) -> None:
    from training.flower.model import accuracy, get_arrays, load_heldout, make_model, set_arrays

    config = context.run_config
    governance = RestGovernance(str(config["fedgov-api"]), _service_token())
    expected = int(config.get("expected-nodes", 0))
    timeout = float(config.get("sample-timeout", 60))
    if expected:
        register_nodes(grid, governance, expected=expected, timeout=timeout)
    strategy = GovernedFedAvg(
        governance=governance,
        run_id=int(config["fedgov-run-id"]),
        sample_timeout=timeout,
        keep_arrays=bool(config.get("evidence-dir")),
        # ``manage.py federate`` runs one fedgov round per ``flwr run``: its number is
        # Flower's plus this offset, and the model carries over in ``initial-arrays``.
        round_offset=int(config.get("round-offset", 0)),
        # The mechanism fedgov accounts for; each ticket must sign the same plan.
        dp_plan=DpPlan.from_run_config(config),
    )
    rounds = int(config.get("num-server-rounds", 2))
    train_config = ConfigRecord({"local-epochs": int(config.get("local-epochs", 20))})
    test_x, test_y = load_heldout()
    scores: dict[int, float] = {}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model = make_model()
        set_arrays(model, {name: a.numpy() for name, a in arrays.items()})
        scores[server_round] = accuracy(model, test_x, test_y)
        log.warning("round %s held-out accuracy %.4f", server_round, scores[server_round])
        return MetricRecord({"heldout-accuracy": scores[server_round]})

    initial = ArrayRecord({k: Array(v) for k, v in get_arrays(make_model()).items()})
    if config.get("initial-arrays"):
        with np.load(str(config["initial-arrays"])) as carried:
            initial = ArrayRecord({k: Array(carried[k]) for k in carried.files})
    timings: dict[str, list[float]] = {}
    failure: list[str] = []
    try:
        if str(config.get("mode", "governed")) == "interleaved":
            timings = _interleaved(grid, strategy, initial, rounds, train_config, expected)
        elif str(config.get("mode")) == "interleaved-wrapped":
            timings = _interleaved_wrapped(grid, strategy, initial, rounds, train_config, expected)
        else:
            result = governed_dp(strategy).start(
                grid,
                initial,
                num_rounds=rounds,
                timeout=float(config.get("round-timeout", 600)),
                train_config=train_config,
                evaluate_fn=evaluate,
            )
            timings = {"governed": strategy.round_seconds}
            if config.get("evidence-dir") and result.arrays:
                final = {name: array.numpy() for name, array in result.arrays.items()}
                Path(str(config["evidence-dir"])).mkdir(parents=True, exist_ok=True)
                np.savez(Path(str(config["evidence-dir"])) / "final-arrays.npz", **final)
    except RunStopped as stopped:
        log.warning("run stopped by fedgov: %s", stopped)
        failure.append(f"stopped: {stopped}")
    except Exception as exc:
        failure.append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if config.get("evidence-dir"):
            write_evidence(Path(str(config["evidence-dir"])), strategy, scores, timings, failure)


def _interleaved(grid, governed, arrays, rounds, train_config, expected) -> dict[str, list[float]]:
    """Plain FedAvg and governed rounds alternately on one federation (the overhead bench)."""
    plain = TimedFedAvg(
        fraction_evaluate=0.0,
        min_train_nodes=max(expected, 1),
        min_available_nodes=max(expected, 1),
    )
    for i in range(rounds):
        governed.round_offset = i
        # Alternate which goes first, so warm-up and drift hit both sides alike.
        for strategy in (plain, governed) if i % 2 == 0 else (governed, plain):
            config = ConfigRecord(dict(train_config))
            arrays = strategy.start(grid, arrays, num_rounds=1, train_config=config).arrays
    return {"plain": plain.round_seconds, "governed": governed.round_seconds}


def _interleaved_wrapped(grid, governed, arrays, rounds, train_config, expected) -> dict:
    """Four strategies in turn on one federation: plain FedAvg, the governed FedAvg, plain
    FedProx and ``governed(FedProx)`` (the wrapper around a non-FedAvg strategy).

    fedgov numbers the governed FedAvg's rounds 1, 3, 5... and the wrapped FedProx's 2, 4,
    6...: the run needs twice ``rounds`` rounds.
    """
    nodes = max(expected, 1)
    plain = TimedFedAvg(fraction_evaluate=0.0, min_train_nodes=nodes, min_available_nodes=nodes)
    prox_kwargs = {"proximal_mu": 0.1, "fraction_evaluate": 0.0, "min_train_nodes": nodes,
                   "min_available_nodes": nodes}  # fmt: skip
    plain_prox = TimedFedProx(**prox_kwargs)
    wrapped = TimedGoverned(
        FedProx(**prox_kwargs),
        governance=governed.governance,
        run_id=governed.run_id,
        sample_timeout=governed.sample_timeout,
    )
    prox_arrays = arrays
    for i in range(rounds):
        governed.round_offset, wrapped.round_offset = 2 * i, 2 * i + 1
        first, second = ((plain, governed), (governed, plain))[i % 2]
        for strategy in (first, second):
            config = ConfigRecord(dict(train_config))
            arrays = strategy.start(grid, arrays, num_rounds=1, train_config=config).arrays
        first, second = ((plain_prox, wrapped), (wrapped, plain_prox))[i % 2]
        for strategy in (first, second):
            config = ConfigRecord(dict(train_config))
            result = strategy.start(grid, prox_arrays, num_rounds=1, train_config=config)
            prox_arrays = result.arrays if len(result.arrays) else prox_arrays
    return {
        "plain": plain.round_seconds,
        "governed": governed.round_seconds,
        "plain_fedprox": plain_prox.round_seconds,
        "governed_fedprox": wrapped.round_seconds,
    }
