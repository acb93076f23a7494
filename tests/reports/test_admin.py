"""Reports admin: listed with download links for Legal, DPO and Auditor; requested by
Legal and DPO (the "add" page is the request form); never edited."""

from __future__ import annotations

import pytest

from fedgov import roles
from fedgov.actors import Actor
from reports.services import report_build, report_generate
from tests.factories import UserFactory


@pytest.mark.django_db
def test_admin_lists_reports_with_download_links_for_legal(played_run, client):
    run, *_ = played_run
    report = report_generate(actor=Actor.system("tests"), run=run)
    report_build(actor=Actor.system("tests"), report_id=report.pk)
    legal = UserFactory(roles=[roles.LEGAL], is_staff=True)
    client.force_login(legal)

    page = client.get("/admin/reports/report/")
    request_form = client.get("/admin/reports/report/add/")
    change = client.post(f"/admin/reports/report/{report.pk}/change/", {"status": "failed"})

    assert page.status_code == 200
    assert f"/api/v1/reports/{report.public_id}/download?file=pdf" in page.content.decode()
    assert request_form.status_code == 200 and "Request a signed report" in (
        request_form.content.decode()
    )
    assert change.status_code in (302, 403)
    report.refresh_from_db()
    assert report.status == "done"


@pytest.mark.django_db
def test_auditors_read_reports_but_cannot_request_them(client):
    client.force_login(UserFactory(roles=[roles.AUDITOR], is_staff=True))

    assert client.get("/admin/reports/report/").status_code == 200
    assert client.get("/admin/reports/report/add/").status_code == 403


@pytest.mark.django_db
def test_admin_hides_reports_from_operators(client):
    client.force_login(UserFactory(roles=[roles.OPERATOR], is_staff=True))

    assert client.get("/admin/reports/report/").status_code == 403


@pytest.mark.django_db
def test_admin_reads_reports_in_the_readers_language(client):
    """Columns, link texts and field names come from reports/locale (issue 19)."""
    from datetime import UTC, datetime

    from reports.models import Report

    report = Report.objects.create(
        period_start=datetime(2026, 1, 1, tzinfo=UTC),
        period_end=datetime(2026, 2, 1, tzinfo=UTC),
        status="done",
        pdf_sha256="0" * 64,
        requested_by_name="legal",
        created_at=datetime(2026, 2, 2, tzinfo=UTC),
    )
    client.force_login(UserFactory(roles=[roles.LEGAL], is_staff=True))

    listed = client.get("/admin/reports/report/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    shown = client.get(
        f"/admin/reports/report/{report.pk}/change/", HTTP_ACCEPT_LANGUAGE="pl"
    ).content.decode()

    assert "Herunterladen" in listed and ">Nachweispaket</a>" in listed
    assert "Beginn des Zeitraums" in listed and "Download" not in listed
    for label in ("Nazwa pliku PDF", "SHA-256 pakietu dowodów", "Rozmiar kotwiczącego"):
        assert label in shown
