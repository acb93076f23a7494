"""The standalone witness: C2SP tlog-witness add-checkpoint, cosignature/v1, its own state.

Wire formats are checked against the examples in C2SP's tlog-witness.md and
tlog-cosignature.md; signatures are re-verified here with plain ``cryptography`` calls.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import merkle, note, witness

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "fedgov.example/ledger"

# From c2sp.org/tlog-witness, "Example request body".
SPEC_REQUEST = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks"
    "+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)
# From c2sp.org/tlog-cosignature: the example cosignature and its signed message.
SPEC_COSIGNATURE = (
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe"
    "+mbIUBkBIfZ+qnA=="
)
SPEC_MESSAGE = (
    "cosignature/v1\n"
    "time 1679315147\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


class Log:
    """A log in memory: leaves, its signing key, checkpoints and proofs."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.leaves: list[bytes] = []

    def grow(self, count: int) -> None:
        start = len(self.leaves)
        self.leaves += [
            merkle.leaf_hash(f"entry {i}".encode()) for i in range(start, start + count)
        ]

    def checkpoint(self, size: int | None = None, root: bytes | None = None) -> str:
        size = len(self.leaves) if size is None else size
        root = merkle.root(self.leaves[:size]) if root is None else root
        body = note.Checkpoint(ORIGIN, size, root, "2026-12-07T00:00:00Z").body()
        return note.sign(body, ORIGIN, self.key)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        return merkle.consistency_proof(old, new, self.leaves[:new]) if old > 0 else []

    @property
    def vkey(self) -> str:
        return note.verifier_key(ORIGIN, self.key.public_key())


def request(old: int, proof: list[bytes], checkpoint: str) -> bytes:
    lines = [f"old {old}"] + [base64.b64encode(p).decode() for p in proof]
    return ("\n".join(lines) + "\n\n" + checkpoint).encode()


@pytest.fixture
def log() -> Log:
    made = Log()
    made.grow(5)
    return made


@pytest.fixture
def make_witness(tmp_path, log):
    def _make(**kwargs) -> witness.Witness:
        return witness.Witness(
            name="witness.site-a.example/w1",
            key=kwargs.pop("key", None) or _make.key,
            logs=[witness.LogKey.from_vkey(log.vkey)],
            state=witness.State(tmp_path / "state.json"),
            refusals=tmp_path / "refusals.jsonl",
            clock=lambda: 1_765_000_000,
            **kwargs,
        )

    _make.key = Ed25519PrivateKey.generate()
    return _make


def refused(w: witness.Witness, raw: bytes) -> witness.Refusal:
    with pytest.raises(witness.Refusal) as caught:
        w.add_checkpoint(raw)
    return caught.value


def test_spec_request_example_parses_into_old_size_proof_and_checkpoint():
    old, proof, checkpoint = witness.parse_request(SPEC_REQUEST.encode())
    assert old == 20852014
    assert [base64.b64encode(p).decode() for p in proof] == SPEC_REQUEST.split("\n")[1:5]
    body, signatures = note.split(checkpoint)
    assert (
        body
        == "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    assert [s.name for s in signatures] == ["example.com/behind-the-sofa"] * 2


def test_signed_message_is_the_spec_example_byte_for_byte():
    body = SPEC_MESSAGE.split("\n", 2)[2]
    assert witness.cosigned_message(body, 1679315147) == SPEC_MESSAGE.encode()


def test_cosignature_layout_matches_the_spec_example():
    # Spec example: key ID (4) || timestamp u64 big-endian (8) || Ed25519 signature (64),
    # and its timestamp is the one in the spec's signed message.
    raw = base64.b64decode(SPEC_COSIGNATURE)
    assert len(raw) == 76
    assert struct.unpack(">Q", raw[4:12])[0] == 1679315147
    key = Ed25519PrivateKey.generate()
    body = SPEC_MESSAGE.split("\n", 2)[2]
    line = witness.cosign(body, "witness.example.com/w1", key, 1679315147)
    assert line.startswith("\u2014 witness.example.com/w1 ") and line.endswith("\n")
    ours = base64.b64decode(line.rsplit(" ", 1)[1])
    assert len(ours) == 76 and ours[4:12] == raw[4:12]
    expected_id = hashlib.sha256(
        b"witness.example.com/w1\n\x04" + note.raw_public(key.public_key())
    ).digest()[:4]
    assert ours[:4] == expected_id
    key.public_key().verify(ours[12:], SPEC_MESSAGE.encode())


def test_cosigns_first_checkpoint_then_a_consistent_larger_one(make_witness, log, tmp_path):
    w = make_witness()
    first = log.checkpoint()
    line = w.add_checkpoint(request(0, [], first))
    body = note.split(first)[0]
    cosig = witness.open_cosignature(line, body, w.name, w.key.public_key())
    assert cosig.timestamp == 1_765_000_000
    log.grow(4)
    second = log.checkpoint()
    line = w.add_checkpoint(request(5, log.proof(5), second))
    raw = base64.b64decode(line.split(" ")[-1])
    message = f"cosignature/v1\ntime 1765000000\n{note.split(second)[0]}".encode()
    w.key.public_key().verify(raw[12:], message)  # independent of witness.open_cosignature
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["logs"][ORIGIN] == {
        "size": 9,
        "root": base64.b64encode(merkle.root(log.leaves)).decode(),
    }


def test_a_smaller_tree_is_never_cosigned(make_witness, log):
    w = make_witness()
    log.grow(4)
    w.add_checkpoint(request(0, [], log.checkpoint()))  # size 9
    smaller = log.checkpoint(size=5)
    assert refused(w, request(9, [], smaller)).status == 400  # old above checkpoint size
    stale = refused(w, request(5, [], smaller))
    assert (stale.status, stale.body) == (409, "9\n")  # the witness's size, per the spec
    assert refused(w, request(0, [], smaller)).status == 409


def test_a_different_root_at_the_cosigned_size_is_refused_and_logged(make_witness, log, tmp_path):
    w = make_witness()
    w.add_checkpoint(request(0, [], log.checkpoint()))
    fork = log.checkpoint(root=hashlib.sha256(b"fork").digest())
    error = refused(w, request(5, [], fork))
    assert error.status == 422 and "fork" in error.reason
    records = [json.loads(x) for x in (tmp_path / "refusals.jsonl").read_text().splitlines()]
    assert records[-1] | {"time": 0} == {
        "time": 0,
        "status": 422,
        "reason": error.reason,
        "origin": ORIGIN,
        "old": 5,
        "size": 5,
    }
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["logs"][ORIGIN]["root"] == base64.b64encode(merkle.root(log.leaves)).decode()


def test_an_inconsistent_larger_tree_is_refused(make_witness, log):
    w = make_witness()
    w.add_checkpoint(request(0, [], log.checkpoint()))
    rewritten = Log()
    rewritten.key = log.key
    rewritten.grow(9)
    rewritten.leaves[2] = merkle.leaf_hash(b"edited")
    forged = rewritten.checkpoint()
    assert refused(w, request(5, rewritten.proof(5), forged)).status == 422
    # The honest proof for another tree does not help either.
    log.grow(4)
    assert refused(w, request(5, log.proof(5), forged)).status == 422


def test_state_survives_a_restart_and_still_refuses_a_rollback(make_witness, log):
    make_witness().add_checkpoint(request(0, [], log.checkpoint()))
    log.grow(3)
    make_witness().add_checkpoint(request(5, log.proof(5), log.checkpoint()))
    again = make_witness()  # a new process reading the same state file
    assert refused(again, request(0, [], log.checkpoint(size=5))).body == "8\n"


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda raw: raw.replace(ORIGIN.encode(), b"other.example/log"), 404),
        (lambda raw: raw[: raw.rindex(b"\xe2\x80\x94")], 400),  # no signature line left
    ],
)
def test_unknown_origin_and_unsigned_notes(make_witness, log, mutate, status):
    assert refused(make_witness(), mutate(request(0, [], log.checkpoint()))).status == status


def test_signature_by_an_untrusted_key_or_a_bad_signature_is_403(make_witness, log):
    w = make_witness()
    stranger = Log()
    stranger.leaves = log.leaves
    assert refused(w, request(0, [], stranger.checkpoint())).status == 403
    good = log.checkpoint()
    body, sigs = note.split(good)
    blob = sigs[0].key_hash + bytes([sigs[0].signature[0] ^ 1]) + sigs[0].signature[1:]
    bad = f"{body}\n\u2014 {ORIGIN} {base64.b64encode(blob).decode()}\n"
    assert refused(w, request(0, [], bad)).status == 403


@pytest.mark.parametrize(
    "raw",
    [
        b"old 05\n\n",
        b"old -1\n\n",
        b"new 0\n\n",
        b"old 0\nnot base64!\n\n",
        b"old 0\n" + b"AAAA\n",
    ],
)
def test_malformed_requests_are_400(make_witness, log, raw):
    checkpoint = log.checkpoint().encode()
    assert refused(make_witness(), raw + checkpoint).status == 400


def test_more_than_63_proof_lines_is_400(make_witness, log):
    raw = request(0, [bytes(32)] * 64, log.checkpoint())
    assert refused(make_witness(), raw).status == 400


def test_proof_with_old_size_zero_and_wrong_empty_root_are_422(make_witness, log):
    w = make_witness()
    assert refused(w, request(0, [bytes(32)], log.checkpoint())).status == 422
    empty = log.checkpoint(size=0, root=bytes(32))
    assert refused(w, request(0, [], empty)).status == 422


def test_concurrent_submissions_never_roll_the_state_back(make_witness, log):
    w = make_witness()
    w.add_checkpoint(request(0, [], log.checkpoint()))
    log.grow(10)
    requests = [request(5, log.proof(5, n), log.checkpoint(size=n)) for n in range(6, 16)]
    outcomes: list[int] = []

    def submit(raw: bytes) -> None:
        try:
            w.add_checkpoint(raw)
            outcomes.append(200)
        except witness.Refusal as refusal:
            outcomes.append(refusal.status)

    threads = [threading.Thread(target=submit, args=(raw,)) for raw in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [200] + [409] * 9
    assert w.state.get(ORIGIN)[0] in range(6, 16)


def _post(url: str, raw: bytes) -> tuple[int, str, str]:
    # The URL is the loopback http:// address the witness printed.
    req = urllib.request.Request(url, data=raw, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_the_program_runs_without_django_and_speaks_http(tmp_path, log):
    code = (
        "import sys, runpy; sys.argv = ['audit.witness', *sys.argv[1:]];"
        "import audit.witness;"
        "apps = ('django', 'fedgov', 'rest_framework', 'sites', 'training');"
        "assert not [m for m in sys.modules if m.split('.')[0] in apps], 'imports an app';"
        "runpy.run_module('audit.witness', run_name='__main__')"
    )
    args = [
        sys.executable, "-c", code, "--name", "site-a.example/w", "--key",
        str(tmp_path / "w.pem"), "--state", str(tmp_path / "w.json"), "--log", log.vkey,
    ]  # fmt: skip
    process = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        vkey = process.stdout.readline().strip()
        listening = process.stdout.readline().strip()
        assert listening.startswith("listening http://127.0.0.1:"), process.stderr.read()
        url = listening.split(" ", 1)[1] + "/add-checkpoint"
        status, kind, body = _post(url, request(0, [], log.checkpoint()))
        assert status == 200 and kind.startswith("text/plain")
        name, key_hash, encoded = vkey.split("+", 2)
        public = base64.b64decode(encoded)
        assert public[:1] == b"\x04" and name == "site-a.example/w"
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = Ed25519PublicKey.from_public_bytes(public[1:])
        assert key_hash == witness.cosigner_key_id(name, key).hex()
        witness.open_cosignature(body, note.split(log.checkpoint())[0], name, key)
        status, kind, body = _post(url, request(0, [], log.checkpoint()))
        assert (status, kind.split(";")[0], body) == (409, "text/x.tlog.size", "5\n")
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (tmp_path / "w.pem").stat().st_mode & 0o077 == 0
