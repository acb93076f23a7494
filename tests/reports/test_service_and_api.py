"""Report generation end to end: service, task, stored files, evidence bundle and API."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
from django.utils import timezone

from audit.models import LedgerEntry
from audit.verify import verify_bundle
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from reports.choices import ReportStatus
from reports.data import Period
from reports.models import Report
from reports.services import report_build, report_generate
from reports.signing import signing_identity, verify_pdf
from reports.tasks import report_build_task
from tests.factories import UserFactory, verified, verified_actor


def generated(run):
    legal = UserFactory(username="lena", roles=[roles.LEGAL])
    report = report_generate(actor=verified_actor(legal), run=run)
    return report_build(actor=Actor.system("tests"), report_id=report.pk)


@pytest.mark.django_db
def test_report_generate_writes_signed_pdf_bundle_and_ledger_events(played_run, report_dirs):
    run, *_ = played_run

    report = generated(run)

    assert report.status == ReportStatus.DONE and report.progress == 100
    pdf = report_dirs / report.pdf_name
    assert hashlib.sha256(pdf.read_bytes()).hexdigest() == report.pdf_sha256
    assert verify_pdf(pdf, trust_roots=[signing_identity().trust_root]).ok
    events = list(
        LedgerEntry.objects.filter(subject_type="report", subject_id=str(report.pk)).values_list(
            "event_type", "payload"
        )
    )
    assert [e for e, _ in events] == ["report.requested", "report.generated"]
    payload = json.loads(events[1][1])
    assert payload["pdf_sha256"] == report.pdf_sha256
    assert payload["bundle_sha256"] == report.bundle_sha256


@pytest.mark.django_db
def test_report_bundle_verifies_offline_and_signs_the_report_data(played_run, report_dirs):
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    run, *_ = played_run
    report = generated(run)
    bundle = report_dirs / report.bundle_name

    result = verify_bundle(bundle)

    assert result.ok, result.findings
    with zipfile.ZipFile(bundle) as archive:
        statement = archive.read("report/statement.json")
        signature = json.loads(archive.read("report/signature.json"))
        keys = {k["key_id"]: k for k in json.loads(archive.read("keys.json"))}
        lines = archive.read("report/data.jsonl").decode().splitlines()
    public = Ed25519PublicKey.from_public_bytes(
        base64.b64decode(keys[signature["key_id"]]["public_key"])
    )
    public.verify(base64.b64decode(signature["signature"]), statement)  # raises if forged
    facts = json.loads(statement)
    assert facts["pdf_sha256"] == report.pdf_sha256
    assert [json.loads(line)["kind"] for line in lines] == ["run", "round", "round"]
    assert "es-blogs-s0003" not in "".join(lines)


@pytest.mark.django_db
def test_changed_report_data_fails_offline_verification(played_run, report_dirs, tmp_path):
    run, *_ = played_run
    report = generated(run)
    with zipfile.ZipFile(report_dirs / report.bundle_name) as archive:
        archive.extractall(tmp_path / "b")
    data = tmp_path / "b" / "report" / "data.jsonl"
    data.write_text(data.read_text().replace('"allowed"', '"blocked"', 1))

    result = verify_bundle(tmp_path / "b")

    assert not result.ok
    assert "report/data.jsonl" in str(result.findings[0])


@pytest.mark.django_db
def test_report_build_task_runs_once_even_if_delivered_twice(played_run):
    run, *_ = played_run
    report = report_generate(actor=Actor.system("tests"), run=run)

    assert report_build_task(report.pk) == ReportStatus.DONE
    first = Report.objects.get(pk=report.pk)
    assert report_build_task(report.pk) == ReportStatus.DONE

    assert Report.objects.get(pk=report.pk).pdf_sha256 == first.pdf_sha256
    assert LedgerEntry.objects.filter(event_type="report.generated").count() == 1


@pytest.mark.django_db
def test_report_needs_a_run_or_an_ordered_period():
    now = timezone.now()
    with pytest.raises(InvalidInput) as missing:
        report_generate(actor=Actor.system("tests"))
    with pytest.raises(InvalidInput) as reversed_:
        report_generate(actor=Actor.system("tests"), period=Period(now, now))

    assert "run" in missing.value.errors and "period" in reversed_.value.errors
    assert not Report.objects.exists()


@pytest.mark.django_db
def test_period_report_covers_the_runs_with_rounds_in_it(played_run):
    now = timezone.now()
    report = report_generate(
        actor=Actor.system("tests"), period=Period(now - timezone.timedelta(hours=1), now)
    )

    done = report_build(actor=Actor.system("tests"), report_id=report.pk)

    assert done.status == ReportStatus.DONE


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"),
    [
        (roles.LEGAL, 202),
        (roles.DPO, 202),
        (roles.AUDITOR, 202),
        (roles.OPERATOR, 403),
        (roles.SITE_STEWARD, 403),
        (roles.SERVICE, 403),
        (None, 403),
    ],
)
def test_report_api_create_is_for_legal_dpo_and_auditor(played_run, api, role, status):
    run, *_ = played_run
    # Each person passed the second factor: this test is about roles (the refusal without
    # it is tests/test_second_factor.py's).
    user = verified(UserFactory(roles=[role])) if role else None

    response = api(user).post("/api/v1/reports", {"run": run.pk}, format="json")

    assert response.status_code == status if user else response.status_code in (401, 403)


@pytest.mark.django_db
def test_report_api_lists_and_downloads_the_signed_pdf(played_run, api):
    run, *_ = played_run
    report = generated(run)
    client = api(UserFactory(roles=[roles.AUDITOR]))

    listed = client.get("/api/v1/reports").json()
    pdf = client.get(f"/api/v1/reports/{report.public_id}/download?file=pdf")
    bad = client.get(f"/api/v1/reports/{report.public_id}/download?file=docx")

    assert listed["results"][0]["id"] == str(report.public_id)
    assert listed["results"][0]["downloads"]["bundle"].endswith("file=bundle")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert hashlib.sha256(b"".join(pdf.streaming_content)).hexdigest() == report.pdf_sha256
    assert bad.status_code == 400 and "file" in bad.json()


@pytest.mark.django_db
def test_report_api_refuses_unknown_run_and_half_period(api):
    client = api(UserFactory(roles=[roles.DPO]))

    unknown = client.post("/api/v1/reports", {"run": 999999}, format="json")
    half = client.post("/api/v1/reports", {"period_start": "2026-01-01T00:00:00Z"}, format="json")

    assert unknown.status_code == 400 and "run" in unknown.json()
    assert half.status_code == 400 and "period" in half.json()
    assert not Report.objects.exists()


@pytest.mark.django_db
def test_report_with_missing_org_certificate_fails_and_says_so(played_run, settings, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    run, *_ = played_run
    settings.FEDGOV_REPORT_CERT_FILE = str(tmp_path / "absent.pem")
    settings.FEDGOV_REPORT_KEY_FILE = str(tmp_path / "absent.key")
    report = report_generate(actor=Actor.system("tests"), run=run)

    with pytest.raises(ImproperlyConfigured):
        report_build(actor=Actor.system("tests"), report_id=report.pk)

    failed = Report.objects.get(pk=report.pk)
    assert failed.status == ReportStatus.FAILED and "absent.pem" in failed.error
    assert LedgerEntry.objects.filter(event_type="report.failed").count() == 1
    assert not list(settings.FEDGOV_REPORT_DIR.glob("*.pdf"))


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_report_is_built_when_the_request_commits(played_run, settings):
    run, *_ = played_run
    settings.CELERY_BROKER_URL = ""

    report = report_generate(actor=Actor.system("tests"), run=run)

    assert Report.objects.get(pk=report.pk).status == ReportStatus.DONE
