"""Real browser (Debian's Chromium via Playwright) against a live fedgov: admin and dashboard.

An operator approves a round in admin; the operator who requested a round is refused
approving it (four-eyes); a DPO downloads the signed report from the dashboard.
Screenshots go to ``artifacts/e2e/`` (git-ignored) for whoever reads the CI run, with
the round page and the dashboard in German and Polish and the report's first pages in
Spanish and French (issue 19).
Playwright never downloads a browser here: it drives ``/usr/bin/chromium``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from fedgov import roles
from fedgov.actors import Actor
from fedgov.models import Profile
from reports.services import report_build, report_file, report_generate
from sites.models import ResidencyPolicy
from tests.factories import UserFactory, totp_code, totp_device, verified_actor
from tests.reports.conftest import play_round
from tests.training.flower.conftest import governed_scenario
from training.choices import ApprovalDecision, RoundState
from training.models import Approval, Round
from training.services.gate import round_gate
from training.services.rounds import round_route_after_gate

CHROMIUM = Path(os.environ.get("FEDGOV_CHROMIUM", "/usr/bin/chromium"))
# Inside the port range this suite's browser tests own; overridable for another machine.
LIVE_ADDRESS = os.environ.get("FEDGOV_E2E_ADDRESS", "127.0.0.1:0")
ARTIFACTS = Path(django_settings.BASE_DIR) / "artifacts" / "e2e"
PASSWORD = "browser-test-pw"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)",
    ),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is absent")


@pytest.fixture(autouse=True)
def isolated_dirs(settings, tmp_path, monkeypatch):
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    settings.FEDGOV_REPORT_DIR = tmp_path / "reports"
    settings.FEDGOV_REPORT_CERT_FILE = ""
    settings.FEDGOV_REPORT_KEY_FILE = ""
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test
    # makes between browser steps are plain synchronous calls all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def server(transactional_db):
    from pytest_django.live_server_helper import LiveServer

    live = LiveServer(LIVE_ADDRESS)
    live._live_server_modified_settings.enable()
    try:
        yield live.url
    finally:
        live._live_server_modified_settings.disable()
        live.stop()


@pytest.fixture
def chromium():
    # Per test, so Playwright's event loop is gone before pytest-django flushes the database.
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def staff(username: str, *role_names: str):
    user = UserFactory(username=username, roles=role_names)
    user.is_staff = True
    user.set_password(PASSWORD)
    user.save()
    return user


def admin_login(page, base: str, username: str, code: str | None = None) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    if code is not None:
        page.fill("#id_otp_token", code)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def awaiting_round(run, number: int, requester) -> Round:
    """A round the real gate allowed, routed to approval, requested by ``requester``."""
    decision = round_gate(actor=Actor.of(requester), run=run, round_no=number)
    round_ = Round.objects.get(pk=decision.round_id)
    round_ = round_route_after_gate(actor=Actor.of(requester), round=round_)
    assert round_.state == RoundState.AWAITING_APPROVAL
    return round_


@pytest.fixture
def run_needing_approval(db):
    run, _sites, _datasets = governed_scenario(subjects=5, num_rounds=3)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(requires_approval=True)
    run.refresh_from_db()
    return run


def test_operator_approves_a_round_in_admin(server, page, run_needing_approval):
    olga = staff("olga", roles.OPERATOR)
    anton = staff("anton", roles.OPERATOR)
    round_ = awaiting_round(run_needing_approval, 1, olga)

    # An approver signs in with the code of their authenticator (fedgov/second_factor.py).
    admin_login(page, server, "anton", totp_code(totp_device(anton)))
    page.goto(f"{server}/admin/training/round/{round_.pk}/change/")
    shot(page, "01-round-awaiting-approval")
    page.click("text=Approve…")
    page.fill("textarea[name=reason]", "gate evidence reviewed in the browser")
    shot(page, "02-approve-reason")
    page.click("#content-main form [type=submit]")
    page.wait_for_url(f"{server}/admin/training/round/{round_.pk}/change/")
    shot(page, "03-round-approved")

    assert "done; the round is now approved" in page.inner_text(".messagelist")
    round_.refresh_from_db()
    assert round_.state == RoundState.APPROVED
    approval = Approval.objects.get(round=round_)
    assert (approval.approver_name, approval.decision) == ("anton", ApprovalDecision.APPROVE)
    assert approval.reason == "gate evidence reviewed in the browser"


def test_requester_is_refused_approving_their_own_round(server, page, run_needing_approval):
    anton = staff("anton", roles.OPERATOR)
    round_ = awaiting_round(run_needing_approval, 1, anton)

    admin_login(page, server, "anton")
    page.goto(f"{server}/admin/training/round/{round_.pk}/change/")
    shot(page, "04-own-round-no-approve-button")
    assert page.locator("#four-eyes").is_visible()
    assert page.locator("a:has-text('Approve…')").count() == 0

    # Going straight to the decision page does not get round the rule: the service refuses.
    page.goto(f"{server}/admin/training/round/{round_.pk}/decide/approve/")
    page.fill("textarea[name=reason]", "trying to approve my own round")
    page.click("#content-main form [type=submit]")
    page.wait_for_url(f"{server}/admin/training/round/{round_.pk}/change/")
    shot(page, "05-own-round-approval-refused")

    assert "refused" in page.inner_text(".messagelist .error")
    round_.refresh_from_db()
    assert round_.state == RoundState.AWAITING_APPROVAL
    assert not Approval.objects.filter(round=round_).exists()


@pytest.fixture
def signed_report(run_needing_approval):
    """A played round and its signed report, built before the browser starts: pyHanko
    signs inside ``asyncio.run``, which refuses to run beside Playwright's event loop."""
    run = run_needing_approval
    olga, anton = staff("olga", roles.OPERATOR), staff("anton", roles.OPERATOR)
    play_round(run, 1, operator=Actor.of(olga), approver=verified_actor(anton), accuracy=0.7)
    staff("dora", roles.DPO)  # reads the dashboard: signs in without a device
    legal = staff("lena", roles.LEGAL)
    report = report_generate(actor=verified_actor(legal), run=run)
    report = report_build(actor=Actor.system("tests"), report_id=report.pk)
    assert report.status == "done", report.error
    return report


def test_dpo_downloads_the_signed_report_from_the_dashboard(server, signed_report, page, tmp_path):
    report = signed_report
    page.goto(f"{server}/dashboard/")
    page.wait_for_url(f"{server}/dashboard/login/**")
    page.fill("#id_username", "dora")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/dashboard/")
    shot(page, "06-dpo-dashboard")

    with page.expect_download() as info:
        page.click(f"a[href*='{report.public_id}/download?file=pdf']")
    download = info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    body = saved.read_bytes()
    assert body.startswith(b"%PDF-")
    assert hashlib.sha256(body).hexdigest() == report.pdf_sha256
    assert saved.suffix == ".pdf"


# --- In the reader's language (issue 19) -------------------------------------------
# Each reader's language comes from their profile, as a DPO in Warsaw sets it once. The
# checks: the page is in that language, not English, and an instant shows a 24-hour time
# with its zone. The PNGs are for a person to look at.

# What each page must show in the reader's language, and the English it replaces.
EXPECTED = {
    "de": {"round": ("Runde", "Round"), "dashboard": ("Alle Läufe", "All runs")},
    "pl": {"round": ("Runda", "Round"), "dashboard": ("Wszystkie przebiegi", "All runs")},
}
# A 24-hour time with its zone, as the admin and dashboard print every instant.
TIME_WITH_ZONE = re.compile(r"\b[0-2]\d:[0-5]\d(:[0-5]\d)? (UTC|[A-Z]{3,4}|[+-]\d\d:?\d\d)\b")


def speaks(user, language: str) -> None:
    Profile.objects.update_or_create(user=user, defaults={"language": language})


@pytest.fixture
def played_round(run_needing_approval):
    """One closed round with its approval, and signed reports in Spanish and French,
    built before the browser starts (pyHanko signs inside ``asyncio.run``)."""
    run = run_needing_approval
    olga, anton = staff("olga", roles.OPERATOR), staff("anton", roles.OPERATOR)
    play_round(run, 1, operator=Actor.of(olga), approver=verified_actor(anton), accuracy=0.7)
    staff("dora", roles.DPO)
    legal = staff("lena", roles.LEGAL)
    reports = {}
    for language in ("es", "fr"):
        report = report_generate(actor=verified_actor(legal), run=run, language=language)
        report = report_build(actor=Actor.system("tests"), report_id=report.pk)
        assert report.status == "done", report.error
        reports[language] = report
    return Round.objects.get(run=run, number=1), anton, reports


@pytest.mark.parametrize("language", ["de", "pl"])
def test_round_page_and_dashboard_in_the_readers_language(played_round, server, page, language):
    round_, anton, _reports = played_round
    speaks(anton, language)
    admin_login(page, server, "anton", totp_code(totp_device(anton)))
    page.goto(f"{server}/admin/training/round/{round_.pk}/change/")
    shot(page, f"lang-{language}-admin-round")
    text = page.inner_text("body")
    word, english = EXPECTED[language]["round"]
    assert word in text, text[:2000]
    assert f"Change {english.lower()}" not in text
    assert TIME_WITH_ZONE.search(text), "no 24-hour time with its zone on the round page"

    from django.contrib.auth.models import User

    speaks(User.objects.get(username="dora"), language)
    page.context.clear_cookies()
    page.goto(f"{server}/dashboard/")
    page.wait_for_url(f"{server}/dashboard/login/**")
    page.fill("#id_username", "dora")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/dashboard/")
    shot(page, f"lang-{language}-dashboard")
    text = page.inner_text("body")
    word, english = EXPECTED[language]["dashboard"]
    assert word in text and english not in text, text[:2000]
    assert page.get_attribute("html", "lang") == language


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm is absent")
def test_report_first_pages_in_spanish_and_french_are_rendered(played_round):
    _round, _anton, reports = played_round
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for language, report in reports.items():
        pdf = report_file(report=report, kind="pdf")
        prefix = ARTIFACTS / f"lang-{language}-report"
        subprocess.run(
            ["pdftoppm", "-r", "70", "-png", "-f", "1", "-l", "2", str(pdf), str(prefix)],
            check=True,
        )
        pages = sorted(ARTIFACTS.glob(f"lang-{language}-report-*.png"))
        assert len(pages) == 2, pages
        text = subprocess.run(
            ["pdftotext", "-l", "2", str(pdf), "-"], check=True, capture_output=True, text=True
        ).stdout
        assert {"es": "del tratamiento", "fr": "du traitement"}[language] in text.replace(
            "\n", " "
        ), text[:1500]
