"""Accuracy with and without differential privacy on the same seeds (the demo's comparison).

In-process arithmetic on the demo task, no Flower processes: each round every site
trains from the same global model with the same numpy trainer the sites run
(``model.train_numpy``); the aggregate is either the governed FedAvg without DP
(example-weighted) or the DP path with Flower's own clipping and noise functions
(``flwr.supercore.differential_privacy``): clip each update to C, average uniformly,
add N(0, (z·C/n)²) (central and client-side clipping) or add N(0, (z·C)²) to each
update before averaging (local). The same seed fixes the initial model and the noise,
so the difference is the cost of the privacy the noise buys.

``python -m training.flower.dp_eval --mechanism central --clipping-norm 1 --noise 2.59``
prints one JSON line.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from flwr.supercore.differential_privacy import (
    add_gaussian_noise_inplace,
    compute_clip_model_update,
)

from fedgov_flower.dp import DpPlan, Mechanism
from training.flower.model import (
    accuracy_numpy,
    initial_arrays_numpy,
    load_heldout,
    load_site_data,
    train_numpy,
)

SITES = ("de-legal", "es-blogs", "pl-news")


def _aggregate(updates, weights, plan: DpPlan | None, base):
    keys = list(base)
    if plan is None:
        total = sum(weights)
        return {
            k: sum(w * u[k] for w, u in zip(weights, updates, strict=True)) / total for k in keys
        }
    released = []
    for update in updates:
        arrays = [update[k].astype(np.float64) for k in keys]
        compute_clip_model_update(
            arrays, [base[k].astype(np.float64) for k in keys], plan.clipping_norm
        )
        if plan.mechanism == Mechanism.LOCAL:
            add_gaussian_noise_inplace(arrays, plan.noise_multiplier * plan.clipping_norm)
        released.append(arrays)
    mean = [sum(a[i] for a in released) / len(released) for i in range(len(keys))]
    if plan.mechanism != Mechanism.LOCAL:
        add_gaussian_noise_inplace(mean, plan.aggregate_noise_std(len(released)))
    return {k: v.astype(np.float32) for k, v in zip(keys, mean, strict=True)}


def run(plan: DpPlan | None, *, rounds: int, local_epochs: int, seed: int) -> list[float]:
    """Held-out accuracy after each round; ``plan`` None is the governed path without DP."""
    np.random.seed(seed)  # Flower's noise draws from numpy's global generator
    test_x, test_y = load_heldout()
    data = [load_site_data(slug, frozenset()) for slug in SITES]
    arrays = initial_arrays_numpy(seed)
    scores = []
    for _ in range(rounds):
        updates, weights = [], []
        for site in data:
            trained, _ = train_numpy(arrays, site.features, site.labels, epochs=local_epochs)
            updates.append(trained)
            weights.append(len(site.labels))
        arrays = _aggregate(updates, weights, plan, arrays)
        scores.append(round(accuracy_numpy(arrays, test_x, test_y), 4))
    return scores


def compare(plan: DpPlan, *, rounds: int = 3, local_epochs: int = 10, seed: int = 0) -> dict:
    return {
        "rounds": rounds,
        "local_epochs": local_epochs,
        "seed": seed,
        "mechanism": plan.mechanism,
        "clipping_norm": plan.clipping_norm,
        "noise_multiplier": plan.noise_multiplier,
        "without_dp": run(None, rounds=rounds, local_epochs=local_epochs, seed=seed),
        "with_dp": run(plan, rounds=rounds, local_epochs=local_epochs, seed=seed),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mechanism",
        default="central",
        choices=sorted(m.value for m in Mechanism if m != Mechanism.NONE),
    )
    parser.add_argument("--clipping-norm", type=float, default=1.0)
    parser.add_argument("--noise", type=float, required=True, help="noise multiplier z")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    plan = DpPlan(args.mechanism, args.clipping_norm, args.noise, args.delta)
    print(
        json.dumps(
            compare(plan, rounds=args.rounds, local_epochs=args.local_epochs, seed=args.seed)
        )
    )
