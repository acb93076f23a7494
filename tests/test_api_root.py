"""``/api/v1/`` lists every resource; the API's doc pages load nothing from outside the site."""

from __future__ import annotations

import re

import pytest
from django.urls import resolve

from fedgov import roles

pytestmark = pytest.mark.django_db


def test_the_api_root_lists_every_resource_collection(api, make_user):
    response = api(make_user(roles.AUDITOR)).get("/api/v1/")
    assert response.status_code == 200
    resources = response.json()["resources"]
    for name in (
        "sites", "purposes", "datasets", "policies", "consents", "consent-events", "runs",
        "dpias", "rounds", "reports", "reports/art30", "ledger/entries", "ledger/holds",
        "ledger/checkpoints/latest", "ledger/keys",
    ):  # fmt: skip
        assert resources[name] == f"http://testserver/api/v1/{name}", name
    assert response.json()["docs"].endswith("/api/docs/")
    assert response.json()["redoc"].endswith("/api/redoc/")


def test_every_listed_resource_is_served(api, make_user):
    client = api(make_user(roles.DPO))
    for name, url in client.get("/api/v1/").json()["resources"].items():
        path = url.removeprefix("http://testserver")
        resolve(path)  # raises Resolver404 for a listed path nobody serves
        # A route may need query parameters (400), accept only POST (405), or have
        # nothing yet (the latest checkpoint of an empty ledger: the view's JSON 404);
        # never Django's own "no such URL" page.
        response = client.get(path)
        assert response.status_code != 404 or response["Content-Type"] == "application/json", name


def test_the_api_root_needs_a_login(api):
    assert api().get("/api/v1/").status_code in (401, 403)


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_doc_pages_name_no_outside_host(client, make_user, page):
    client.force_login(make_user(roles.DPO))
    html = client.get(page).content.decode()
    assert client.get(page).status_code == 200
    # Every src/href is a path on this site: no CDN (the bug was jsdelivr).
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert urls, html[:500]
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "cdn" not in html.lower()


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_doc_pages_forbid_the_browser_any_other_host(client, make_user, page):
    # ReDoc's bundle hard-codes a cdn.redoc.ly image; the policy makes the browser refuse it.
    client.force_login(make_user(roles.DPO))
    policy = client.get(page)["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert "http" not in policy and "*" not in policy
