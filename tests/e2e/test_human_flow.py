"""The whole human flow in a real browser against ``make serve``'s processes.

``manage.py serve`` starts gunicorn, a Celery worker and beat on PostgreSQL and Redis;
Debian's Chromium (Playwright, no browser download) plays the people:

1. an operator creates a run in the admin, and the worker gates its first round;
2. a second operator signs in with password and TOTP code, and approves it;
3. the worker provisions the round's SuperNode VMs in the oned stand-in (in this
   process), places them and issues the round ticket; the Flower strategy's part is
   played over fedgov's REST API with the service token, exactly the calls the
   governed strategy makes (training/flower), so no Flower processes run here;
4. beat's sweep aggregates and closes the round;
5. the DPO (with TOTP) sees it on the dashboard;
6. legal (with TOTP) requests the signed report in the admin, the worker signs it,
   and legal downloads it.

Every request the browser makes to anywhere but fedgov is blocked and fails the test.
Screenshots of each page go to ``artifacts/e2e/flow/``. PostgreSQL only (the
processes share the test database): run with ``DATABASE_URL`` set.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection
from rest_framework.authtoken.models import Token

from fedgov import roles
from fedgov_flower.ticket import parse_unverified
from reports.models import Report
from tests.e2e.test_serve import _free_port, _Output, _wait_http
from tests.factories import UserFactory, totp_code, totp_device
from tests.opennebula.conftest import (  # noqa: F401 - fixtures used by name
    SECRET,
    ZONES,
    one_settings,
    standin,
)
from tests.training.flower.conftest import contract_digest
from tests.training.test_orchestrate import federation  # noqa: F401
from training.choices import RoundState
from training.models import Round, RoundTicket, TrainingRun

CHROMIUM = Path(os.environ.get("FEDGOV_CHROMIUM", "/usr/bin/chromium"))
# Redis has 16 databases by default (0-15): this test's own is 18 mod 16. CI may name
# another with FEDGOV_E2E_BROKER; the test empties that database first.
BROKER = os.environ.get("FEDGOV_E2E_BROKER", "redis://127.0.0.1:6379/2")
ARTIFACTS = Path(django_settings.BASE_DIR) / "artifacts" / "e2e" / "flow"
PASSWORD = "flow-test-password"
RUN_NAME = "browser-flow-run"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent"),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is absent")


def staff(username: str, *role_names: str):
    user = UserFactory(username=username, roles=role_names)
    user.is_staff = True
    user.set_password(PASSWORD)
    user.save()
    return user


def wait_until(what: str, check, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.fixture
def served(transactional_db, tmp_path, standin, monkeypatch):  # noqa: F811
    if connection.vendor != "postgresql":
        pytest.skip("the served processes share the test database: PostgreSQL only")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM reads beside Playwright
    import redis

    redis.Redis.from_url(BROKER).flushdb()  # no task left from an earlier run
    db = connection.settings_dict
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FEDGOV_", "PYTEST", "DJANGO_SETTINGS", "DEBUG"))
    }
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CELERY_BROKER_URL=BROKER,
        FEDGOV_VAR_DIR=str(tmp_path / "var"),
        # Beat: checkpoints and the round sweep every second, so a round with its updates
        # recorded is aggregated and closed within seconds, not minutes.
        FEDGOV_CHECKPOINT_INTERVAL="1",
        FEDGOV_ROUND_SWEEP_INTERVAL="1",
        FEDGOV_ROUND_STALL_SECONDS="1",
        FEDGOV_ONE_POLL_INITIAL="0.05",
        FEDGOV_ONE_POLL_MAX="0.2",
        FEDGOV_ONE_RUNNING_DEADLINE="30",
        WEB_CONCURRENCY="1",
        FEDGOV_WORKER_CONCURRENCY="1",
        **{f"FEDGOV_TEST_ONE_{zone_id}": SECRET for zone_id in ZONES},
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}",
         "--no-demo-accounts"],
        cwd=django_settings.BASE_DIR, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    output = _Output(proc.stdout)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/admin/login/", 120)
        output.wait_for(r"celery@\S+ ready", 120)
        yield base, output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        (ARTIFACTS.parent / "flow-serve.log").write_text(output.text())


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


class People:
    """One browser context per person (their own cookies); outside requests are blocked."""

    def __init__(self, browser, base: str) -> None:
        self.browser, self.base = browser, base
        self.outside: list[str] = []
        self.shots: list[Path] = []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def _guard(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base + "/") or url.startswith("data:") or url == self.base:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def page(self):
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        context.route("**/*", self._guard)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page

    def shot(self, page, name: str) -> None:
        path = ARTIFACTS / f"{len(self.shots) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)

    def admin_login(self, username: str, code: str | None = None):
        page = self.page()
        page.goto(f"{self.base}/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        if code is not None:
            page.fill("#id_otp_token", code)
            self.shot(page, f"{username}-signs-in-with-code")
        page.click("input[type=submit]")
        page.wait_for_url(f"{self.base}/admin/")
        return page


def test_operator_to_legal_through_the_browser_on_make_serve(
    served,
    browser,
    federation,  # noqa: F811 - the fixture imported by name
    tmp_path,
):
    started = time.monotonic()
    base, output = served
    template, sites = federation(requires_approval=True, requires_dpia=False)
    staff("olga", roles.OPERATOR)
    anton = staff("anton", roles.OPERATOR)
    dora = staff("dora", roles.DPO)
    lena = staff("lena", roles.LEGAL)
    devices = {user.username: totp_device(user) for user in (anton, dora, lena)}
    strategy = UserFactory(username="flower-strategy", roles=[roles.SERVICE])
    service_token = Token.objects.create(user=strategy).key
    people = People(browser, base)

    # 1. The operator creates a run in the admin.
    page = people.admin_login("olga")
    page.goto(f"{base}/admin/training/trainingrun/add/")
    page.fill("#id_name", RUN_NAME)
    page.select_option("#id_purpose", str(template.purpose_id))
    for dataset in template.datasets.order_by("pk"):
        page.select_option("#id_datasets_from", str(dataset.pk))
        page.click("#id_datasets_add")
    page.select_option("#id_policy", str(template.policy_id))
    page.fill("#id_aggregator_country", "DE")
    page.fill("#id_num_rounds", "1")
    people.shot(page, "operator-adds-run")
    page.click("input[name=_save]")
    page.wait_for_url(f"{base}/admin/training/trainingrun/")
    people.shot(page, "operator-run-saved")
    run = TrainingRun.objects.get(name=RUN_NAME)

    # 2. The worker gates round 1; it waits for a second person.
    round_ = wait_until(
        "the worker gates round 1 and routes it to approval",
        lambda: Round.objects.filter(run=run, number=1, state=RoundState.AWAITING_APPROVAL).first(),
    )
    page.goto(f"{base}/admin/training/round/{round_.pk}/change/")
    assert "four-eyes" in page.content().lower() or page.locator("#four-eyes").count()
    people.shot(page, "operator-round-awaiting-approval")
    # The operator has no authenticator yet: the enrolment page shows a new secret.
    page.goto(f"{base}/account/two-factor/")
    assert page.locator("#totp-secret").inner_text() and page.locator(".qr svg").count() == 1
    people.shot(page, "operator-two-factor-enrolment")
    page.context.close()

    # 3. The second operator signs in with the TOTP code and approves, with a reason.
    page = people.admin_login("anton", totp_code(devices["anton"]))
    page.goto(f"{base}/admin/training/round/{round_.pk}/change/")
    page.click("text=Approve…")
    page.fill("textarea[name=reason]", "gate table reviewed: three EEA sites, consent-based")
    people.shot(page, "second-operator-approves")
    page.click("#content-main form [type=submit]")
    page.wait_for_url(f"{base}/admin/training/round/{round_.pk}/change/")
    assert "the round is now approved" in page.inner_text(".messagelist")
    people.shot(page, "second-operator-approved")

    # 4. The worker provisions, places and tickets the round; the strategy reports.
    wait_until(
        "the worker provisions the round and issues its ticket",
        lambda: Round.objects.filter(pk=round_.pk, state=RoundState.RUNNING).exists(),
    )
    # An honest site keeps the data contract: its counts, and the digest of the subject
    # list the ticket gave it (issue 13).
    ticket = parse_unverified(
        RoundTicket.objects.filter(round=round_, message_type="train").latest("issued_at").body
    )
    reported = requests.post(
        f"{base}/api/v1/runs/{run.pk}/rounds/1/updates",
        json={
            "updates": [
                {
                    "node_id": site.flower_node_id,
                    "update_hash": hashlib.sha256(f"update-{site.slug}".encode()).hexdigest(),
                    "num_examples": 10,
                    "records_used": 10,
                    "records_excluded": 0,
                    "filter_digest": contract_digest(ticket, site.flower_node_id),
                    "metrics": {"accuracy": 0.81},
                }
                for site in sites
            ],
            "aggregate_hash": hashlib.sha256(b"aggregate-1").hexdigest(),
        },
        headers={"Authorization": f"Token {service_token}"},
        timeout=30,
    )
    assert reported.status_code == 201, reported.text
    wait_until(
        "beat's sweep aggregates and closes the round",
        lambda: Round.objects.filter(pk=round_.pk, state=RoundState.CLOSED).exists(),
    )
    page.goto(f"{base}/admin/training/round/{round_.pk}/change/")
    people.shot(page, "round-closed")
    page.context.close()

    # 5. The DPO sees the closed round on the dashboard.
    page = people.page()
    page.goto(f"{base}/dashboard/")
    page.wait_for_url(f"{base}/dashboard/login/**")
    page.fill("#id_username", "dora")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code(devices["dora"]))
    people.shot(page, "dpo-signs-in")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")
    body = page.inner_text("body")
    assert RUN_NAME in body and "closed" in body.lower()
    people.shot(page, "dpo-dashboard")
    page.context.close()

    # 6. Legal requests the signed report, waits for the worker, downloads it.
    page = people.admin_login("lena", totp_code(devices["lena"]))
    page.goto(f"{base}/admin/reports/report/add/")
    page.select_option("#id_run", str(run.pk))
    people.shot(page, "legal-requests-report")
    page.click("#content-main input[type=submit]")
    page.wait_for_url(f"{base}/admin/reports/report/")
    report = wait_until(
        "the worker signs the report",
        lambda: Report.objects.filter(run_id=run.pk, status="done").first(),
        timeout=180,
    )
    page.reload()
    people.shot(page, "legal-report-ready")
    with page.expect_download() as download_info:
        page.click(f"tr:has-text('{report.public_id}') a:has-text('PDF')")
    pdf = tmp_path / "report.pdf"
    download_info.value.save_as(pdf)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and hashlib.sha256(data).hexdigest() == report.pdf_sha256
    (ARTIFACTS / "report.pdf").write_bytes(data)
    page.context.close()

    assert people.outside == [], f"pages asked outside the site for: {people.outside}"
    assert "Traceback" not in output.text()
    print(f"\nhuman flow on make serve: {time.monotonic() - started:.1f} s, "
          f"{len(people.shots)} screenshots in {ARTIFACTS}")  # fmt: skip
