"""RFC 9162 Merkle tree hashing, proofs and proof checks; standard library only.

A regulator re-runs this module without Django. Trees are addressed by *perfect
subtrees*: node ``(level, index)`` is the root of the ``2**level`` leaves starting at leaf
``index * 2**level``; level 0 is a leaf hash. Proof builders take a ``node(level, index)``
callable, so the same code serves a list of leaves in memory and stored subtree hashes in
a database (call :func:`inclusion_nodes` / :func:`consistency_nodes` / :func:`root_nodes`
first to learn which nodes a proof needs and fetch them in one query).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeGetter = Callable[[int, int], bytes]
Node = tuple[int, int]

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees whose right fold is MTH(D[start:end]).

    ``start`` must be a multiple of the largest power of two not above ``end - start``,
    which holds for every range RFC 9162's recursion names.
    """
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect-subtree hashes, largest (leftmost) first, into their RFC 9162 root."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def range_hash(start: int, end: int, node: NodeGetter) -> bytes:
    """MTH(D[start:end]) from stored perfect-subtree hashes."""
    if start >= end:
        return EMPTY_ROOT
    return fold([node(level, index) for level, index in range_nodes(start, end)])


def nodes_from_leaves(leaf_hashes: Sequence[bytes]) -> NodeGetter:
    """A ``node(level, index)`` getter over leaf hashes held in memory (memoised)."""
    memo: dict[Node, bytes] = {}

    def node(level: int, index: int) -> bytes:
        if level == 0:
            return leaf_hashes[index]
        key = (level, index)
        if key not in memo:
            memo[key] = node_hash(node(level - 1, 2 * index), node(level - 1, 2 * index + 1))
        return memo[key]

    return node


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 9162 root (MTH) of a list of *leaf hashes*; the empty tree's is SHA-256("")."""
    return range_hash(0, len(leaf_hashes), nodes_from_leaves(leaf_hashes))


def root_nodes(size: int) -> list[Node]:
    """The perfect subtrees whose fold is the root of a tree of ``size`` leaves."""
    return range_nodes(0, size)


def root_from_nodes(size: int, node: NodeGetter) -> bytes:
    return range_hash(0, size, node)


def _inclusion_plan(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose hashes form PATH(index, D[0:size]), leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            ranges.append((start + k, start + n))
            n = k
        else:
            ranges.append((start, start + k))
            start, n, m = start + k, n - k, m - k
    ranges.reverse()
    return ranges


def _consistency_plan(size1: int, size2: int) -> list[tuple[int, int]]:
    """The ranges whose hashes form PROOF(size1, D[0:size2]) (RFC 9162 2.1.4.1)."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    ranges: list[tuple[int, int]] = []
    start, m, n, whole = 0, size1, size2, True
    while m != n:
        k = _split(n)
        if m <= k:
            ranges.append((start + k, start + n))
            n = k
        else:
            ranges.append((start, start + k))
            start, m, n, whole = start + k, m - k, n - k, False
    if not whole:
        ranges.append((start, start + n))
    ranges.reverse()
    return ranges


def _nodes_of(ranges: list[tuple[int, int]]) -> list[Node]:
    seen: dict[Node, None] = {}
    for start, end in ranges:
        for item in range_nodes(start, end):
            seen[item] = None
    return list(seen)


def inclusion_nodes(index: int, size: int) -> list[Node]:
    """The stored perfect subtrees an inclusion proof reads."""
    return _nodes_of(_inclusion_plan(index, size))


def consistency_nodes(size1: int, size2: int) -> list[Node]:
    """The stored perfect subtrees a consistency proof reads."""
    return _nodes_of(_consistency_plan(size1, size2))


def inclusion_proof(index: int, size: int, node: NodeGetter | Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    ``node`` is a ``node(level, index)`` getter or a sequence of leaf hashes.
    Raises ``ValueError`` if ``index`` is not below ``size``.
    """
    getter = node if callable(node) else nodes_from_leaves(node)
    return [range_hash(a, b, getter) for a, b in _inclusion_plan(index, size)]


def consistency_proof(size1: int, size2: int, node: NodeGetter | Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of ``size1`` leaves is a prefix of the one of ``size2``.

    Raises ``ValueError`` unless ``0 < size1 <= size2``.
    """
    getter = node if callable(node) else nodes_from_leaves(node)
    return [range_hash(a, b, getter) for a, b in _consistency_plan(size1, size2)]


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when ``proof`` puts ``leaf_hash`` at ``index`` under ``root`` (RFC 9162 2.1.3.2)."""
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        return False
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows tree ``size1``/``root1`` is a prefix of ``size2``/``root2``."""
    if size1 <= 0 or size1 > size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2
