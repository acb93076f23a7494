"""The app's ServerApp: FedProx with federated evaluation, wrapped by fedgov_flower."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedProx

import fedgov_flower

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    inner = FedProx(
        proximal_mu=float(context.run_config["proximal-mu"]),
        fraction_evaluate=1.0,
        min_available_nodes=1,
        min_train_nodes=1,
        min_evaluate_nodes=1,
    )
    strategy = fedgov_flower.governed(inner, context=context)
    initial = ArrayRecord({"w": Array(np.zeros(5, dtype=np.float32))})
    strategy.start(grid, initial, num_rounds=int(context.run_config["num-server-rounds"]))
