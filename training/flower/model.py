"""The demo task: hashed character n-grams into a small torch linear classifier of topics.

Featurising is numpy only; torch is imported inside the functions that need it, so code
that only reads data or hashes updates does not pay for importing torch.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
TOPICS = ("data-protection", "employment", "housing", "health", "energy")
NUM_FEATURES = 2**12
NGRAMS = (2, 3, 4)


@dataclass(frozen=True)
class SiteData:
    """A site's records after leaving out excluded subjects."""

    features: np.ndarray
    labels: np.ndarray
    records_used: int
    records_excluded: int
    # The subject of each record used, in order (what the site reports as used).
    subjects: tuple[str, ...] = ()


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def featurize(texts: Iterable[str]) -> np.ndarray:
    """Rows of log-scaled, L2-normalised hashed character 2-4-gram counts."""
    texts = list(texts)
    matrix = np.zeros((len(texts), NUM_FEATURES), dtype=np.float32)
    for row, text in enumerate(texts):
        padded = f" {text.lower()} "
        for n in NGRAMS:
            for i in range(len(padded) - n + 1):
                # crc32, not hash(): Python's str hash is salted per process.
                matrix[row, zlib.crc32(padded[i : i + n].encode("utf-8")) % NUM_FEATURES] += 1
    np.log1p(matrix, out=matrix)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.maximum(norms, 1e-12)
    return matrix


def labels_of(records: list[dict]) -> np.ndarray:
    return np.array([TOPICS.index(r["label"]) for r in records], dtype=np.int64)


def load_site_data(
    slug: str,
    excluded: frozenset[str] | set[str],
    data_dir: Path = DATA_DIR,
    allowed: frozenset[str] | set[str] | None = None,
) -> SiteData:
    """The site's records minus every record of an excluded subject pseudonym and, when an
    allow-list is given, minus every record of a subject not on it (Art. 6(1)(a), 7)."""
    records = read_jsonl(data_dir / f"{slug}.jsonl")
    kept = [
        r
        for r in records
        if r["subject"] not in excluded and (allowed is None or r["subject"] in allowed)
    ]
    return SiteData(
        features=featurize(r["text"] for r in kept),
        labels=labels_of(kept),
        records_used=len(kept),
        records_excluded=len(records) - len(kept),
        subjects=tuple(r["subject"] for r in kept),
    )


def load_heldout(data_dir: Path = DATA_DIR) -> tuple[np.ndarray, np.ndarray]:
    records = read_jsonl(data_dir / "heldout.jsonl")
    return featurize(r["text"] for r in records), labels_of(records)


def make_model(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Linear(NUM_FEATURES, len(TOPICS))


def get_arrays(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def set_arrays(model, arrays: dict[str, np.ndarray]) -> None:
    import torch

    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})


def train(
    model, features: np.ndarray, labels: np.ndarray, *, epochs: int, lr: float = 2.0
) -> float:
    """Full-batch gradient descent with cross-entropy; returns the last loss."""
    import torch

    if len(labels) == 0:
        return 0.0
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
    return float(loss.item())


def train_numpy(
    arrays: dict[str, np.ndarray],
    features: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    lr: float = 2.0,
) -> tuple[dict[str, np.ndarray], float]:
    """``train`` for the linear model in numpy: same math, same float32, no torch import.

    A site's ClientApp runs in a fresh process per message; importing torch there costs
    seconds a linear layer does not need. ``tests/training/flower/test_demo.py`` checks
    that this and the torch path give the same arrays.
    """
    weight = np.array(arrays["weight"], dtype=np.float32)
    bias = np.array(arrays["bias"], dtype=np.float32)
    if len(labels) == 0:
        return {"weight": weight, "bias": bias}, 0.0
    onehot = np.zeros((len(labels), weight.shape[0]), dtype=np.float32)
    onehot[np.arange(len(labels)), labels] = 1.0
    loss = 0.0
    for _ in range(epochs):
        logits = features @ weight.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probs = exp / exp.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(probs[np.arange(len(labels)), labels])))
        delta = (probs - onehot) / np.float32(len(labels))
        weight -= np.float32(lr) * (delta.T @ features)
        bias -= np.float32(lr) * delta.sum(axis=0)
    return {"weight": weight, "bias": bias}, loss


def initial_arrays_numpy(seed: int = 0) -> dict[str, np.ndarray]:
    """torch.nn.Linear's initialisation (uniform ±1/sqrt(fan_in)) without torch."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(NUM_FEATURES)
    return {
        "weight": rng.uniform(-bound, bound, (len(TOPICS), NUM_FEATURES)).astype(np.float32),
        "bias": rng.uniform(-bound, bound, len(TOPICS)).astype(np.float32),
    }


def accuracy_numpy(
    arrays: dict[str, np.ndarray], features: np.ndarray, labels: np.ndarray
) -> float:
    predicted = (features @ arrays["weight"].T + arrays["bias"]).argmax(axis=1)
    return float((predicted == labels).mean()) if len(labels) else 0.0


def accuracy(model, features: np.ndarray, labels: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        predicted = model(torch.from_numpy(features)).argmax(dim=1).numpy()
    return float((predicted == labels).mean()) if len(labels) else 0.0
