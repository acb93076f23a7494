"""Federated (FedAvg) against local-only models on the held-out set; prints the README table.

In-process arithmetic only (no Flower processes): FedAvg here is the weighted mean of the
sites' arrays by example count, the same rule Flower's FedAvg applies.
"""

from __future__ import annotations

import json

import numpy as np

from training.flower.model import (
    accuracy,
    get_arrays,
    load_heldout,
    load_site_data,
    make_model,
    set_arrays,
    train,
)

SITES = ("de-legal", "es-blogs", "pl-news")


def compare(rounds: int = 5, local_epochs: int = 10) -> dict:
    test_x, test_y = load_heldout()
    data = {slug: load_site_data(slug, frozenset()) for slug in SITES}
    result: dict = {"rounds": rounds, "local_epochs": local_epochs, "local_only": {}}
    for slug, site in data.items():
        model = make_model()
        # Same number of gradient steps as the whole federated run.
        train(model, site.features, site.labels, epochs=rounds * local_epochs)
        result["local_only"][slug] = round(accuracy(model, test_x, test_y), 4)

    global_model = make_model()
    arrays = get_arrays(global_model)
    per_round = []
    for _ in range(rounds):
        updates, weights = [], []
        for site in data.values():
            local = make_model()
            set_arrays(local, arrays)
            train(local, site.features, site.labels, epochs=local_epochs)
            updates.append(get_arrays(local))
            weights.append(len(site.labels))
        total = sum(weights)
        arrays = {
            k: sum(w * u[k] for w, u in zip(weights, updates, strict=True)) / total for k in arrays
        }
        set_arrays(global_model, {k: v.astype(np.float32) for k, v in arrays.items()})
        per_round.append(round(accuracy(global_model, test_x, test_y), 4))
    result["federated_per_round"] = per_round
    result["federated"] = per_round[-1]
    return result


if __name__ == "__main__":
    print(json.dumps(compare()))
