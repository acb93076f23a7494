"""Canonical SHA-256 of a model update (a set of named arrays); spec in docs/update-hash.md.

Pure module: numpy and hashlib only, so a site, an auditor or a regulator can recompute a
hash fedgov recorded. torch tensors are accepted as input without importing torch here.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

VERSION_TAG = b"fedgov-update-hash/v1\x00"

# Non-contiguous or big-endian arrays are converted in blocks of about this many bytes,
# so the memory a hash needs stays bounded whatever the update's size.
_BLOCK_BYTES = 16 * 1024 * 1024

# Object and void (structured, opaque) dtypes have no portable byte form.
_REFUSED_KINDS = frozenset("OVMm")


def _as_numpy(value: Any) -> np.ndarray:
    """A numpy view of ``value``: numpy arrays, torch tensors, Flower Arrays, sequences."""
    if isinstance(value, np.ndarray):
        return value
    module = type(value).__module__ or ""
    if module.startswith("torch") and hasattr(value, "detach"):
        # A tensor on another device or with autograd is read through a CPU view.
        tensor = value.detach()
        if str(tensor.dtype) == "torch.bfloat16":
            raise ValueError("bfloat16 tensors have no numpy dtype; cast to float32 first")
        return np.asarray(tensor.cpu().numpy())
    if hasattr(value, "numpy") and callable(value.numpy):
        # flwr.app.Array and similar wrappers deserialise to numpy.
        return np.asarray(value.numpy())
    return np.asarray(value)


def little_endian_dtype(dtype: np.dtype) -> np.dtype:
    """The same dtype with its byte order fixed to little-endian (no-op for 1-byte types)."""
    if dtype.kind in _REFUSED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"dtype {dtype} has no canonical byte form")
    if dtype.byteorder == "|":
        return dtype
    return dtype.newbyteorder("<")


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def _feed_array(sha: Any, array: np.ndarray, dtype: np.dtype) -> None:
    """Stream the C-order little-endian bytes of ``array`` into ``sha``."""
    if array.size == 0:
        return
    if array.dtype == dtype and array.flags.c_contiguous:
        # The common case: hash the array's own memory, no copy at all.
        sha.update(array.reshape(-1).view(np.uint8).data)
        return
    if array.ndim == 0:
        sha.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
        return
    # Convert slabs along the first axis; each slab is C-ordered, so their concatenation
    # is the C order of the whole array.
    row_bytes = max(1, array[0].size * dtype.itemsize)
    rows = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, array.shape[0], rows):
        block = np.ascontiguousarray(array[start : start + rows], dtype=dtype)
        sha.update(block.reshape(-1).view(np.uint8).data)


def _items(update: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[bytes, Any]]:
    pairs = update.items() if isinstance(update, Mapping) else update
    items: list[tuple[bytes, Any]] = []
    seen: set[bytes] = set()
    for name, value in pairs:
        if not isinstance(name, str):
            raise TypeError(f"array names must be str, got {type(name).__name__}")
        encoded = name.encode("utf-8")
        if encoded in seen:
            raise ValueError(f"array name {name!r} appears twice")
        seen.add(encoded)
        items.append((encoded, value))
    items.sort(key=lambda item: item[0])
    return items


def update_hash(update: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """Hex SHA-256 of ``update`` per docs/update-hash.md (version 1).

    ``update`` maps array names to numpy arrays, torch tensors or Flower ``Array``s (an
    ``ArrayRecord`` or a ``state_dict`` works as is). Raises ``TypeError`` for a non-str
    name and ``ValueError`` for a repeated name or a dtype without a canonical byte form.
    """
    items = _items(update)
    sha = hashlib.sha256()
    sha.update(VERSION_TAG)
    sha.update(_u64(len(items)))
    for encoded, value in items:
        array = _as_numpy(value)
        dtype = little_endian_dtype(array.dtype)
        dtype_tag = dtype.str.encode("ascii")
        sha.update(_u32(len(encoded)))
        sha.update(encoded)
        sha.update(_u32(len(dtype_tag)))
        sha.update(dtype_tag)
        sha.update(_u32(array.ndim))
        for dim in array.shape:
            sha.update(_u64(dim))
        sha.update(_u64(array.size * dtype.itemsize))
        _feed_array(sha, array, dtype)
    return sha.hexdigest()


__all__ = ["VERSION_TAG", "little_endian_dtype", "update_hash"]
