"""The sites' ClientApp: train the demo model on the records a fedgov ticket allows.

Every handler runs behind ``governance_mod``; the records come only through
``current_grant()``, which exists only for a message whose ticket was verified.
"""

from __future__ import annotations

import os
from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedgov_flower import register
from fedgov_flower.client_mod import current_grant, governance_mod
from fedgov_flower.dp_mod import dp_mod
from training.flower.model import DATA_DIR, load_site_data


def _data_dir(context: Context) -> Path:
    value = context.node_config.get("fedgov-data-dir") or os.environ.get("FEDGOV_DATA_DIR")
    return Path(str(value)) if value else DATA_DIR


def arrays_of(record: ArrayRecord) -> dict:
    return {name: array.numpy() for name, array in record.items()}


def record_of(arrays: dict) -> ArrayRecord:
    return ArrayRecord({name: Array(value) for name, value in arrays.items()})


def _train_arrays(arrays: dict, data, epochs: int) -> tuple[dict, float]:
    """One site's local training; numpy by default, torch when the site asks for it.

    Both run the same math (tested); the numpy path spares every per-message ClientApp
    process a torch import of seconds. ``FEDGOV_SITE_TRAINER=torch`` is the plain path
    ``bench/round_time.py`` measures as Flower's default.
    """
    if os.environ.get("FEDGOV_SITE_TRAINER") == "torch":
        from training.flower.model import get_arrays, make_model, set_arrays
        from training.flower.model import train as train_model

        model = make_model()
        set_arrays(model, arrays)
        loss = train_model(model, data.features, data.labels, epochs=epochs)
        return get_arrays(model), loss
    from training.flower.model import train_numpy

    return train_numpy(arrays, data.features, data.labels, epochs=epochs)


def train(msg: Message, context: Context) -> Message:
    grant = current_grant()
    data = load_site_data(
        grant.site_slug, grant.excluded, _data_dir(context), allowed=grant.allowed
    )
    grant.use(data.subjects, records=data.records_used, left_out=data.records_excluded)
    epochs = int(msg.content["config"].get("local-epochs", 20))
    arrays, loss = _train_arrays(arrays_of(msg.content["arrays"]), data, epochs)
    content = RecordDict(
        {
            "arrays": record_of(arrays),
            # Counts and a loss only: FedAvg averages every key, so no identities here.
            "metrics": MetricRecord({"train-loss": loss, "num-examples": len(data.labels)}),
        }
    )
    return Message(content=content, reply_to=msg)


def evaluate(msg: Message, context: Context) -> Message:
    from training.flower.model import accuracy_numpy

    grant = current_grant()
    data = load_site_data(
        grant.site_slug, grant.excluded, _data_dir(context), allowed=grant.allowed
    )
    grant.use(data.subjects, records=data.records_used, left_out=data.records_excluded)
    metrics = {
        "accuracy": accuracy_numpy(arrays_of(msg.content["arrays"]), data.features, data.labels),
        "num-examples": len(data.labels),
    }
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def identify(msg: Message, context: Context) -> Message:
    """Say which fedgov site this node serves; reads node config only, never data.

    This is the node's own claim. It binds node ids to sites for an insecure local
    deployment; with SuperNode authentication the SuperLink's registered name is the
    identity, and each site still refuses any ticket that does not name it.
    """
    site_id = context.node_config.get("fedgov-site-id") or os.environ.get("FEDGOV_SITE_ID", 0)
    slug = context.node_config.get("fedgov-site") or os.environ.get("FEDGOV_SITE", "")
    identity = ConfigRecord({"site-id": int(site_id), "site": str(slug)})
    return Message(content=RecordDict({"identity": identity}), reply_to=msg)


def train_ungoverned(msg: Message, context: Context) -> Message:
    """The same training with no ticket and no exclusions: a benchmark's baseline only."""
    slug = str(context.node_config.get("fedgov-site") or os.environ.get("FEDGOV_SITE", ""))
    data = load_site_data(slug, frozenset(), _data_dir(context))
    epochs = int(msg.content["config"].get("local-epochs", 20))
    arrays, loss = _train_arrays(arrays_of(msg.content["arrays"]), data, epochs)
    metrics = {"train-loss": loss, "num-examples": len(data.labels)}
    metrics.update({"records-used": len(data.labels), "records-excluded": 0})
    return Message(
        content=RecordDict({"arrays": record_of(arrays), "metrics": MetricRecord(metrics)}),
        reply_to=msg,
    )


def build_app(mod=governance_mod, *, ungoverned_baseline: bool = False) -> ClientApp:
    """A ClientApp whose train and evaluate handlers run behind ``mod``.

    ``ungoverned_baseline`` adds ``train.plain`` without the mod, for
    ``bench/round_overhead.py`` only; a SuperNode enables it with
    ``FEDGOV_BENCH_UNGOVERNED=1`` and no real site ever should.
    """
    client = ClientApp()
    # dp_mod runs inside the governance mod: only a verified ticket's DP plan is applied.
    client.train(mods=[mod, dp_mod])(train)
    client.evaluate(mods=[mod])(evaluate)
    client.query("identify")(identify)
    # fedgov_flower.governed() registers nodes with this name (the package's own query).
    register(client)
    if ungoverned_baseline:
        client.train("plain")(train_ungoverned)
    return client


app = build_app(ungoverned_baseline=os.environ.get("FEDGOV_BENCH_UNGOVERNED") == "1")
