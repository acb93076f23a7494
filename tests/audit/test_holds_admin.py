"""Legal holds in the admin: placed and released only through the services, by Legal or DPO."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import LedgerEntry, LegalHold
from audit.retention import legal_hold_place, legal_hold_release, retention_apply
from audit.services import LedgerEvent, checkpoint_create, ledger_append_many
from fedgov import roles
from fedgov.actors import Actor
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/legalhold/"
ADD = "/admin/audit/legalhold/add/"
SYSTEM = Actor.system("admin-tests")


@pytest.fixture
def staff(client):
    """``staff(*roles)``: the test client logged into the admin as a staff user with roles."""

    def _login(*role_names: str, username: str = "staffer"):
        user = UserFactory(username=username, roles=role_names, is_staff=True)
        client.force_login(user)
        return client

    return _login


def events(event_type: str) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(event_type=event_type).order_by("seq"))


def place(reference: str = "CASE-1") -> LegalHold:
    return legal_hold_place(actor=SYSTEM, reference=reference, reason="kept for a case")


# ------------------------------------------------------------------------- placing


@pytest.mark.parametrize("role", [roles.LEGAL, roles.DPO])
def test_placing_a_hold_in_the_admin_goes_through_the_service(staff, role):
    client = staff(role, username="lena")

    page = client.get(ADD)
    response = client.post(
        ADD,
        {
            "reference": "CASE-9",
            "reason": "regulator's inquiry",
            "subject_type": "dataset",
            "subject_id": "7",
            "held_from": "2026-01-01T00:00",
            "held_until": "",
        },
    )

    assert page.status_code == 200
    assert b"Place hold" in page.content
    hold = LegalHold.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{CHANGELIST}{hold.pk}/change/"
    assert (hold.reference, hold.subject_type, hold.subject_id) == ("CASE-9", "dataset", "7")
    assert hold.held_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert hold.held_until is None
    assert hold.placed_by == "lena"
    (event,) = events("legal_hold.placed")
    assert event.actor_repr == "lena"
    assert json.loads(event.payload)["hold_id"] == hold.pk


def test_a_superuser_may_place_a_hold(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    response = client.post(ADD, {"reference": "ROOT-1", "reason": "board decision"})

    assert response.status_code == 302
    assert LegalHold.objects.get().placed_by == "root"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"subject_type": "dataset"}, "subject_id"),
        ({"subject_id": "7"}, "subject_type"),
        ({"held_from": "2026-03-01T00:00", "held_until": "2026-02-01T00:00"}, "held_until"),
        ({"held_from": "soon"}, "held_from"),
        ({"reason": "   "}, "reason"),
    ],
)
def test_a_refused_hold_comes_back_with_the_fields_error_and_writes_nothing(staff, fields, field):
    client = staff(roles.DPO)

    response = client.post(ADD, {"reference": "CASE-2", "reason": "why", **fields})

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not LegalHold.objects.exists()
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("role", [roles.OPERATOR, roles.AUDITOR, roles.SITE_STEWARD])
def test_staff_without_legal_or_dpo_cannot_place_a_hold(staff, role):
    client = staff(role)

    assert client.get(ADD).status_code == 403
    assert client.post(ADD, {"reference": "X", "reason": "y"}).status_code == 403
    assert not LegalHold.objects.exists()
    assert not LedgerEntry.objects.exists()


# ------------------------------------------------------------------------- reading


def test_auditors_see_the_list_and_a_read_only_hold_without_release(staff):
    hold = place()
    client = staff(roles.AUDITOR)

    listing = client.get(CHANGELIST)
    page = client.get(f"{CHANGELIST}{hold.pk}/change/")

    assert listing.status_code == 200
    assert b"CASE-1" in listing.content and b"all entries" in listing.content
    assert b"Release selected legal holds" not in listing.content
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert b"/release/" not in page.content
    assert b"legal_hold.placed" in page.content


def test_the_list_filters_active_and_released_holds(staff):
    legal_hold_release(actor=SYSTEM, hold=place("GONE"), reason="settled")
    place("KEPT")
    client = staff(roles.LEGAL)

    active = client.get(CHANGELIST, {"active": "yes"})
    released = client.get(CHANGELIST, {"active": "no"})

    assert [h.reference for h in active.context["cl"].result_list] == ["KEPT"]
    assert [h.reference for h in released.context["cl"].result_list] == ["GONE"]


def test_a_hold_row_is_never_changed_or_deleted_in_the_admin(staff):
    hold = place()
    client = staff(roles.DPO)

    change = client.post(f"{CHANGELIST}{hold.pk}/change/", {"reference": "EDITED"})
    delete = client.post(f"{CHANGELIST}{hold.pk}/delete/", {"post": "yes"})
    bulk = client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [hold.pk]})

    assert (change.status_code, delete.status_code) == (403, 403)
    assert bulk.status_code in (200, 302)
    hold.refresh_from_db()
    assert hold.reference == "CASE-1"
    assert LegalHold.objects.count() == 1


# ----------------------------------------------------------------------- releasing


def test_the_release_action_asks_for_a_reason_then_calls_the_service(staff):
    first, second = place("A"), place("B")
    client = staff(roles.LEGAL, username="lena")
    selection = {"action": "release_holds", "_selected_action": [first.pk, second.pk]}

    asked = client.post(CHANGELIST, selection)
    refused = client.post(CHANGELIST, {**selection, "apply": "1", "reason": ""})
    done = client.post(CHANGELIST, {**selection, "apply": "1", "reason": "case closed"})

    assert asked.status_code == 200 and b"Why the hold ends" in asked.content
    assert refused.status_code == 200 and refused.context["form"].errors
    assert done.status_code == 302
    assert not LegalHold.objects.filter(released_at__isnull=True).exists()
    assert set(LegalHold.objects.values_list("released_by", flat=True)) == {"lena"}
    released = events("legal_hold.released")
    assert sorted(json.loads(e.payload)["hold_id"] for e in released) == [first.pk, second.pk]


def test_releasing_a_released_hold_again_is_refused_with_a_message(staff):
    hold = place()
    legal_hold_release(actor=SYSTEM, hold=hold, reason="settled")
    client = staff(roles.DPO)

    response = client.post(
        CHANGELIST,
        {"action": "release_holds", "_selected_action": [hold.pk], "apply": "1", "reason": "x"},
        follow=True,
    )

    assert "refused" in " ".join(str(m) for m in response.context["messages"])
    assert len(events("legal_hold.released")) == 1


def test_the_release_button_on_a_hold_page(staff):
    hold = place()
    client = staff(roles.DPO, username="dora")
    release = f"{CHANGELIST}{hold.pk}/release/"

    page = client.get(f"{CHANGELIST}{hold.pk}/change/")
    form = client.get(release)
    done = client.post(release, {"reason": "inquiry ended"})

    assert release.encode() in page.content
    assert form.status_code == 200
    assert done.status_code == 302 and done["Location"] == f"{CHANGELIST}{hold.pk}/change/"
    hold.refresh_from_db()
    assert (hold.active, hold.released_by, hold.release_reason) == (False, "dora", "inquiry ended")
    assert b"/release/" not in client.get(f"{CHANGELIST}{hold.pk}/change/").content


@pytest.mark.parametrize("role", [roles.OPERATOR, roles.AUDITOR])
def test_staff_without_legal_or_dpo_cannot_release(staff, role):
    hold = place()
    client = staff(role)

    button = client.post(f"{CHANGELIST}{hold.pk}/release/", {"reason": "x"})
    action = client.post(
        CHANGELIST,
        {"action": "release_holds", "_selected_action": [hold.pk], "apply": "1", "reason": "x"},
    )

    assert button.status_code == 403
    assert action.status_code in (200, 302, 403)
    hold.refresh_from_db()
    assert hold.active
    assert not events("legal_hold.released")


# ---------------------------------------------------------------- redacted entries


def test_ledger_entry_admin_shows_and_filters_redacted_entries(client, monkeypatch):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    then = timezone.now() - timedelta(days=11 * 365)
    monkeypatch.setattr("fedgov.clock.now", lambda: then)
    with transaction.atomic():
        ledger_append_many(
            actor=SYSTEM, events=[LedgerEvent("test.happened", "thing", i, {}) for i in range(3)]
        )
    checkpoint_create(actor=SYSTEM)
    monkeypatch.undo()
    legal_hold_place(actor=SYSTEM, reference="K", reason="k", subject_type="thing", subject_id="1")
    retention_apply(actor=SYSTEM)

    redacted = client.get("/admin/audit/ledgerentry/", {"redacted": "yes"})
    kept = client.get("/admin/audit/ledgerentry/", {"redacted": "no"})
    page = client.get("/admin/audit/ledgerentry/0/change/")

    assert [e.seq for e in redacted.context["cl"].result_list] == [0, 2]
    assert 1 in [e.seq for e in kept.context["cl"].result_list]
    assert 0 not in [e.seq for e in kept.context["cl"].result_list]
    assert b"Redacted at" in page.content
