"""The app's ClientApp: a label histogram 'model' over the records the ticket permits."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

import fedgov_flower
from fedgov_flower.data import filter_records

app = ClientApp(mods=fedgov_flower.mods())
fedgov_flower.register(app)


def _records(context: Context) -> list[dict]:
    path = Path(str(context.node_config["data-file"]))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return filter_records(rows, key="subject")


def _histogram(rows: list[dict]) -> np.ndarray:
    counts = np.zeros(5, dtype=np.float32)
    for row in rows:
        counts[zlib.crc32(row["label"].encode()) % 5] += 1
    return counts / max(len(rows), 1)


@app.train()
def train(msg: Message, context: Context) -> Message:
    rows = _records(context)
    weights = 0.5 * msg.content["arrays"]["w"].numpy() + 0.5 * _histogram(rows)
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(weights.astype(np.float32))}),
            "metrics": MetricRecord({"num-examples": len(rows)}),
        }
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    rows = _records(context)
    gap = float(np.abs(msg.content["arrays"]["w"].numpy() - _histogram(rows)).sum())
    metrics = MetricRecord({"num-examples": len(rows), "histogram-gap": gap})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
