"""The legal-hold and retention API: who may hold, what a 400 names, what the ledger records."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import LedgerEntry, LegalHold
from audit.retention import legal_hold_place, legal_hold_release, retention_apply
from audit.services import LedgerEvent, checkpoint_create, ledger_append_many
from fedgov import roles
from fedgov.actors import Actor

pytestmark = pytest.mark.django_db

HOLDS = "/api/v1/ledger/holds"
RETENTION = "/api/v1/ledger/retention"
SYSTEM = Actor.system("hold-tests")


@pytest.fixture
def legal(make_user):
    return make_user(roles.LEGAL, username="lena-legal")


@pytest.fixture
def auditor(make_user):
    return make_user(roles.AUDITOR, username="aud")


def hold_events() -> list[tuple[str, dict]]:
    entries = LedgerEntry.objects.filter(event_type__startswith="legal_hold.").order_by("seq")
    return [(e.event_type, json.loads(e.payload)) for e in entries]


@pytest.fixture
def old_ledger(monkeypatch):
    """Six entries written (and signed) eleven years ago on subjects thing/0..5."""
    then = timezone.now() - timedelta(days=11 * 365)
    monkeypatch.setattr("fedgov.clock.now", lambda: then)
    with transaction.atomic():
        ledger_append_many(
            actor=SYSTEM,
            events=[LedgerEvent("test.happened", "thing", i, {"n": i}) for i in range(6)],
        )
    checkpoint_create(actor=SYSTEM)
    monkeypatch.undo()


# ------------------------------------------------------------------------- placing


@pytest.mark.parametrize("role", [roles.LEGAL, roles.DPO])
def test_legal_and_dpo_place_a_hold_and_the_ledger_records_it(api, make_user, role):
    user = make_user(role, username="holder")

    response = api(user).post(
        HOLDS,
        {
            "reference": "CASE-2026-17",
            "reason": "litigation hold, court order 17/2026",
            "subject_type": "dataset",
            "subject_id": "12",
            "held_from": "2026-01-01T00:00:00Z",
            "held_until": "2026-03-31T23:59:59Z",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    hold = LegalHold.objects.get()
    assert body["id"] == hold.pk
    assert body["active"] is True
    assert body["placed_by"] == "holder"
    assert (body["subject_type"], body["subject_id"]) == ("dataset", "12")
    assert body["scope"] == "dataset 12, from 2026-01-01 to 2026-03-31"
    assert body["held_from"].startswith("2026-01-01T00:00:00")
    ((event_type, payload),) = hold_events()
    assert event_type == "legal_hold.placed"
    assert payload["hold_id"] == hold.pk
    assert (payload["subject_type"], payload["subject_id"]) == ("dataset", "12")
    # Free text stays out of the ledger; only its hash goes in.
    assert "CASE-2026-17" not in json.dumps(payload)
    entry = LedgerEntry.objects.get(event_type="legal_hold.placed")
    assert (entry.subject_type, entry.subject_id, entry.actor_repr) == (
        "legal_hold",
        str(hold.pk),
        "holder",
    )


def test_a_hold_with_only_reference_and_reason_covers_the_whole_ledger(api, legal):
    response = api(legal).post(HOLDS, {"reference": "M-1", "reason": "merger"}, format="json")

    assert response.status_code == 201
    assert response.json()["scope"] == "all entries"
    assert response.json()["held_from"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reference": "C-1", "reason": ""}, "reason"),
        ({"reference": "C-1", "reason": "   "}, "reason"),
        ({"reference": "", "reason": "why"}, "reference"),
        ({"reason": "why"}, "reference"),
        ({"reference": "C-1", "reason": "why", "subject_type": "dataset"}, "subject_id"),
        ({"reference": "C-1", "reason": "why", "subject_id": "12"}, "subject_type"),
        (
            {
                "reference": "C-1",
                "reason": "why",
                "held_from": "2026-03-01T00:00:00Z",
                "held_until": "2026-02-01T00:00:00Z",
            },
            "held_until",
        ),
        ({"reference": "C-1", "reason": "why", "held_from": "last tuesday"}, "held_from"),
        ({"reference": "C-1", "reason": "why", "held_until": "2026-13-45T99:00"}, "held_until"),
        ({"reference": "C" * 65, "reason": "why"}, "reference"),
        ({"reference": "C-1", "reason": "why", "scope": "all"}, "scope"),
    ],
)
def test_a_bad_hold_is_a_400_naming_the_field_and_writes_nothing(api, legal, body, field):
    response = api(legal).post(HOLDS, body, format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not LegalHold.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(api, legal):
    response = api(legal).post(HOLDS, ["reference", "reason"], format="json")

    assert response.status_code == 400
    assert not LegalHold.objects.exists()


@pytest.mark.parametrize("role", [roles.AUDITOR, roles.OPERATOR, roles.SITE_STEWARD])
def test_other_roles_may_not_place_or_release_a_hold(api, make_user, role):
    hold = legal_hold_place(actor=SYSTEM, reference="K", reason="kept")
    client = api(make_user(role, username="someone"))

    placed = client.post(HOLDS, {"reference": "X", "reason": "y"}, format="json")
    released = client.post(f"{HOLDS}/{hold.pk}/release", {"reason": "z"}, format="json")

    assert (placed.status_code, released.status_code) == (403, 403)
    assert LegalHold.objects.count() == 1
    assert LegalHold.objects.get().active


# ------------------------------------------------------------------------- reading


def test_holds_are_listed_newest_first_and_filtered_by_active(api, auditor, monkeypatch):
    start = timezone.now() - timedelta(days=3)
    for day, reference in enumerate(["OLD", "MID", "NEW"]):
        monkeypatch.setattr("fedgov.clock.now", lambda d=day: start + timedelta(days=d))
        legal_hold_place(actor=SYSTEM, reference=reference, reason="kept")
    monkeypatch.undo()
    mid = LegalHold.objects.get(reference="MID")
    legal_hold_release(actor=SYSTEM, hold=mid, reason="settled")
    client = api(auditor)

    every = client.get(HOLDS).json()
    active = client.get(HOLDS, {"active": "true"}).json()
    released = client.get(HOLDS, {"active": "false"}).json()

    assert [h["reference"] for h in every["results"]] == ["NEW", "MID", "OLD"]
    assert [h["reference"] for h in active["results"]] == ["NEW", "OLD"]
    assert [h["reference"] for h in released["results"]] == ["MID"]
    assert released["results"][0]["release_reason"] == "settled"
    assert released["results"][0]["released_by"] == "system:hold-tests"


@pytest.mark.parametrize(
    ("params", "field"), [({"active": "yes"}, "active"), ({"status": "active"}, "status")]
)
def test_a_bad_list_parameter_is_a_400_naming_it(api, auditor, params, field):
    response = api(auditor).get(HOLDS, params)

    assert response.status_code == 400
    assert field in response.json()


def test_one_hold_is_readable_and_an_unknown_one_is_a_404(api, auditor):
    hold = legal_hold_place(actor=SYSTEM, reference="ONE", reason="kept")
    client = api(auditor)

    assert client.get(f"{HOLDS}/{hold.pk}").json()["reference"] == "ONE"
    assert client.get(f"{HOLDS}/{hold.pk + 1}").status_code == 404


# ----------------------------------------------------------------------- releasing


def test_releasing_a_hold_records_it_and_a_second_release_is_a_409(api, legal):
    hold = legal_hold_place(actor=SYSTEM, reference="R-1", reason="kept")
    client = api(legal)

    first = client.post(f"{HOLDS}/{hold.pk}/release", {"reason": "case closed"}, format="json")
    count = LedgerEntry.objects.count()
    second = client.post(f"{HOLDS}/{hold.pk}/release", {"reason": "again"}, format="json")

    assert first.status_code == 200
    assert first.json()["active"] is False
    assert first.json()["released_by"] == "lena-legal"
    assert second.status_code == 409
    assert "released" in second.json()["detail"]
    assert [t for t, _ in hold_events()] == ["legal_hold.placed", "legal_hold.released"]
    assert hold_events()[1][1]["hold_id"] == hold.pk
    assert LedgerEntry.objects.count() == count
    hold.refresh_from_db()
    assert hold.release_reason == "case closed"


def test_a_release_without_a_reason_is_a_400_and_keeps_the_hold(api, legal):
    hold = legal_hold_place(actor=SYSTEM, reference="R-2", reason="kept")

    response = api(legal).post(f"{HOLDS}/{hold.pk}/release", {"reason": " "}, format="json")

    assert response.status_code == 400
    assert "reason" in response.json()
    hold.refresh_from_db()
    assert hold.active
    assert [t for t, _ in hold_events()] == ["legal_hold.placed"]


def test_releasing_an_unknown_hold_is_a_404(api, legal):
    response = api(legal).post(f"{HOLDS}/4242/release", {"reason": "x"}, format="json")

    assert response.status_code == 404


# ----------------------------------------------------------------------- retention


def test_retention_status_previews_a_run_and_writes_nothing(api, auditor, old_ledger):
    legal_hold_place(
        actor=SYSTEM, reference="T-2", reason="kept", subject_type="thing", subject_id="2"
    )
    count = LedgerEntry.objects.count()

    response = api(auditor).get(RETENTION)

    assert response.status_code == 200
    body = response.json()
    assert body["retention_days"] == settings.FEDGOV_LEDGER_RETENTION_DAYS
    assert body["minimum_days"] == settings.FEDGOV_LEDGER_RETENTION_MIN_DAYS
    assert body["active_holds"] == 1
    assert body["redacted_entries"] == 0
    assert body["preview"] == {
        "would_redact": 5,
        "first_seq": 0,
        "last_seq": 5,
        "held": 1,
        "awaiting_checkpoint": 0,
    }
    cutoff = datetime.fromisoformat(body["cutoff"].replace("Z", "+00:00"))
    expected = timezone.now() - timedelta(days=settings.FEDGOV_LEDGER_RETENTION_DAYS)
    assert abs(cutoff - expected) < timedelta(minutes=1)
    assert LedgerEntry.objects.count() == count
    assert not LedgerEntry.objects.filter(redacted_at__isnull=False).exists()


def test_entries_say_when_their_contents_were_removed(api, auditor, old_ledger):
    legal_hold_place(
        actor=SYSTEM, reference="T-2", reason="kept", subject_type="thing", subject_id="2"
    )
    retention_apply(actor=SYSTEM)
    client = api(auditor)

    rows = {r["seq"]: r for r in client.get("/api/v1/ledger/entries").json()["results"]}
    status = client.get(RETENTION).json()

    assert rows[0]["redacted_at"] is not None
    assert (rows[0]["payload"], rows[0]["actor"]) == ({}, "")
    assert rows[2]["redacted_at"] is None
    assert rows[2]["payload"] == {"n": 2}
    assert status["redacted_entries"] == 5
    assert status["preview"]["would_redact"] == 0
