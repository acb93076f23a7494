"""One truth, continued: the DPO dashboard's HTML and the Art. 30 CSV, as served, say the
same counts, roles and transfers as ``reports.data`` and the gate's own rows, for a run in
which one site is refused in every round and subjects are excluded."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from fedgov.actors import Actor
from reports import art30
from reports.data import role_label, round_series, run_header
from sites.models import ResidencyPolicy, Site
from sites.services import consent_record_batch
from tests.factories import UserFactory, verified_actor
from tests.reports.conftest import play_round
from tests.training.flower.conftest import governed_scenario
from training.models import GateDecision, SiteEligibility

pytestmark = pytest.mark.django_db


@pytest.fixture
def refused_everywhere():
    """Two rounds; the third site's zone is run by a US processor with no Chapter V
    mechanism, so the gate refuses it in both rounds; es-blogs withdrew two subjects before
    round 2. Returns ``(run, sites)``."""
    return play_refused_everywhere()


def play_refused_everywhere(*, before=None):
    """The run of ``refused_everywhere``; ``before(run, sites)`` adds facts before round 1."""
    operator = Actor.of(UserFactory(username="olga", roles=["Operator"]))
    approver = UserFactory(username="anton", roles=["Operator"])
    run, sites, datasets = governed_scenario(subjects=10, num_rounds=2)
    if before is not None:
        before(run, sites)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(requires_approval=True)
    Site.objects.filter(pk=sites[0].pk).update(agreement_type="controller")
    Site.objects.filter(pk=sites[2].pk).update(
        zone_operator="Atlantic Cloud Hosting Inc.",
        zone_operator_country="US",
        zone_operator_role="processor",
    )
    run.refresh_from_db()
    play_round(run, 1, operator=operator, approver=verified_actor(approver), accuracy=0.6)
    consent_record_batch(
        actor=Actor.system("es-blogs"),
        dataset=datasets[1],
        events=[
            {
                "subject_pseudonym": f"{sites[1].slug}-s000{n}",
                "purpose": run.purpose.code,
                "kind": "withdraw",
                "occurred_at": timezone.now(),
            }
            for n in (3, 7)
        ],
    )
    play_round(run, 2, operator=operator, approver=verified_actor(approver), accuracy=0.7)
    return run, sites


def _latest_decisions(run) -> list[GateDecision]:
    latest: dict[int, GateDecision] = {}
    for d in GateDecision.objects.filter(round__run=run).order_by("evaluated_at", "pk"):
        latest[d.round_id] = d
    return list(latest.values())


def _dashboard(client: Client) -> str:
    response = client.get(reverse("dashboard:index"))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def _run_row(page: str, run) -> str:
    rows = re.findall(r"<tr>\s*<td><a href=\"\?run=(\d+)\">.*?</tr>", page, flags=re.S)
    assert rows == [str(run.pk)]
    return re.search(rf"<tr>\s*<td><a href=\"\?run={run.pk}\">.*?</tr>", page, re.S).group(0)


@pytest.fixture
def dpo_client() -> Client:
    client = Client()
    client.force_login(UserFactory(roles=["DPO"]))
    return client


def test_dashboard_counts_refusals_per_site_and_round_and_excluded_subjects(
    refused_everywhere, dpo_client
):
    run, sites = refused_everywhere
    decisions = _latest_decisions(run)
    assert len(decisions) == 2
    rows = SiteEligibility.objects.filter(decision__in=decisions)
    refused_site = {e.site_id for e in rows if not e.eligible}
    assert refused_site == {sites[2].pk}, "the US-hosted site is refused, and only it"
    refused = sum(1 for e in rows if not e.eligible)
    excluded = sum(len(e.excluded_pseudonyms or ()) for e in rows)
    assert refused == 2 and excluded > 0
    series = round_series(run_id=run.pk)
    assert sum(p.sites - p.eligible_sites for p in series) == refused
    assert sum(p.excluded_subjects for p in series) == excluded
    # No round was blocked: a run-level "blocked 0" alone would hide the refusals.
    assert all(p.gate_outcome == "allowed" for p in series)

    page = _dashboard(dpo_client)
    row = _run_row(page, run)
    assert f'data-refused-site-rounds="{refused}"' in row
    assert f'data-excluded-subjects="{excluded}"' in row
    assert "Sites refused (per site and round)" in page
    assert "Subjects excluded" in page
    assert not re.search(r"records? excluded|excluded records", page, re.I)


def test_dashboard_and_art30_csv_name_each_sites_role_alike_and_only_third_country_transfers(
    refused_everywhere, dpo_client
):
    run, sites = refused_everywhere
    header = run_header(run_id=run.pk)
    page = _dashboard(dpo_client)
    row = _run_row(page, run)

    response = dpo_client.get(reverse("report-art30"), {"output": "csv", "lang": "en"})
    assert response.status_code == 200
    text = response.content.decode("utf-8-sig")
    keys = {str(label): key for key, label in art30.CONTROLLER_COLUMNS}
    records = [
        {keys[label]: value for label, value in r.items()}
        for r in csv.DictReader(io.StringIO(text))
    ]
    by_site = {r["dataset"].split("/")[0]: r for r in records}
    assert set(by_site) >= {s.slug for s in sites}

    assert {c.agreement_type for c in header.controllers} >= {"joint_controller", "controller"}
    for c in header.controllers:
        label = role_label(c.agreement_type)
        assert by_site[c.site_slug]["role"] == label
        assert f"{c.site_slug}: {label}" in row

    third = {t.site_slug for t in header.transfers if t.third_country}
    assert third == {sites[2].slug}
    listed = {slug for slug, r in by_site.items() if r["transfers"] != "none"}
    assert listed == third
    assert "Atlantic Cloud Hosting Inc. (US)" in by_site[sites[2].slug]["transfers"]
    # An intra-EEA leg is no Chapter V transfer: a site with only such legs reads "none".
    eea_only = {t.site_slug for t in header.transfers} - third
    assert eea_only, "the scenario has intra-EEA legs"
    for slug in eea_only:
        assert by_site[slug]["transfers"] == "none"


def _runs_queries(filters) -> tuple[list, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from dashboard import selectors

    with CaptureQueriesContext(connection) as captured:
        rows = selectors.runs(filters)
    return rows, len(captured)


def test_site_filter_counts_only_that_sites_refusals_and_exclusions(refused_everywhere, dpo_client):
    run, sites = refused_everywhere
    rows = SiteEligibility.objects.filter(decision__in=_latest_decisions(run))
    whole_refused = sum(1 for e in rows if not e.eligible)
    whole_excluded = sum(len(e.excluded_pseudonyms or ()) for e in rows)
    seen_refused = seen_excluded = 0
    for site in sites:
        mine = [e for e in rows if e.site_id == site.pk]
        refused = sum(1 for e in mine if not e.eligible)
        excluded = sum(len(e.excluded_pseudonyms or ()) for e in mine)
        seen_refused += refused
        seen_excluded += excluded

        response = dpo_client.get(reverse("dashboard:index"), {"site": site.pk})
        assert response.status_code == 200
        page = html.unescape(response.content.decode())
        row = _run_row(page, run)
        assert f'data-refused-site-rounds="{refused}"' in row, site.slug
        assert f'data-excluded-subjects="{excluded}"' in row, site.slug
        # The page says whose figures these are.
        assert f"count only site {site.slug}" in page
    # The fixture gives each kind of figure to a different site, so a filter that still
    # counted the whole run would fail above for at least two sites.
    assert (seen_refused, seen_excluded) == (whole_refused, whole_excluded)
    assert whole_refused > 0 and whole_excluded > 0
    page = _dashboard(dpo_client)
    assert "count only site" not in page
    assert f'data-refused-site-rounds="{whole_refused}"' in _run_row(page, run)


def test_runs_panel_reads_in_the_same_number_of_queries_with_a_site_filter_and_more_runs(
    refused_everywhere,
):
    from dashboard.selectors import Filters
    from tests.factories import DatasetFactory, RunFactory, SiteFactory
    from training.services.gate import round_gate

    run, sites = refused_everywhere
    _, whole = _runs_queries(Filters())
    scoped_rows, scoped = _runs_queries(Filters(site_id=sites[1].pk))
    assert scoped == whole
    assert [r.id for r in scoped_rows] == [run.pk]

    # Two more runs, each gated, with more sites: the panel must not read per run or site.
    for n in range(2):
        extra = [SiteFactory(slug=f"extra-{n}-{i}") for i in range(3)]
        other = RunFactory(
            purpose=run.purpose,
            datasets=[
                *[
                    DatasetFactory(site=s, name=f"{s.slug}-corpus", purposes=[run.purpose])
                    for s in extra
                ],
                DatasetFactory(site=sites[1], name=f"more-{n}", purposes=[run.purpose]),
            ],
        )
        round_gate(actor=Actor.system("t"), run=other, round_no=1)
    more_rows, more = _runs_queries(Filters())
    assert len(more_rows) == 3
    assert more == whole
    scoped_rows, scoped = _runs_queries(Filters(site_id=sites[1].pk))
    assert len(scoped_rows) == 3
    assert scoped == whole
    # The other runs refused sites[1] (no consent, no DPIA) once each: counted in its runs.
    by_id = {r.id: r for r in scoped_rows}
    assert by_id[run.pk].refused_site_rounds == 0
    assert all(r.refused_site_rounds == 1 for r in scoped_rows if r.id != run.pk)
