"""Benchmark: the signed audit report vs a plain unsigned reportlab table of the same rows.

Prints one JSON line. Targets: time(signed report) / time(plain table) <= 3 (medians, run
alternately in one process) and the report's peak RSS < 400 MB at 500 rounds × 50 sites,
measured in a child process that builds only the report. The data are plain dataclasses
(``reports.data``), so no database of that size is needed; the ledger anchor and
proofs are synthetic hashes of the real shapes. ``--quick`` runs 5 rounds × 5 sites.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fedgov.settings")
os.environ.setdefault("FEDGOV_VAR_DIR", tempfile.mkdtemp(prefix="fedgov-bench-report-"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from reportlab.lib.pagesizes import A4  # noqa: E402
from reportlab.platypus import LongTable, SimpleDocTemplate  # noqa: E402

from reports import data as rd  # noqa: E402
from reports.pdf import Anchor, CitedProof, ReportInput, RunSection, render  # noqa: E402
from reports.signing import sign_pdf, signing_identity  # noqa: E402

RULES = [
    ("site-active", "Art. 26/28"),
    ("lawful-basis", "Art. 6(1)"),
    ("special-category", "Art. 9(2)"),
    ("purpose-limitation", "Art. 5(1)(b)"),
    ("retention", "Art. 5(1)(e)"),
    ("consent", "Art. 7"),
    ("min-records", "policy"),
    ("dpia", "Art. 35"),
    ("residency", "Art. 44 + policy"),
    ("transfer", "Art. 44-46"),
    ("privacy-budget", "Art. 25/32"),
]
T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def h(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def header(sites: int) -> rd.RunHeader:
    slugs = [f"site-{i:03d}" for i in range(sites)]
    return rd.RunHeader(
        run_id=1,
        name="bench-run",
        purpose_code="topic-classification",
        purpose_name="Topic classification of texts",
        status="active",
        aggregator_country="DE",
        num_rounds=0,
        requested_by="operator",
        created_at=T0,
        controllers=tuple(
            rd.Controller(s, f"Organisation {s}", "DE", "joint_controller", h(s)) for s in slugs
        ),
        datasets=tuple(
            rd.DatasetLegal(
                i, s, f"{s}-corpus", "6(1)(a)", False, "", dt.date(2027, 1, 1), ("EEA",), None
            )
            for i, s in enumerate(slugs)
        ),
        dpia=rd.DpiaFacts("DPIA-1", "approved", h("dpia"), T0, dt.date(2027, 1, 1)),
        policy=rd.PolicyFacts("eea", 1, "published", h("policy"), T0, 2, True),
        transfers=tuple(
            rd.Transfer(s, "DE", "model updates", "Aggregator GmbH", "DE", False, True, "")
            for s in slugs
        ),
        ledger_seqs=(0, 1, 2),
    )


def round_facts(number: int, sites: int) -> rd.RoundFacts:
    slugs = [f"site-{i:03d}" for i in range(sites)]
    base = 3 + (number - 1) * (sites + 5)
    failing = slugs[number % sites] if number % 4 == 0 else None
    at = T0 + dt.timedelta(hours=number)
    return rd.RoundFacts(
        run_id=1,
        round_id=number,
        number=number,
        state="closed",
        state_reason="",
        created_at=at,
        gate_outcome="allowed",
        gate_reason=f"allowed: {sites - bool(failing)} of {sites} sites eligible",
        gate_at=at,
        snapshot_hash=h("snap", number),
        rules=(
            *(
                rd.RuleRow(
                    s,
                    rid,
                    art,
                    not (s == failing and rid == "consent"),
                    "consent withdrawn by every subject" if s == failing else "ok",
                )
                for s in slugs
                for rid, art in RULES
            ),
            rd.RuleRow("", "min-sites", "policy", True, "enough sites"),
        ),
        approvals=(rd.ApprovalRow("approve", "anton", at, at + dt.timedelta(days=1), "ok"),),
        placements=tuple(
            rd.PlacementRow(s, 100 + i, 1000 + i, f"kvm-{i:02d}", "DE", "DE", "DE", "running")
            for i, s in enumerate(slugs)
        ),
        records=tuple(
            rd.SiteRecords(s, s != failing, 1000, number % 7, 0 if s == failing else 1000)
            for s in slugs
        ),
        updates=tuple(
            rd.UpdateRow(s, str(1000 + i), h("u", number, s), 1000, True, "")
            for i, s in enumerate(slugs)
            if s != failing
        ),
        aggregate_hash=h("agg", number),
        accuracy=round(0.5 + 0.4 * number / (number + 20), 4),
        consent=tuple(
            rd.ConsentCount(i, f"{s}/{s}-corpus", 1000 - number % 7, number % 7, 0)
            for i, s in enumerate(slugs)
        ),
        ledger_seqs=tuple(range(base, base + sites + 5)),
    )


def document(rounds: int, sites: int) -> ReportInput:
    size = 3 + rounds * (sites + 5) + 1
    depth = max(1, (size - 1).bit_length())

    def proofs(seqs):
        for seq in seqs:
            yield CitedProof(
                seq,
                "update.recorded",
                f"round {seq}",
                bytes.fromhex(h(seq)),
                tuple(bytes.fromhex(h(seq, d)) for d in range(depth)),
            )

    series = [
        rd.RoundPoint(
            n, "closed", "allowed", sites, sites, n % 7, round(0.5 + 0.4 * n / (n + 20), 4)
        )
        for n in range(1, rounds + 1)
    ]
    return ReportInput(
        report_id="bench",
        title="Audit report: bench-run",
        scope="Run bench-run, all rounds",
        organisation="bench",
        generated_at=T0,
        anchor=Anchor(size, bytes(32), "0123456789abcdef", T0, "bench\n1\nroot\n\n— sig"),
        sections=[
            RunSection(header(sites), series, (round_facts(n, sites) for n in range(1, rounds + 1)))
        ],
        proofs=proofs,
    )


def signed_report(rounds: int, sites: int, folder: Path) -> None:
    unsigned, signed = folder / "unsigned.pdf", folder / "signed.pdf"
    render(document(rounds, sites), str(unsigned))
    sign_pdf(source=unsigned, out=signed)
    unsigned.unlink()
    signed.unlink()


def plain_table(rounds: int, sites: int, folder: Path) -> None:
    """The baseline: every per-site row of every round in one unsigned LongTable."""
    rows = [["round", "site", "eligible", "records", "excluded", "update", "rules"]]
    for n in range(1, rounds + 1):
        facts = round_facts(n, sites)
        verdicts = {}
        for r in facts.rules:
            verdicts.setdefault(r.site_slug, []).append("p" if r.ok else "F")
        hashes = {u.site_slug: u.update_hash[:16] for u in facts.updates}
        rows += [
            [
                n,
                r.site_slug,
                r.eligible,
                r.records_used,
                r.excluded_subjects,
                hashes.get(r.site_slug, "-"),
                "".join(verdicts.get(r.site_slug, [])),
            ]
            for r in facts.records
        ]
    out = folder / "plain.pdf"
    SimpleDocTemplate(str(out), pagesize=A4).build([LongTable(rows, repeatRows=1)])
    out.unlink()


def child(rounds: int, sites: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fedgov-bench-report-child-"))
    signed_report(rounds, sites, folder)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds, sites = (5, 5) if args.quick else (args.rounds, args.sites)
    if args.child:
        child(rounds, sites)
        return
    settings.FEDGOV_REPORT_DIR = Path(os.environ["FEDGOV_VAR_DIR"]) / "reports"
    signing_identity()  # made once, outside the timings
    folder = Path(tempfile.mkdtemp(prefix="fedgov-bench-report-"))
    repeat = 1 if args.quick else args.repeat
    signed_times, plain_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        plain_table(rounds, sites, folder)
        plain_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        signed_report(rounds, sites, folder)
        signed_times.append(time.perf_counter() - start)
    command = [sys.executable, __file__, "--child", "--rounds", str(rounds), "--sites", str(sites)]
    rss = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    signed_s, plain_s = statistics.median(signed_times), statistics.median(plain_times)
    print(
        json.dumps(
            {
                "bench": "report",
                "ratio": round(signed_s / plain_s, 3),
                "target": "<= 3",
                "rounds": rounds,
                "sites": sites,
                "signed_report_s": round(signed_s, 3),
                "plain_table_s": round(plain_s, 3),
                "repeat": repeat,
                "peak_rss_mb": round(rss["peak_rss_mb"], 1),
                "rss_target": "< 400",
            }
        )
    )


if __name__ == "__main__":
    main()
