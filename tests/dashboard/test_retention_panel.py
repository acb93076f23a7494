"""The ledger-health panel states the retention period, active legal holds and redactions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.retention import legal_hold_place, legal_hold_release, retention_apply
from audit.services import LedgerEvent, checkpoint_create, ledger_append_many
from fedgov import roles
from fedgov.actors import Actor

URL = "/dashboard/"
SYSTEM = Actor.system("dashboard-tests")


def ledger_panel(page: str) -> str:
    return page.split('id="ledger"')[1].split('id="reports"')[0]


@pytest.mark.django_db
def test_ledger_health_shows_retention_holds_and_redactions(browser_for, settings, monkeypatch):
    settings.FEDGOV_LEDGER_RETENTION_DAYS = 400
    then = timezone.now() - timedelta(days=500)
    monkeypatch.setattr("fedgov.clock.now", lambda: then)
    with transaction.atomic():
        ledger_append_many(
            actor=SYSTEM, events=[LedgerEvent("test.happened", "thing", i, {}) for i in range(4)]
        )
    checkpoint_create(actor=SYSTEM)
    monkeypatch.undo()
    legal_hold_place(
        actor=SYSTEM, reference="A", reason="kept", subject_type="thing", subject_id="1"
    )
    legal_hold_place(
        actor=SYSTEM, reference="B", reason="kept", subject_type="thing", subject_id="2"
    )
    legal_hold_release(
        actor=SYSTEM,
        hold=legal_hold_place(actor=SYSTEM, reference="C", reason="kept"),
        reason="settled",
    )
    retention_apply(actor=SYSTEM)

    response = browser_for(roles.AUDITOR).get(URL)

    health = response.context["health"]
    assert (health.retention_days, health.active_holds, health.redacted) == (400, 2, 2)
    panel = ledger_panel(response.content.decode())
    assert "400 days" in panel
    assert '<a href="/admin/audit/legalhold/?active=yes">2 active</a>' in panel
    assert "2 entries" in panel


@pytest.mark.django_db
def test_an_untouched_ledger_shows_no_holds_and_nothing_redacted(browser_for):
    response = browser_for(roles.DPO).get(URL)

    panel = ledger_panel(response.content.decode())
    assert ">0 active</a>" in panel
    assert "0 entries" in panel
    assert "retention suspended" not in panel
