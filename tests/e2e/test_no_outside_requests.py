"""No page loads anything from outside the site: a real browser blocks and records every
request to another host while a DPO opens the admin, the dashboard and the API pages.

Swagger UI and ReDoc must also render (their scripts come from our static files), so a
page that silently lost its script would fail here too.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings

from fedgov import roles
from tests.factories import UserFactory

CHROMIUM = Path(os.environ.get("FEDGOV_CHROMIUM", "/usr/bin/chromium"))
LIVE_ADDRESS = os.environ.get("FEDGOV_E2E_OUTSIDE_ADDRESS", "127.0.0.1:0")
ARTIFACTS = Path(django_settings.BASE_DIR) / "artifacts" / "e2e"
PASSWORD = "outside-test-pw"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent"),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is absent")

# page → a selector that exists only once the page (and its scripts) rendered
PAGES = {
    "/admin/": "#site-name",
    "/admin/training/round/": "#changelist",
    "/admin/sites/consentevent/": "#changelist",
    "/dashboard/": "body",
    "/api/v1/": ".response-info",
    "/api/docs/": ".swagger-ui .info",
    "/api/redoc/": "[role=search], .api-content",
}


@pytest.fixture
def server(transactional_db, monkeypatch):
    from pytest_django.live_server_helper import LiveServer

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    live = LiveServer(LIVE_ADDRESS)
    live._live_server_modified_settings.enable()
    try:
        yield live.url
    finally:
        live._live_server_modified_settings.disable()
        live.stop()


def test_no_page_requests_anything_outside_the_site(server):
    user = UserFactory(username="dpo-browser", roles=[roles.DPO])
    user.is_staff = True
    user.set_password(PASSWORD)
    user.save()
    own_host = urlsplit(server).netloc
    outside: list[str] = []

    def guard(route):
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == own_host:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", guard)
            page = context.new_page()
            page.set_default_timeout(30_000)
            # A CSP refusal means a page tried something the policy forbids (an inline
            # script that would no longer run, a resource from elsewhere).
            refusals: list[str] = []
            page.on(
                "console",
                lambda m: refusals.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.goto(f"{server}/admin/login/?next=/admin/")
            page.fill("#id_username", "dpo-browser")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{server}/admin/")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for path, ready in PAGES.items():
                page.goto(f"{server}{path}")
                page.wait_for_load_state("networkidle")
                page.wait_for_selector(ready)
                name = path.strip("/").replace("/", "-") or "root"
                page.screenshot(path=str(ARTIFACTS / f"outside-{name}.png"), full_page=False)
            # The admin's stylesheet came from this site (DEBUG is off: whitenoise).
            page.goto(f"{server}/admin/")
            colour = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
            assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour
            # The one known refusal: ReDoc's bundle hard-codes its logo from cdn.redoc.ly.
            unexpected = [
                r for r in refusals if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in r
            ]
            assert unexpected == [], unexpected
        finally:
            browser.close()
    assert outside == [], f"requests to other hosts: {outside}"
