"""The DPO dashboard: who may see it, what each panel shows, and how the filters narrow it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from fedgov import roles
from tests.factories import verified_actor

URL = "/dashboard/"


@pytest.mark.parametrize("role", [roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR])
def test_dashboard_renders_every_panel_for_each_allowed_role(browser_for, two_runs, role):
    response = browser_for(role).get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    for panel in ("Ledger health", "Reports", "Runs", "Round timeline", "Gate failures"):
        assert panel in page
    assert "Consent coverage over time" in page
    assert "governed" in page and "orphan" in page


# Issue #18: operators open the dashboard too (tests/test_role_admin_matrix.py).
@pytest.mark.parametrize("role", [roles.SITE_STEWARD, roles.SERVICE])
def test_dashboard_refuses_other_roles(browser_for, role):
    client = browser_for(role)

    assert client.get(URL).status_code == 403
    assert client.post(reverse("dashboard:verify-ledger")).status_code == 403


def test_dashboard_refuses_a_user_without_any_role(browser_for):
    assert browser_for().get(URL).status_code == 403


def test_anonymous_visitor_is_sent_to_the_login_page(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("dashboard:login"))


def test_url_is_served_under_dashboard_prefix():
    assert reverse("dashboard:index") == URL


def test_round_timeline_shows_each_state_with_its_reason(browser_for, two_runs):
    page = browser_for(roles.DPO).get(URL).content.decode()

    assert "round 1" in page and "round 2" in page
    assert "Blocked" in page
    # The blocked round of "orphan" carries the gate's reason; the played ones their approver.
    timeline = page.split('id="timeline"')[1].split('id="gate-failures"')[0]
    assert "min-sites" in timeline or "pass every rule" in timeline
    assert "approved by anton" in timeline


def test_gate_failures_are_counted_by_rule_and_site(browser_for, two_runs):
    response = browser_for(roles.DPO).get(URL)
    failures = response.context["failures"]

    cells = {
        (rule.rule_id, cell.site): cell.count
        for rule in failures.rules
        for cell in rule.cells
        if cell is not None
    }
    assert cells[("retention", "pl-news")] == 1
    assert cells[("dpia", "lone-site")] == 1
    assert cells[("min-sites", "run")] == 1
    assert ("retention", "de-legal") not in cells
    reason = next(
        cell.last_reason
        for rule in failures.rules
        if rule.rule_id == "retention"
        for cell in rule.cells
        if cell
    )
    assert "retention ended on" in reason


def test_site_filter_narrows_every_panel_to_that_site(browser_for, two_runs):
    _governed, _orphan, sites = two_runs
    pl_news = next(s for s in sites if s.slug == "pl-news")

    response = browser_for(roles.DPO).get(URL, {"site": pl_news.pk})

    assert response.status_code == 200
    assert [r.name for r in response.context["runs"]] == ["governed"]
    assert {r.run for r in response.context["timeline"]} == {"governed"}
    assert set(response.context["failures"].sites) <= {"pl-news", "run"}
    assert "lone-site" not in response.context["failures"].sites
    coverage = response.context["coverage"]
    assert [c.datasets for c in coverage] == [("pl-news-corpus",)]


def test_run_filter_shows_only_that_run(browser_for, two_runs):
    _governed, orphan, _sites = two_runs

    response = browser_for(roles.AUDITOR).get(URL, {"run": orphan.pk})

    assert [r.name for r in response.context["runs"]] == ["orphan"]
    assert [(r.run, r.number, r.state) for r in response.context["timeline"]] == [
        ("orphan", 1, "blocked")
    ]
    assert {rule.rule_id for rule in response.context["failures"].rules} >= {"dpia", "min-sites"}
    assert "retention" not in {rule.rule_id for rule in response.context["failures"].rules}


def test_period_filter_keeps_only_rounds_created_in_it(browser_for, two_runs):
    client = browser_for(roles.LEGAL)

    old = client.get(URL, {"start": "2020-01-01", "end": "2020-01-31"})
    assert [(r.run, r.number) for r in old.context["timeline"]] == [("orphan", 1)]
    assert [r.name for r in old.context["runs"]] == ["orphan"]

    before = client.get(URL, {"end": "2020-01-14"})
    assert before.context["timeline"] == []
    assert before.context["failures"].empty


def test_period_end_day_is_included(browser_for, two_runs):
    response = browser_for(roles.DPO).get(URL, {"start": "2020-01-15", "end": "2020-01-15"})

    assert [r.run for r in response.context["timeline"]] == ["orphan"]


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ({"start": "2024-02-10", "end": "2024-02-01"}, "end", "on or after the start"),
        ({"start": "yesterday"}, "start", "valid date"),
        ({"site": "999999"}, "site", "valid choice"),
        ({"run": "not-a-number"}, "run", "valid choice"),
    ],
)
def test_bad_filter_is_a_400_naming_field_and_reason(browser_for, db, query, field, reason):
    response = browser_for(roles.DPO).get(URL, query)

    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert reason in " ".join(response.context["form"].errors[field])
    assert reason in response.content.decode()


def test_consent_coverage_counts_per_dataset_per_round_without_identities(browser_for, two_runs):
    response = browser_for(roles.DPO).get(URL)

    governed = next(c for c in response.context["coverage"] if c.run == "governed")
    assert [p.round_number for p in governed.points] == [1, 2]
    first = {c.dataset: (c.granted, c.withdrawn, c.expired) for c in governed.points[0].counts}
    assert first == {
        "de-legal-corpus": (6, 0, 0),
        "es-blogs-corpus": (6, 0, 0),
        "pl-news-corpus": (6, 0, 0),
    }
    page = response.content.decode()
    assert "-s0001" not in page  # no subject pseudonym ever reaches the page


def test_consent_withdrawal_shows_in_the_next_round(browser_for, two_runs):
    from django.utils import timezone

    from fedgov.actors import Actor
    from sites.services import consent_record_batch
    from tests.factories import UserFactory
    from tests.reports.conftest import play_round

    governed, _orphan, _sites = two_runs
    es = governed.datasets.get(name="es-blogs-corpus")
    consent_record_batch(
        actor=Actor.system("es-blogs"),
        dataset=es,
        events=[
            {
                "subject_pseudonym": "es-blogs-s0002",
                "purpose": governed.purpose.code,
                "kind": "withdraw",
                "occurred_at": timezone.now(),
            }
        ],
    )
    play_round(
        governed,
        3,
        operator=Actor.of(UserFactory(username="olga")),
        approver=verified_actor(UserFactory(username="anton")),
        accuracy=0.8,
    )

    response = browser_for(roles.DPO).get(URL, {"run": governed.pk})

    points = response.context["coverage"][0].points
    es_counts = [
        next((c.granted, c.withdrawn) for c in p.counts if c.dataset == "es-blogs-corpus")
        for p in points
    ]
    assert es_counts == [(6, 0), (6, 0), (5, 1)]


def test_reports_panel_links_finished_reports_to_the_download_api(browser_for, two_runs):
    from fedgov import clock
    from reports.models import Report

    governed, _orphan, _sites = two_runs
    done = Report.objects.create(
        run=governed,
        run_name=governed.name,
        status="done",
        progress=100,
        pdf_name="r.pdf",
        pdf_sha256="a" * 64,
        requested_by_name="dpo",
        created_at=clock.now(),
    )
    queued = Report.objects.create(
        run=governed, run_name=governed.name, requested_by_name="dpo", created_at=clock.now()
    )

    page = browser_for(roles.LEGAL).get(URL).content.decode()

    assert f"/api/v1/reports/{done.public_id}/download?file=pdf" in page
    assert f"/api/v1/reports/{done.public_id}/download?file=bundle" in page
    assert f"/api/v1/reports/{queued.public_id}/download" not in page
    assert "Queued" in page


def test_login_page_signs_a_dpo_in_and_returns_to_the_dashboard(client, db):
    from tests.factories import UserFactory

    user = UserFactory(username="dora", roles=[roles.DPO])
    user.set_password("a-long-test-password")
    user.save()

    page = client.get(reverse("dashboard:login"))
    response = client.post(
        reverse("dashboard:login"),
        {"username": "dora", "password": "a-long-test-password", "next": URL},
    )

    assert page.status_code == 200 and b"Sign in" in page.content
    assert response.status_code == 302 and response["Location"] == URL
    assert client.get(URL).status_code == 200


def test_login_page_refuses_a_wrong_password_with_a_reason(client, db):
    from tests.factories import UserFactory

    UserFactory(username="dora", roles=[roles.DPO])

    response = client.post(reverse("dashboard:login"), {"username": "dora", "password": "nope"})

    assert response.status_code == 200
    assert b"enter a correct username and password" in response.content
    assert client.get(URL).status_code == 302


def test_login_never_redirects_off_site(client, db):
    from tests.factories import UserFactory

    user = UserFactory(username="dora", roles=[roles.DPO])
    user.set_password("a-long-test-password")
    user.save()

    response = client.post(
        reverse("dashboard:login"),
        {"username": "dora", "password": "a-long-test-password", "next": "https://evil.example/"},
    )

    assert response.status_code == 302
    assert response["Location"] == URL


@pytest.mark.parametrize(
    ("lang", "allowed", "blocked"),
    [
        ("en", "gate allowed, ", "gate blocked, "),
        ("pl", "bramka dozwolona, ", "bramka zablokowana, "),
        ("de", "Prüfung zulässig, ", "Prüfung blockiert, "),
        ("es", "control permitido, ", "control bloqueado, "),
        ("fr", "contrôle autorisé, ", "contrôle bloqué, "),
    ],
)
def test_the_timeline_writes_the_gate_outcome_mid_sentence_in_lower_case(
    browser_for, two_runs, lang, allowed, blocked
):
    client = browser_for(roles.DPO)
    page = client.get(URL, HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    timeline = page.split('id="timeline"')[1].split('id="gate-failures"')[0]
    assert allowed in timeline and blocked in timeline
