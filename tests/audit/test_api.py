"""The read-only ledger API: who may read, filters, proofs that verify, clear 400s."""

from __future__ import annotations

import base64

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit import merkle, note
from fedgov import roles

pytestmark = pytest.mark.django_db


def b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture
def auditor(make_user):
    return make_user(roles.AUDITOR, username="auditor")


@pytest.mark.parametrize("role", [roles.AUDITOR, roles.DPO, roles.LEGAL])
def test_auditors_dpos_and_legal_read_the_ledger(make_user, api, append, role):
    append(3)
    response = api(make_user(role)).get("/api/v1/ledger/entries")
    assert response.status_code == 200
    assert [row["seq"] for row in response.json()["results"]] == [0, 1, 2]


@pytest.mark.parametrize("role", [roles.OPERATOR, roles.SITE_STEWARD, roles.SERVICE])
def test_other_roles_may_not_read_the_ledger(make_user, api, role):
    assert api(make_user(role)).get("/api/v1/ledger/entries").status_code == 403
    assert api(make_user(role)).get("/api/v1/ledger/keys").status_code == 403


def test_anonymous_is_refused(api):
    assert api().get("/api/v1/ledger/checkpoints/latest").status_code in (401, 403)


def test_ledger_api_accepts_no_writes(api, auditor, dpo):
    for user in (auditor, dpo):
        assert api(user).post("/api/v1/ledger/entries", {}, format="json").status_code in (403, 405)


def test_entries_filter_by_type_subject_and_time(api, auditor, append):
    append(3, event_type="test.happened")
    append(2, event_type="test.leaf", start=3)
    client = api(auditor)
    body = client.get("/api/v1/ledger/entries", {"event_type": "test.leaf"}).json()
    assert [row["seq"] for row in body["results"]] == [3, 4]
    assert body["results"][0]["payload"]["n"] == 3
    body = client.get("/api/v1/ledger/entries", {"subject_type": "thing", "subject_id": "1"}).json()
    assert [row["seq"] for row in body["results"]] == [1]
    body = client.get("/api/v1/ledger/entries", {"since": "2000-01-01T00:00:00Z"}).json()
    assert body["count"] == 5
    body = client.get("/api/v1/ledger/entries", {"until": "2000-01-01T00:00:00Z"}).json()
    assert body["count"] == 0
    page = client.get("/api/v1/ledger/entries", {"limit": 2, "offset": 2}).json()
    assert [row["seq"] for row in page["results"]] == [2, 3]


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/api/v1/ledger/entries", {"since": "yesterday"}, "since"),
        ("/api/v1/ledger/entries", {"limit": "many"}, "limit"),
        ("/api/v1/ledger/entries", {"limit": "0"}, "limit"),
        ("/api/v1/ledger/entries", {"limit": "5000"}, "limit"),
        ("/api/v1/ledger/entries", {"offset": "-1"}, "offset"),
        ("/api/v1/ledger/entries", {"subjet_id": "1"}, "subjet_id"),
        ("/api/v1/ledger/inclusion", {"size": "3"}, "seq"),
        ("/api/v1/ledger/inclusion", {"seq": "x", "size": "3"}, "seq"),
        ("/api/v1/ledger/inclusion", {"seq": "3", "size": "3"}, "seq"),
        ("/api/v1/ledger/inclusion", {"seq": "0", "size": "99"}, "size"),
        ("/api/v1/ledger/inclusion", {"seq": "0", "size": "0"}, "size"),
        ("/api/v1/ledger/consistency", {"from": "0", "to": "3"}, "from"),
        ("/api/v1/ledger/consistency", {"from": "3", "to": "2"}, "from"),
        ("/api/v1/ledger/consistency", {"from": "1", "to": "9"}, "to"),
        ("/api/v1/ledger/consistency", {"from": "1"}, "to"),
        ("/api/v1/ledger/entries", {"offset": str(10**30)}, "offset"),
        ("/api/v1/ledger/checkpoints/" + str(10**30), {}, "size"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(
    api, auditor, append, url, params, field
):
    append(3)
    response = api(auditor).get(url, params)
    assert response.status_code == 400
    assert field in response.json()


def test_inclusion_proof_verifies_against_the_checkpoint_root(api, auditor, append, checkpoint):
    append(10)
    cp = checkpoint()  # 10 events + the key trusted on first use
    client = api(auditor)
    latest = client.get("/api/v1/ledger/checkpoints/latest").json()
    assert latest["size"] == 11
    assert client.get("/api/v1/ledger/checkpoints/11").json()["note"] == cp.note
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/api/v1/ledger/inclusion", {"seq": 6, "size": 11}).json()
    proof_queries = [q for q in queries if "audit_subtreehash" in q["sql"]]
    assert len(proof_queries) == 1
    assert b64(body["root"]) == b64(latest["root"])
    assert merkle.verify_inclusion(
        b64(body["leaf_hash"]), 6, 11, [b64(p) for p in body["proof"]], b64(latest["root"])
    )


def test_consistency_proof_links_two_checkpoints(api, auditor, append, checkpoint):
    append(4)
    old = checkpoint()  # 4 events + the key trusted on first use
    append(8, start=4)
    new = checkpoint()
    body = api(auditor).get("/api/v1/ledger/consistency", {"from": 5, "to": 13}).json()
    assert merkle.verify_consistency(
        5, 13, bytes(old.root), bytes(new.root), [b64(p) for p in body["proof"]]
    )


def test_missing_checkpoints_are_404(api, auditor, append):
    client = api(auditor)
    assert client.get("/api/v1/ledger/checkpoints/latest").status_code == 404
    append(2)
    assert client.get("/api/v1/ledger/checkpoints/2").status_code == 404


def test_public_keys_verify_the_checkpoint_notes(api, auditor, append, checkpoint, settings):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    append(2)
    cp = checkpoint()
    [key] = api(auditor).get("/api/v1/ledger/keys").json()
    assert key["active"] is True
    public = Ed25519PublicKey.from_public_bytes(b64(key["public_key"]))
    trusted = {key["key_id"]: public}
    assert note.open_note(cp.note, trusted, settings.FEDGOV_LEDGER_ORIGIN)[1] == key["key_id"]
    assert key["vkey"] == note.verifier_key(settings.FEDGOV_LEDGER_ORIGIN, public)
