"""Art. 30 record of processing activities: controller and processor views, three formats."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

from fedgov import roles
from reports import art30
from reports.data import processing_activities
from sites.models import ResidencyPolicy
from tests.factories import DatasetFactory, PurposeFactory, RunFactory, SiteFactory, UserFactory


@pytest.fixture
def federation(db):
    purpose = PurposeFactory(code="topic-classification", name="Topic classification")
    de = SiteFactory(slug="de-legal", organisation="Recht e.V.", country="DE")
    ch = SiteFactory(slug="ch-news", organisation="Nachrichten AG", country="CH")
    ds_de = DatasetFactory(site=de, name="legal", purposes=[purpose], data_categories=["text"])
    ds_ch = DatasetFactory(
        site=ch, name="news", purposes=[purpose], special_category=True, art9_condition="9(2)(j)"
    )
    run = RunFactory(purpose=purpose, datasets=[ds_de, ds_ch], aggregator_country="DE")
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(
        transfer_mechanisms={"ch-news": "adequacy"}
    )
    return run


def test_controller_record_names_joint_controllers_transfers_and_retention(federation):
    rows = art30.controller_rows(processing_activities())

    by_dataset = {r["dataset"]: r for r in rows}
    assert set(by_dataset) == {"ch-news/news", "de-legal/legal"}
    ch = by_dataset["ch-news/news"]
    # CH → DE: the importer is in the EEA, so it is no transfer (Art. 44); legacy
    # transfer_mechanisms are not read.
    assert ch["transfers"] == "none"
    assert ch["joint_controllers"] == "Recht e.V."
    assert ch["art9_condition"] == "Art. 9(2)(j)" and "special category" in ch["data_categories"]
    assert by_dataset["de-legal/legal"]["transfers"] == "none"
    assert "DE" in by_dataset["de-legal/legal"]["recipients"]


def test_processor_record_has_one_row_per_controller(federation):
    rows = art30.processor_rows(processing_activities(), processor="fedgov operator")

    assert [r["controller"] for r in rows] == ["Nachrichten AG", "Recht e.V."]
    assert all(federation.name in r["processing"] for r in rows)


@pytest.mark.parametrize("view", art30.VIEWS)
def test_record_renders_as_csv_json_and_pdf(federation, view):
    acts = processing_activities()
    now = timezone.now()

    csv_body, _, _ = art30.render(view, "csv", acts, generated_at=now, processor="op")
    json_body, _, _ = art30.render(view, "json", acts, generated_at=now, processor="op")
    pdf_body, _, name = art30.render(view, "pdf", acts, generated_at=now, processor="op")

    table = list(csv.reader(io.StringIO(csv_body.decode("utf-8-sig"))))
    assert len(table) == 3 and table[0][0] in ("Controller", "Processor")
    assert b'"article": "30(' in json_body
    assert pdf_body.startswith(b"%PDF-") and name.endswith(".pdf")


def test_art30_api_for_legal_refuses_bad_choices_and_operators(federation, api):
    legal = api(UserFactory(roles=[roles.LEGAL]))

    ok = legal.get("/api/v1/reports/art30", {"view": "processor", "output": "csv"})
    bad = legal.get("/api/v1/reports/art30", {"view": "auditor", "output": "docx"})
    operator = api(UserFactory(roles=[roles.OPERATOR])).get("/api/v1/reports/art30")

    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/csv")
    assert "attachment" in ok["Content-Disposition"]
    assert bad.status_code == 400 and set(bad.json()) == {"view", "output"}
    assert operator.status_code == 403


@pytest.mark.django_db
def test_art30_lists_only_third_country_transfers_in_the_gates_words_and_the_pdf_agrees():
    """Art. 30(1)(e) and one truth: the record lists a US processor running a site's zone
    (another organisation, outside the EEA), not the intra-EEA legs; the report's header
    carries the same legs with the same ground, and the gate's own reason contains it."""
    from fedgov.actors import Actor
    from reports.data import run_header
    from sites.models import Site
    from tests.training.flower.conftest import governed_scenario
    from training.models import GateResult
    from training.services.gate import round_gate

    run, sites, _ = governed_scenario(subjects=3)
    Site.objects.filter(pk=sites[2].pk).update(
        zone_operator="Atlantic Cloud Hosting Inc.",
        zone_operator_country="US",
        zone_operator_role="processor",
    )
    decision = round_gate(actor=Actor.system("t"), run=run, round_no=1)
    rows = {r["dataset"].split("/")[0]: r for r in art30.controller_rows(processing_activities())}
    listed = {slug for slug, r in rows.items() if r["transfers"] != "none"}
    assert listed == {sites[2].slug}
    text = rows[sites[2].slug]["transfers"]
    assert "Atlantic Cloud Hosting Inc. (US)" in text and "without a ground" in text
    legs = [t for t in run_header(run_id=run.pk).transfers if t.third_country]
    assert [(t.site_slug, t.importer, t.ok) for t in legs] == [
        (sites[2].slug, "Atlantic Cloud Hosting Inc.", False)
    ]
    reason = GateResult.objects.get(decision=decision, site=sites[2], rule_id="transfer").reason
    assert legs[0].ground in reason and legs[0].ground in text
