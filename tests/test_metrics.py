"""Prometheus: /metrics carries django-prometheus's metrics and fedgov's own, with true values."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import prometheus_client
import pytest
from django.db import transaction
from prometheus_client.parser import text_string_to_metric_families

from audit.services import LedgerEvent, checkpoint_create, ledger_append_many
from fedgov import clock, metrics
from fedgov.actors import Actor
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    RoundFactory,
    RunFactory,
    SiteFactory,
)
from training.choices import RoundState
from training.services.gate import round_gate

pytestmark = pytest.mark.django_db

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana-dashboard.json"


@pytest.fixture(autouse=True)
def keys(settings, tmp_path):
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""


TOKEN = "scrape-token-for-tests"


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.FEDGOV_METRICS_TOKEN = TOKEN


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {TOKEN}")
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_rounds_by_state_counts_every_state(client):
    run = RunFactory()
    RoundFactory(run=run, number=1, state=RoundState.CLOSED)
    RoundFactory(run=run, number=2, state=RoundState.CLOSED)
    RoundFactory(run=run, number=3, state=RoundState.AWAITING_APPROVAL)

    samples = scrape(client)

    assert samples[("fedgov_rounds", (("state", "closed"),))] == 2
    assert samples[("fedgov_rounds", (("state", "awaiting_approval"),))] == 1
    assert samples[("fedgov_rounds", (("state", "running"),))] == 0
    assert len([k for k in samples if k[0] == "fedgov_rounds"]) == len(RoundState.values)


def test_gate_failures_by_rule_and_site(client):
    run = RunFactory()
    DpiaFactory(run=run)
    ok = DatasetFactory(site=SiteFactory(slug="de-legal"), record_count=1)
    us = DatasetFactory(site=SiteFactory(slug="nl-media", compute_country="US"), record_count=1)
    run.datasets.add(ok, us)
    for ds in (ok, us):
        ConsentFactory(dataset=ds, purpose=run.purpose)
    round_gate(actor=Actor.system("tests"), run=run, round_no=1)

    samples = scrape(client)

    residency = ("fedgov_gate_failures_total", (("rule", "residency"), ("site", "nl-media")))
    assert samples[residency] == 1
    assert not any(
        k[0] == "fedgov_gate_failures_total" and ("site", "de-legal") in k[1] for k in samples
    )
    assert samples[("fedgov_gate_decisions_total", (("outcome", "allowed"),))] == 1


def append(count: int, start: int = 0) -> None:
    events = [
        LedgerEvent("test.metrics", "thing", start + i, {"n": start + i}) for i in range(count)
    ]
    with transaction.atomic():
        ledger_append_many(actor=Actor.system("tests"), events=events)


def test_ledger_size_and_checkpoint_age(client, monkeypatch):
    samples = scrape(client)
    assert samples[("fedgov_ledger_entries", ())] == 0
    assert samples[("fedgov_checkpoint_age_seconds", ())] == -1

    append(2)
    signed = checkpoint_create(actor=Actor.system("tests"))  # + the key trusted on first use
    append(1, start=2)
    # Scrape two hours later: the age follows the checkpoint row, not the scrape alone.
    later = signed.created_at + dt.timedelta(hours=2)
    monkeypatch.setattr(clock, "now", lambda: later)

    samples = scrape(client)

    assert samples[("fedgov_ledger_entries", ())] == 4
    assert samples[("fedgov_ledger_unsigned_entries", ())] == 1
    assert samples[("fedgov_checkpoint_age_seconds", ())] == 2 * 3600


def test_django_prometheus_request_metrics_are_exposed(client):
    client.get("/admin/login/")

    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()

    assert "django_http_requests_before_middlewares_total" in text
    assert re.search(r'django_http_responses_total_by_status_total\{status="200"\}', text)


def test_collector_is_registered_once(client):
    first = metrics.register()
    assert metrics.register() is first
    text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert text.count("# TYPE fedgov_rounds gauge") == 1


def test_metrics_token_is_required_when_set(client, settings):
    settings.FEDGOV_METRICS_TOKEN = "s3cret-scrape-token"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    samples = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert ("fedgov_ledger_entries", ()) in samples


def test_grafana_dashboard_queries_only_metrics_that_exist(client):
    client.get("/admin/login/")
    scraped = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    families = list(text_string_to_metric_families(scraped.content.decode()))
    # A labelled family with no sample yet still declares its type; count its series names.
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    exposed = {s.name for f in families for s in f.samples} | {
        f.name + suffix for f in families for suffix in suffixes.get(f.type, [""])
    }
    dashboard = json.loads(DASHBOARD.read_text())

    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    names = {
        name for expr in exprs for name in re.findall(r"\b((?:fedgov|django)_[a-z_]+)\b", expr)
    }
    assert {"fedgov_rounds", "fedgov_gate_failures_total", "fedgov_ledger_entries"} <= names
    assert "fedgov_checkpoint_age_seconds" in names
    assert names <= exposed, f"dashboard queries missing metrics: {names - exposed}"
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 30
    assert all(
        p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] if "targets" in p
    )


def test_without_a_token_outside_debug_nobody_can_scrape(client, settings):
    settings.FEDGOV_METRICS_TOKEN = ""
    settings.DEBUG = False
    SiteFactory(slug="de-hidden")

    response = client.get("/metrics")

    assert response.status_code == 403
    assert b"FEDGOV_METRICS_TOKEN" in response.content
    assert b"de-hidden" not in response.content and b"fedgov_" not in response.content


def test_anonymous_scrape_under_debug_shows_no_site(client, settings):
    settings.DEBUG = True
    site = SiteFactory(slug="de-secret-site")
    DatasetFactory(site=site)
    run = RunFactory(datasets=[])
    RoundFactory(run=run, number=1, state=RoundState.PLANNED)
    round_gate(actor=Actor.system("tests"), run=run, round_no=1)
    # With the token, failures are per site: the series an anonymous reader must not see.
    assert any(
        name == "fedgov_gate_failures_total" and dict(labels).get("site") not in (None, "*")
        for name, labels in scrape(client)
    )

    settings.FEDGOV_METRICS_TOKEN = ""
    anonymous = client.get("/metrics")

    assert anonymous.status_code == 200
    text = anonymous.content.decode()
    assert "fedgov_gate_failures_total" in text
    assert "de-secret-site" not in text
    assert not re.search(r'site="(?!\*")', text), "an anonymous scrape named a site"
