"""audit.merkle against the published RFC 6962/9162 vectors and against itself."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle
from tests.conftest import require_shared


def _b64(value):
    return base64.b64decode(value or "")


def _cases(shared_dir, kind):
    folder = shared_dir / "conformance" / "merkle-vectors" / "testdata" / kind
    require_shared(folder)  # fails in CI, skips locally
    files = sorted(folder.rglob("*.json"))
    assert files, f"no vectors under {folder}"
    return [(path, json.loads(path.read_text())) for path in files]


def test_every_published_inclusion_vector_gives_the_published_answer(shared_dir):
    wrong = []
    for path, case in _cases(shared_dir, "inclusion"):
        ok = merkle.verify_inclusion(
            _b64(case["leafHash"]),
            case["leafIdx"],
            case["treeSize"],
            [_b64(p) for p in case["proof"] or []],
            _b64(case["root"]),
        )
        if ok == case["wantErr"]:
            wrong.append(path.name)
    assert wrong == []


def test_every_published_consistency_vector_gives_the_published_answer(shared_dir):
    wrong = []
    for path, case in _cases(shared_dir, "consistency"):
        ok = merkle.verify_consistency(
            case["size1"],
            case["size2"],
            _b64(case["root1"]),
            _b64(case["root2"]),
            [_b64(p) for p in case["proof"] or []],
        )
        if ok == case["wantErr"]:
            wrong.append(str(path))
    assert wrong == []


def test_happy_path_proofs_are_the_ones_we_build(shared_dir):
    # The vectors' tree is RFC 6962's eight reference leaves; rebuild it and compare.
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    leaves = [merkle.leaf_hash(d) for d in data]
    checked = 0
    for _path, case in _cases(shared_dir, "inclusion"):
        if case["desc"] == "happy path" and case["treeSize"] <= 8:
            assert merkle.root(leaves[: case["treeSize"]]) == _b64(case["root"])
            built = merkle.inclusion_proof(case["leafIdx"], case["treeSize"], leaves)
            assert built == [_b64(p) for p in case["proof"] or []]
            checked += 1
    for _path, case in _cases(shared_dir, "consistency"):
        if case["desc"] == "happy path" and case["size2"] <= 8:
            built = merkle.consistency_proof(case["size1"], case["size2"], leaves)
            assert built == [_b64(p) for p in case["proof"] or []]
            checked += 1
    assert checked >= 4


def test_empty_tree_root_is_sha256_of_nothing():
    assert merkle.root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_proof_builders_refuse_impossible_sizes():
    leaves = [merkle.leaf_hash(b"x")] * 4
    with pytest.raises(ValueError):
        merkle.inclusion_proof(4, 4, leaves)
    with pytest.raises(ValueError):
        merkle.consistency_proof(0, 4, leaves)
    with pytest.raises(ValueError):
        merkle.consistency_proof(3, 2, leaves)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=70), data=st.data())
def test_built_proofs_verify_and_tampered_proofs_do_not(size, data):
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    size1 = data.draw(st.integers(min_value=1, max_value=size))
    root = merkle.root(leaves)
    root1 = merkle.root(leaves[:size1])
    path = merkle.inclusion_proof(index, size, leaves)
    assert merkle.verify_inclusion(leaves[index], index, size, path, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), index, size, path, root)
    proof = merkle.consistency_proof(size1, size, leaves)
    assert merkle.verify_consistency(size1, size, root1, root, proof)
    if proof:
        bad = [bytes(32), *proof[1:]]
        assert not merkle.verify_consistency(size1, size, root1, root, bad)
    # The node lists name exactly what the builders read: a getter limited to them works.
    getter = merkle.nodes_from_leaves(leaves)
    needed = set(merkle.inclusion_nodes(index, size)) | set(merkle.consistency_nodes(size1, size))
    needed |= set(merkle.root_nodes(size))

    def limited(level, idx):
        assert (level, idx) in needed
        return getter(level, idx)

    assert merkle.inclusion_proof(index, size, limited) == path
    assert merkle.consistency_proof(size1, size, limited) == proof
    assert merkle.root_from_nodes(size, limited) == root
