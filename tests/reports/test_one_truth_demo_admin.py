"""One truth, the rest of it: the demo's printed table, the round and gate decision admin
pages and the gate API say, for the same run, the same counts, roles and words as the
dashboard and the report data (tests/reports/test_one_truth_dashboard.py checks those
against the PDF data and the Art. 30 record): subjects and records apart, each named;
refusals per site and round; each site's role in the same words."""

from __future__ import annotations

import html
import io
import re

import pytest
from django.test import Client
from django.urls import reverse

from fedgov import roles
from reports.data import report_rounds, role_label, round_series, run_header
from sites.choices import LawfulBasis
from sites.models import Dataset
from tests.factories import DatasetFactory, UserFactory, login_verified
from tests.reports.test_one_truth_dashboard import (
    _latest_decisions,
    _run_row,
    play_refused_everywhere,
)
from training import selectors
from training.management.commands.demo import Command as Demo
from training.models import GateDecision

pytestmark = pytest.mark.django_db

# A dataset processed under a contract (Art. 6(1)(b)): its declared records are rows, and
# must never be added to, or shown as, the consenting subjects of the same site.
DECLARED = 40


@pytest.fixture
def mixed_bases():
    """The run of ``refused_everywhere``, where de-legal also brings a contract-based
    dataset of 40 declared records; returns ``(run, sites)``."""

    def contract_dataset(run, sites):
        run.datasets.add(
            DatasetFactory(
                site=sites[0],
                name="de-legal-contracts",
                purposes=[run.purpose],
                lawful_basis=LawfulBasis.CONTRACT,
                record_count=DECLARED,
            )
        )

    return play_refused_everywhere(before=contract_dataset)


@pytest.fixture
def dpo_client() -> Client:
    client = Client()
    client.force_login(UserFactory(roles=[roles.DPO]))
    return client


def _demo_rows(view: selectors.GateDecisionView) -> dict[str, dict[str, str]]:
    """The demo's table for one decision, as printed, parsed into ``{row: {site: cell}}``."""
    out = io.StringIO()
    demo = Demo(stdout=out)
    demo.console_width = 220
    demo._table(view, {})
    lines = [line for line in out.getvalue().splitlines() if "│" in line or "┃" in line]
    cells = [[c.strip() for c in re.split(r"[│┃]", line)[1:-1]] for line in lines]
    header = cells[0]
    assert header[:2] == ["rule", "article"]
    return {row[0]: dict(zip(header[2:], row[2:], strict=True)) for row in cells[1:] if row[0]}


def _admin_client() -> Client:
    client = Client()
    login_verified(client, UserFactory(username="dora", is_staff=True, roles=[roles.DPO]))
    return client


def test_demo_table_says_what_the_report_data_and_the_dashboard_say(mixed_bases, dpo_client):
    run, sites = mixed_bases
    header = run_header(run_id=run.pk)
    role = {c.site_slug: role_label(c.agreement_type) for c in header.controllers}
    facts = {f.number: f for f in report_rounds(run_id=run.pk)}
    decisions = {d.round.number: d for d in _latest_decisions(run)}
    assert set(decisions) == {1, 2}

    refused = 0
    for number, decision in decisions.items():
        table = _demo_rows(selectors.gate_decision_view(decision))
        for r in facts[number].records:
            assert table["subjects with valid consent¹"][r.site_slug] == str(r.eligible_subjects)
            assert table["declared records²"][r.site_slug] == str(r.declared_records)
            assert table["subjects excluded"][r.site_slug] == str(r.excluded_subjects)
            assert table["eligible"][r.site_slug] == ("yes" if r.eligible else "no")
            assert table["role"][r.site_slug] == role[r.site_slug]
            refused += not r.eligible
        assert not any("records excluded" in row or "eligible records" in row for row in table)
        # People and rows apart: de-legal's 40 contract records are not consenting subjects.
        de_legal = next(r for r in facts[number].records if r.site_slug == sites[0].slug)
        assert de_legal.declared_records == DECLARED
        assert de_legal.eligible_subjects + DECLARED == de_legal.eligible_records
        assert table["subjects with valid consent¹"][sites[0].slug] == "10"

    # Refusals per site and round: the demo's "no" cells, the report's series and the
    # dashboard's figure are the same number, and a site refused in every round counts twice.
    series = round_series(run_id=run.pk)
    assert refused == sum(p.sites - p.eligible_sites for p in series) == 2
    page = html.unescape(dpo_client.get(reverse("dashboard:index")).content.decode())
    row = _run_row(page, run)
    assert f'data-refused-site-rounds="{refused}"' in row
    excluded = sum(p.excluded_subjects for p in series)
    assert f'data-excluded-subjects="{excluded}"' in row
    for slug, label in role.items():
        assert f"{slug}: {label}" in row


def _cells(page: str, site: str) -> list[str]:
    row = re.search(rf'<tr data-site="{site}">(.*?)</tr>', page, re.S)
    assert row, site
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row.group(1))]


def test_round_admin_page_says_what_the_report_data_says(mixed_bases):
    run, _sites = mixed_bases
    header = run_header(run_id=run.pk)
    role = {c.site_slug: role_label(c.agreement_type) for c in header.controllers}
    client = _admin_client()
    for facts in report_rounds(run_id=run.pk):
        response = client.get(reverse("admin:training_round_change", args=[facts.round_id]))
        assert response.status_code == 200
        page = html.unescape(response.content.decode())
        gate = page[page.index('id="gate"') : page.index('id="history"')]
        for label in (
            "Subjects with valid consent",
            "Declared records (other lawful bases)",
            "Subjects excluded",
        ):
            assert label in gate
        assert not re.search(r">\s*Records\s*<|Records \(eligible sites\)", gate)
        for r in facts.records:
            slug, shown_role, eligible, subjects, records, excluded, _failed = _cells(
                gate, r.site_slug
            )
            assert (slug, shown_role) == (r.site_slug, role[r.site_slug])
            assert eligible == ("✓ yes" if r.eligible else "✗ no")
            assert (subjects, records, excluded) == (
                str(r.eligible_subjects),
                str(r.declared_records),
                str(r.excluded_subjects),
            )
        totals = {
            "subjects": sum(r.eligible_subjects for r in facts.records if r.eligible),
            "records": sum(r.declared_records for r in facts.records if r.eligible),
        }
        for key, value in totals.items():
            assert re.search(rf'id="eligible-{key}-total">{value}<', gate), key


def test_gate_decision_admin_and_api_say_what_the_report_data_says(mixed_bases, api):
    run, _sites = mixed_bases
    header = run_header(run_id=run.pk)
    role = {c.site_slug: role_label(c.agreement_type) for c in header.controllers}
    client = _admin_client()
    reader = api(UserFactory(roles=[roles.AUDITOR]))
    for facts in report_rounds(run_id=run.pk):
        decision = GateDecision.objects.filter(round_id=facts.round_id).latest("evaluated_at")
        response = client.get(reverse("admin:training_gatedecision_change", args=[decision.pk]))
        assert response.status_code == 200
        page = html.unescape(response.content.decode())
        inline = {
            name: re.findall(rf'<td class="field-{name}">\s*<p>(.*?)</p>', page, re.S)
            for name in ("role", "eligible_subjects", "declared_records", "excluded_count")
        }
        ordered = sorted(facts.records, key=lambda r: r.site_slug)
        assert inline["role"] == [role[r.site_slug] for r in ordered]
        assert inline["eligible_subjects"] == [str(r.eligible_subjects) for r in ordered]
        assert inline["declared_records"] == [str(r.declared_records) for r in ordered]
        assert inline["excluded_count"] == [str(r.excluded_subjects) for r in ordered]

        body = reader.get(f"/api/v1/runs/{run.pk}/rounds/{facts.number}/decision").json()
        by_slug = {s["slug"]: s for s in body["sites"]}
        for r in facts.records:
            s = by_slug[r.site_slug]
            assert (s["eligible_subjects"], s["declared_records"]) == (
                r.eligible_subjects,
                r.declared_records,
            )
            assert s["excluded_subjects"] == r.excluded_subjects
            assert s["eligible"] == r.eligible
            assert role_label(s["role"]) == role[r.site_slug]
    # The fixture's contract dataset is in the run: the split is not vacuous.
    assert Dataset.objects.filter(runs=run, lawful_basis=LawfulBasis.CONTRACT).count() == 1
