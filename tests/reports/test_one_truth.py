"""One truth: for the same played run, the PDF, the Art. 30 record, the report data and the
gate's own rows say the same counts, roles and transfers in the same words."""

from __future__ import annotations

import re
import shutil

import pytest

from fedgov.actors import Actor
from reports import art30
from reports.data import processing_activities, role_label, run_header
from sites.models import Site
from tests.reports.test_pdf import build_pdf, pdf_text
from training.models import GateResult, SiteEligibility
from training.services.gate import round_gate

pytestmark = pytest.mark.django_db


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_pdf_art30_and_gate_agree_on_refusals_roles_and_transfers(played_run, tmp_path):
    run, *_ = played_run
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    out = tmp_path / "report.pdf"
    build_pdf(run, out)
    text = _flat(pdf_text(out))

    # Blocked counts per site and round, from the decisions themselves.
    refused = SiteEligibility.objects.filter(decision__round__run=run, eligible=False).count()
    times = "time" if refused == 1 else "times"
    assert f"refused a site {refused} {times} (per site and round)" in text

    # Roles: the report's controllers and the Art. 30 record name each site's role alike.
    header = run_header(run_id=run.pk)
    rows = art30.controller_rows(processing_activities())
    roles_art30 = {r["dataset"].split("/")[0]: r["role"] for r in rows}
    for c in header.controllers:
        assert roles_art30[c.site_slug] == role_label(c.agreement_type)
        assert role_label(c.agreement_type) in text

    # Transfers: every leg's ground in the PDF is the gate's own reason text, and Art. 30
    # lists no leg that the gate did not find to be a third-country transfer.
    reasons = " ".join(
        GateResult.objects.filter(decision__round__run=run, rule_id="transfer").values_list(
            "reason", flat=True
        )
    )
    for leg in header.transfers:
        assert leg.ground in reasons
    third = {t.site_slug for t in header.transfers if t.third_country}
    listed = {
        slug
        for slug, r in ((r["dataset"].split("/")[0], r) for r in rows)
        if r["transfers"] != "none"
    }
    assert listed == third


def test_a_third_country_leg_reads_the_same_in_pdf_and_art30(played_run, tmp_path):
    run, sites, *_ = played_run
    Site.objects.filter(pk=sites[2].pk).update(
        zone_operator="Atlantic Cloud Hosting Inc.",
        zone_operator_country="US",
        zone_operator_role="processor",
    )
    from training.models import Round

    run.num_rounds = 3
    run.save(update_fields=["num_rounds"])
    Round.objects.filter(run=run, number=3).delete()
    round_gate(actor=Actor.system("t"), run=run, round_no=3)
    out = tmp_path / "report.pdf"
    build_pdf(run, out)
    text = _flat(pdf_text(out))
    rows = art30.controller_rows(processing_activities())
    listed = [r for r in rows if r["transfers"] != "none"]
    assert [r["dataset"].split("/")[0] for r in listed] == [sites[2].slug]
    assert "Atlantic Cloud Hosting Inc. (US)" in listed[0]["transfers"]
    assert "Atlantic Cloud Hosting Inc. (US)" in text
    assert "third country, REFUSED" in text


def test_excluded_counts_are_subjects_in_the_pdf_the_api_and_the_gates_rows(played_run, tmp_path):
    """Excluded pseudonyms are subjects (Art. 7(3)); no output may call them records."""
    from training import selectors as training_selectors
    from training.api.gate import decision_body
    from training.models import GateDecision

    run, *_ = played_run
    latest = {}
    for decision in GateDecision.objects.filter(round__run=run).order_by("evaluated_at", "pk"):
        latest[decision.round_id] = decision
    from_rows = {
        d.pk: {
            e.site_id: len(e.excluded_pseudonyms or ())
            for e in SiteEligibility.objects.filter(decision=d)
        }
        for d in latest.values()
    }
    assert sum(sum(v.values()) for v in from_rows.values()) > 0, "the run excludes someone"
    for decision in latest.values():
        body = decision_body(training_selectors.gate_decision_view(decision))
        assert {s["site_id"]: s["excluded_subjects"] for s in body["sites"]} == (
            from_rows[decision.pk]
        )
        assert all("excluded_records" not in s for s in body["sites"])
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    out = tmp_path / "report.pdf"
    build_pdf(run, out)
    text = _flat(pdf_text(out))
    total = sum(sum(v.values()) for v in from_rows.values())
    were = "subject was" if total == 1 else "subjects were"
    assert f"In all, {total} {were} excluded from training" in text
    for wrong in ("records were excluded", "record was excluded", "Records excluded"):
        assert wrong not in text
