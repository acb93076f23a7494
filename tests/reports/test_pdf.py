"""The PDF report: it renders, states what a DPO needs, and rasterises without errors."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.utils import timezone

from fedgov.actors import Actor
from reports.assemble import report_input
from reports.pdf import render


def pdf_text(path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    done = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True)
    return done.stdout


def page_count(path) -> int:
    done = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return int(
        next(line for line in done.stdout.splitlines() if line.startswith("Pages:")).split()[1]
    )


def build_pdf(run, path):
    seen = []
    doc = report_input(
        report_id="r-test",
        run_ids=[run.pk],
        run_name=run.name,
        period=None,
        generated_at=timezone.now(),
        actor=Actor.system("tests"),
        on_round=seen.append,
    )
    render(doc, str(path))
    return doc, seen


@pytest.mark.django_db
def test_pdf_report_states_rounds_legal_frame_and_anchor(played_run, tmp_path):
    run, *_ = played_run
    out = tmp_path / "report.pdf"

    doc, seen = build_pdf(run, out)

    text = pdf_text(out)
    assert [f.number for f in seen] == [1, 2]
    for needle in (
        "legal frame",
        f"Run {run.name}",
        "Round 1: allowed",
        "Round 2: allowed",
        "anton",
        "Appendix: ledger anchor",
        run.policy.content_hash[:20],
        "01".ljust(64, "f")[:40],
    ):
        assert needle in text, needle
    assert "es-blogs-s0003" not in text
    assert doc.cited and max(doc.cited) < doc.anchor.size


@pytest.mark.django_db
def test_pdf_report_renders_to_png_pages(played_run, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    run, *_ = played_run
    out = tmp_path / "report.pdf"
    build_pdf(run, out)

    done = subprocess.run(
        ["pdftoppm", "-r", "60", "-png", str(out), str(tmp_path / "page")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0 and not done.stderr, done.stderr
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == page_count(out) >= 4


@pytest.mark.django_db
def test_pdf_report_shows_where_each_site_trained_once_per_placement(played_run, tmp_path):
    from opennebula.models import Workload

    run, sites, *_ = played_run
    now = timezone.now()
    Workload.objects.create(
        site=sites[0],
        site_slug=sites[0].slug,
        run=run,
        zone_id=101,
        zone_endpoint="http://127.0.0.1:2633/RPC2",
        vm_id=7,
        state="running",
        host="fra-kvm-01",
        host_country="DE",
        cluster_country="DE",
        datastore_country="DE",
        created_at=now,
        updated_at=now,
        actor_name="test",
    )
    out = tmp_path / "report.pdf"

    build_pdf(run, out)

    text = pdf_text(out)
    assert text.count("fra-kvm-01") == 1
    assert "the same OpenNebula workloads as in round 1" in text
