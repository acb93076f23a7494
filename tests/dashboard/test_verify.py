"""The "verify now" button: it runs the full ledger verification and records the result."""

from __future__ import annotations

import json

from django.urls import reverse

from audit.models import LedgerEntry
from audit.services import checkpoint_create
from dashboard.models import LedgerVerification
from dashboard.services import ledger_verification_run
from fedgov import roles
from fedgov.actors import Actor
from tests.audit.conftest import guards_down
from tests.factories import UserFactory

VERIFY = "/dashboard/ledger/verify"


def test_verify_url_is_under_dashboard():
    assert reverse("dashboard:verify-ledger") == VERIFY


def test_verify_now_records_a_passed_verification_and_a_ledger_event(browser_for, two_runs):
    checkpoint_create(actor=Actor.system("tests"))
    size_before = LedgerEntry.objects.count()
    client = browser_for(roles.AUDITOR, username="aud")

    governed, _orphan, _sites = two_runs
    response = client.post(VERIFY, {"query": f"run={governed.pk}"})

    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/?run={governed.pk}#ledger"
    row = LedgerVerification.objects.get()
    assert row.ok is True
    assert row.size == size_before
    assert row.checkpoints == 1
    assert row.first_bad_seq is None
    assert row.requested_by_name == "aud"
    event = LedgerEntry.objects.get(seq=row.ledger_seq)
    assert event.event_type == "ledger.verified"
    assert json.loads(event.payload) == {
        "verification_id": row.pk,
        "size": size_before,
        "checkpoints": 1,
        "trusted_keys": row.trusted_keys,
        "ok": True,
    }
    page = client.get(response["Location"]).content.decode()
    assert "Ledger verified" in page
    assert "passed" in page


def test_verify_now_records_tampering_with_the_first_bad_seq(browser_for, two_runs):
    victim = LedgerEntry.objects.order_by("seq")[3]
    with guards_down() as db, db.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_ledgerentry SET payload = %s WHERE seq = %s",
            ['{"forged":true}', victim.seq],
        )
    size_before = LedgerEntry.objects.count()
    client = browser_for(roles.DPO)

    response = client.post(VERIFY)

    assert response["Location"] == "/dashboard/#ledger"
    row = LedgerVerification.objects.get()
    assert row.ok is False
    assert row.first_bad_seq == victim.seq
    assert row.problems and row.problems[0].startswith(f"seq {victim.seq}:")
    assert row.ledger_seq is None
    assert LedgerEntry.objects.count() == size_before  # nothing appended to a broken ledger
    page = client.get(response["Location"]).content.decode()
    assert f"first bad sequence number {victim.seq}" in page
    assert f"failed at seq {victim.seq}" in page


def test_verification_of_an_empty_ledger_passes_and_starts_it(db):
    row = ledger_verification_run(actor=Actor.of(UserFactory(roles=[roles.DPO])))

    assert row.ok and row.size == 0
    assert LedgerEntry.objects.get().event_type == "ledger.verified"


def test_verify_is_post_only(browser_for, db):
    assert browser_for(roles.DPO).get(VERIFY).status_code == 405
    assert not LedgerVerification.objects.exists()


def test_anonymous_verify_is_sent_to_login_and_records_nothing(client, db):
    response = client.post(VERIFY)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("dashboard:login"))
    assert not LedgerVerification.objects.exists()


def test_verify_requires_the_csrf_token(db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(roles=[roles.DPO]))

    assert client.post(VERIFY).status_code == 403
    assert not LedgerVerification.objects.exists()


def test_ledger_health_shows_size_checkpoint_and_what_is_not_anchored(browser_for, two_runs):
    checkpoint = checkpoint_create(actor=Actor.system("tests"))
    from django.db import transaction

    from audit.services import ledger_append

    with transaction.atomic():
        ledger_append(
            event_type="test.happened",
            actor=Actor.system("tests"),
            subject_type="thing",
            subject_id=1,
            payload={"n": 1},
        )

    health = browser_for(roles.DPO).get("/dashboard/").context["health"]

    assert health.size == checkpoint.size + 1
    assert health.checkpoint_size == checkpoint.size
    assert health.unanchored == 1
    assert health.stale is False
    assert health.last_verification is None
