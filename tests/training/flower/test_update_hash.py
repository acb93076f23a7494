"""Property tests of the canonical update hash (docs/update-hash.md)."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedgov_flower.update_hash import update_hash

DTYPES = ["<f4", "<f8", "<f2", "<i4", "<i8", "<u2", "|u1", "|i1", "|b1"]

names = st.text(min_size=1, max_size=12)
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(
        dtype=np.dtype(dt),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
        elements={"allow_nan": False} if np.dtype(dt).kind == "f" else None,
    )
)
updates = st.dictionaries(names, arrays, min_size=1, max_size=5)


def reference_hash(arrays: dict[str, np.ndarray]) -> str:
    """The short form printed in docs/update-hash.md, copied verbatim."""
    h = hashlib.sha256(b"fedgov-update-hash/v1\x00" + struct.pack("<Q", len(arrays)))
    for name in sorted(arrays, key=lambda n: n.encode("utf-8")):
        a = arrays[name]
        dt = a.dtype if a.dtype.byteorder == "|" else a.dtype.newbyteorder("<")
        b = np.ascontiguousarray(a, dtype=dt).tobytes()
        n, d = name.encode("utf-8"), dt.str.encode("ascii")
        h.update(struct.pack("<I", len(n)) + n + struct.pack("<I", len(d)) + d)
        h.update(struct.pack("<I", a.ndim) + b"".join(struct.pack("<Q", s) for s in a.shape))
        h.update(struct.pack("<Q", len(b)) + b)
    return h.hexdigest()


@given(updates)
def test_hash_matches_the_documented_reference(update):
    assert update_hash(update) == reference_hash(update)


@given(updates, st.randoms())
def test_hash_ignores_key_order(update, rnd):
    keys = list(update)
    rnd.shuffle(keys)
    assert update_hash({k: update[k] for k in keys}) == update_hash(update)


@given(updates)
def test_hash_ignores_memory_layout(update):
    # np.asfortranarray turns a 0-d array into 1-d, so scalars keep their own layout.
    fortran = {k: np.asfortranarray(v) if v.ndim else v for k, v in update.items()}
    # A strided view over a larger buffer holds the same values in another layout.
    strided = {}
    for k, v in update.items():
        big = np.zeros((*v.shape, 2), dtype=v.dtype)
        big[..., 0] = v
        strided[k] = big[..., 0]
        assert not strided[k].flags.c_contiguous or v.size <= 1
    assert update_hash(fortran) == update_hash(update)
    assert update_hash(strided) == update_hash(update)


@given(updates)
def test_hash_ignores_byte_order(update):
    swapped = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in update.items()}
    assert update_hash(swapped) == update_hash(update)


@given(updates.filter(lambda u: all(v.dtype != np.dtype("<u2") for v in u.values())))
def test_hash_of_torch_tensors_equals_hash_of_numpy(update):
    tensors = {k: torch.from_numpy(v.copy()) for k, v in update.items()}
    assert update_hash(tensors) == update_hash(update)


@given(updates, names)
def test_hash_changes_with_any_name(update, new_name):
    old = next(iter(update))
    if new_name in update:
        return
    renamed = {(new_name if k == old else k): v for k, v in update.items()}
    assert update_hash(renamed) != update_hash(update)


@given(updates)
def test_hash_changes_with_dtype(update):
    name, value = next(iter(update.items()))
    other = "<f8" if value.dtype != np.dtype("<f8") else "<f4"
    with np.errstate(all="ignore"):
        changed = {**update, name: value.astype(other)}
    assert update_hash(changed) != update_hash(update)


@given(updates)
def test_hash_changes_with_shape(update):
    name, value = next(iter(update.items()))
    changed = {**update, name: value.reshape((*value.shape, 1))}
    assert update_hash(changed) != update_hash(update)


@given(updates, st.data())
def test_hash_changes_with_any_value(update, data):
    candidates = [k for k, v in update.items() if v.size > 0]
    if not candidates:
        return
    name = data.draw(st.sampled_from(candidates))
    value = update[name].copy()
    flat = value.reshape(-1)
    index = data.draw(st.integers(0, flat.size - 1))
    # Flip one bit of one element's bytes: any value change must change the hash.
    raw = flat.view(np.uint8)
    raw[index * value.dtype.itemsize] ^= 1
    if value.dtype.kind == "b":
        flat[index] = not update[name].reshape(-1)[index]
    assert update_hash({**update, name: value}) != update_hash(update)


@settings(max_examples=5, deadline=None)
@given(st.integers(1, 3))
def test_large_noncontiguous_array_hashes_in_blocks_like_contiguous_copy(rows_per_mib):
    base = np.random.default_rng(rows_per_mib).standard_normal((4096, 1200)).astype("<f4")
    view = base[:, ::3]
    assert update_hash({"w": view}) == update_hash({"w": np.ascontiguousarray(view)})


def test_flower_array_record_hashes_like_its_numpy_arrays():
    from flwr.app import Array, ArrayRecord

    arrays = {"b": np.arange(3, dtype="<i8"), "a": np.ones((2, 2), dtype="<f4")}
    record = ArrayRecord({k: Array(v) for k, v in arrays.items()})
    assert update_hash(record) == update_hash(arrays)


def test_hash_refuses_object_dtype_and_repeated_names():
    with pytest.raises(ValueError, match="canonical byte form"):
        update_hash({"a": np.array([object()])})
    with pytest.raises(ValueError, match="twice"):
        update_hash([("a", np.zeros(1)), ("a", np.zeros(1))])
    with pytest.raises(TypeError):
        update_hash({1: np.zeros(1)})
