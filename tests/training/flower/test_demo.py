"""The demo corpora and model: deterministic data, exclusions honoured, federation wins."""

from __future__ import annotations

import re

from training.flower.data import generate
from training.flower.demo_eval import compare
from training.flower.model import DATA_DIR, load_site_data, read_jsonl


def test_committed_corpora_are_what_the_generator_writes(tmp_path):
    generate.main(tmp_path)
    for name in ("de-legal.jsonl", "es-blogs.jsonl", "pl-news.jsonl", "heldout.jsonl"):
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name


def test_every_site_record_has_a_subject_of_its_own_site_from_s0001_to_s0120():
    for slug in ("de-legal", "es-blogs", "pl-news"):
        records = read_jsonl(DATA_DIR / f"{slug}.jsonl")
        subjects = {r["subject"] for r in records}
        assert all(re.fullmatch(rf"{slug}-s\d{{4}}", s) for s in subjects)
        assert subjects == {f"{slug}-s{n:04d}" for n in range(1, 121)}
        assert {r["label"] for r in records} == set(generate.TOPICS)


def test_excluded_subjects_records_are_left_out_and_counted():
    data = load_site_data("pl-news", frozenset({"pl-news-s0001", "pl-news-s0120", "other-s1"}))
    assert (data.records_used, data.records_excluded) == (354, 6)
    assert data.features.shape == (354, 4096)


def test_federated_model_beats_every_local_only_model_on_heldout_set():
    result = compare(rounds=2, local_epochs=20)
    assert all(result["federated"] > local for local in result["local_only"].values()), result


def test_site_numpy_training_matches_the_torch_model():
    import numpy as np

    from training.flower.model import get_arrays, make_model, set_arrays, train, train_numpy

    data = load_site_data("de-legal", frozenset())
    model = make_model(seed=3)
    start = get_arrays(model)
    torch_loss = train(model, data.features, data.labels, epochs=5)
    arrays, numpy_loss = train_numpy(start, data.features, data.labels, epochs=5)
    for name, value in get_arrays(model).items():
        np.testing.assert_allclose(arrays[name], value, rtol=1e-4, atol=1e-5)
    assert abs(torch_loss - numpy_loss) < 1e-4
    set_arrays(model, arrays)  # the numpy arrays load back into the torch model
