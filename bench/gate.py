"""Benchmark: round_gate's query count and latency against the cost of reading its consent.

Prints one JSON line. Each ratio = median(gate of the large federation) / median(one
``SELECT dataset_id, count(*) ... GROUP BY dataset_id`` over the same consent rows, timed
in the same run): the gate reads every consent row it needs once, in SQL, to build each
site's allow-list (Art. 6(1)(a), 7), so it may cost a small multiple of one pass over
those rows. Target: the same query count at both sizes, and ``ratio`` <= 3.

In a federation consent changes between rounds, so the gates are timed in three states
of the consent-state cache (``sites.models.ConsentStateCache``):

- ``ratio`` (the realistic case): the first gate after one withdrawal in *every* dataset
  recorded through ``consent_record_batch`` (the path of the API, admin and scenario),
  which refreshes the touched datasets' cached state in its transaction;
- ``warm_ratio``: a gate with no consent written since the last one;
- ``raw_sql_cold_ratio``: the first gate after one withdrawal in every dataset written by
  a raw SQL UPDATE, which only invalidates (``sites.triggers``), so the gate recomputes
  every dataset from its rows; ``cold_ratio`` is the very first gate after seeding
  (bulk_create, also invalidate-only), one run.

Both federations are seeded into one throw-away test database (a temporary SQLite file,
or ``test_<name>`` on the PostgreSQL named by ``DATABASE_URL``), as runs share one
consent table in production; the warm gates are timed alternately so that both sizes see
the same machine load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fedgov.settings")
os.environ.setdefault("FEDGOV_VAR_DIR", tempfile.mkdtemp(prefix="fedgov-bench-gate-"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

WITHDRAWN_SHARE = 0.05


def seed(*, tag: str, sites: int, datasets: int, subjects: int, rounds: int):
    """One run over ``sites`` EEA sites, written with bulk_create."""
    from sites.models import Consent, Dataset, Purpose, ResidencyPolicy, Site
    from training.models import Dpia, TrainingRun

    today = dt.date.today()
    now = timezone.now()
    purpose, _ = Purpose.objects.get_or_create(code="topic-classification", name="Topics")
    policy = ResidencyPolicy.objects.create(
        name=f"bench-{tag}",
        version=1,
        status="published",
        allowed_areas=["EEA"],
        min_eligible_sites=2,
        min_records_per_site=10,
        requires_dpia=True,
        published_at=now,
        created_by_name="bench",
        content_hash="0" * 64,
        aggregator_operator={"organisation": "Coordinator", "country": "DE", "role": "controller"},
        host_operator={"organisation": "Host GmbH", "country": "DE", "role": "processor"},
    )
    site_rows = Site.objects.bulk_create(
        Site(
            slug=f"{tag}-site-{i:04d}",
            organisation=f"Org {i}",
            country="DE",
            compute_country="DE",
            contact_email=f"dpo{i}@example.org",
            agreement_type="joint_controller",
            agreement_document_hash="a" * 64,
            agreement_valid_from=today - dt.timedelta(days=30),
            agreement_valid_until=today + dt.timedelta(days=365),
            # Each site runs its own zone: no transfer for its data (Chapter V).
            zone_operator=f"Org {i}",
            zone_operator_country="DE",
            zone_operator_role="joint_controller",
        )
        for i in range(sites)
    )
    ds_rows = Dataset.objects.bulk_create(
        Dataset(
            site=site,
            name=f"ds{d}",
            lawful_basis="6(1)(a)",
            retention_until=today + dt.timedelta(days=365),
            processing_countries=["EEA"],
            data_categories=["text"],
        )
        for site in site_rows
        for d in range(datasets)
    )
    Dataset.purposes.through.objects.bulk_create(
        Dataset.purposes.through(dataset_id=ds.pk, purpose_id=purpose.pk) for ds in ds_rows
    )
    rng = random.Random(7)
    granted = now - dt.timedelta(days=60)
    withdrawn = now - dt.timedelta(days=1)
    Consent.objects.bulk_create(
        (
            Consent(
                dataset=ds,
                purpose=purpose,
                subject_pseudonym=f"{ds.site.slug}-{ds.name}-s{k:05d}",
                granted_at=granted,
                withdrawn_at=withdrawn if rng.random() < WITHDRAWN_SHARE else None,
            )
            for ds in ds_rows
            for k in range(subjects)
        ),
        batch_size=5000,
    )
    run = TrainingRun.objects.create(
        name=f"bench-{tag}",
        purpose=purpose,
        policy=policy,
        aggregator_country="DE",
        num_rounds=rounds,
        requested_by_name="bench",
    )
    TrainingRun.datasets.through.objects.bulk_create(
        TrainingRun.datasets.through(trainingrun_id=run.pk, dataset_id=ds.pk) for ds in ds_rows
    )
    Dpia.objects.create(
        run=run,
        reference=f"DPIA-{tag}",
        status="approved",
        document_hash="d" * 64,
        approved_by_name="bench",
        approved_at=now,
        valid_until=today + dt.timedelta(days=90),
    )
    return run


def count_queries(run) -> tuple[int, int, str, float]:
    """Queries of the run's first gate: the gate's own, and the ledger append's; and its
    seconds. The first gate finds no cached consent state (as after any consent write to
    every dataset) and computes each from the consent rows: reported as ``cold``."""
    from fedgov.actors import Actor
    from training.services.gate import round_gate

    with CaptureQueriesContext(connection) as captured:
        start = time.perf_counter()
        decision = round_gate(actor=Actor.system("bench"), run=run, round_no=1)
        seconds = time.perf_counter() - start
    sqls = [q["sql"] for q in captured.captured_queries]
    # The ledger's own writes grow with log2 of its size (RFC 9162 subtree hashes), not
    # with the federation; they are reported apart so the gate's figure stays comparable.
    ledger = sum(1 for sql in sqls if "audit_" in sql)
    return len(sqls) - ledger, ledger, decision.outcome, seconds


def time_rounds(runs: dict[str, object], repeats: int, sample=None) -> dict[str, float]:
    """Median seconds per gate; sizes alternate so both see the same machine load."""
    from fedgov.actors import Actor
    from training.services.gate import round_gate

    actor = Actor.system("bench")
    timings: dict[str, list[float]] = {label: [] for label in runs}
    for n in range(2, repeats + 2):
        for label, run in runs.items():
            start = time.perf_counter()
            round_gate(actor=actor, run=run, round_no=n)
            timings[label].append(time.perf_counter() - start)
            if sample is not None and label == "large":
                sample()
    return {label: statistics.median(values) for label, values in timings.items()}


def group_by_timer(run):
    """A function that times one GROUP BY count over the run's consent rows for its
    purpose and keeps the sample: called next to each timed gate, so the gate and the
    query it is divided by see the same machine load."""
    from sites.models import Consent
    from training.models import TrainingRun

    dataset_ids = list(
        TrainingRun.datasets.through.objects.filter(trainingrun_id=run.pk).values_list(
            "dataset_id", flat=True
        )
    )
    query = (
        Consent.objects.filter(dataset_id__in=dataset_ids, purpose_id=run.purpose_id)
        .order_by()
        .values("dataset_id")
        .annotate(n=Count("pk"))
        .values_list("dataset_id", "n")
    )
    samples: list[float] = []

    def sample() -> None:
        start = time.perf_counter()
        rows = list(query.all())  # a fresh clone: a queryset caches its rows
        samples.append(time.perf_counter() - start)
        assert len(rows) == len(dataset_ids)

    sample.samples = samples  # type: ignore[attr-defined]
    return sample


def _one_active_subject_per_dataset(run) -> dict[int, str]:
    """Per dataset of the run, its first subject whose consent is not withdrawn."""
    from django.db.models import Min

    from sites.models import Consent
    from training.models import TrainingRun

    rows = (
        Consent.objects.filter(
            dataset_id__in=TrainingRun.datasets.through.objects.filter(
                trainingrun_id=run.pk
            ).values("dataset_id"),
            purpose_id=run.purpose_id,
            withdrawn_at__isnull=True,
        )
        .order_by()
        .values("dataset_id")
        .annotate(subject=Min("subject_pseudonym"))
        .values_list("dataset_id", "subject")
    )
    return dict(rows)


def withdraw_through_service(run) -> tuple[int, float]:
    """One withdrawal in every dataset of the run, one ``consent_record_batch`` each (as
    each site uploads its own); the uploads and their total seconds."""
    from fedgov.actors import Actor
    from sites.models import Dataset
    from sites.services import consent_record_batch

    actor = Actor.system("bench-site")
    code = run.purpose.code
    subjects = _one_active_subject_per_dataset(run)
    start = time.perf_counter()
    for dataset_id, subject in sorted(subjects.items()):
        consent_record_batch(
            actor=actor,
            dataset=Dataset(pk=dataset_id),
            events=[
                {
                    "subject_pseudonym": subject,
                    "purpose": code,
                    "kind": "withdraw",
                    "occurred_at": timezone.now().isoformat(),
                }
            ],
        )
    return len(subjects), time.perf_counter() - start


def withdraw_through_raw_sql(run) -> int:
    """One withdrawal in every dataset of the run in one raw UPDATE: the triggers
    invalidate each dataset's cached state and nothing refreshes it."""
    subjects = _one_active_subject_per_dataset(run)
    when = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for start in range(0, len(subjects), 500):
            chunk = sorted(subjects.items())[start : start + 500]
            where = " OR ".join("(dataset_id = %s AND subject_pseudonym = %s)" for _ in chunk)
            cursor.execute(
                f"UPDATE sites_consent SET withdrawn_at = %s WHERE purpose_id = %s AND ({where})",  # noqa: S608
                [when, run.purpose_id, *(v for pair in chunk for v in pair)],
            )
    return len(subjects)


def time_after_writes(run, *, first_round: int, repeats: int, write, sample) -> list[float]:
    """Seconds of the first gate after each of ``repeats`` consent writes (``write(run)``)."""
    from fedgov.actors import Actor
    from training.services.gate import round_gate

    actor = Actor.system("bench")
    timings = []
    for n in range(first_round, first_round + repeats):
        write(run)
        start = time.perf_counter()
        round_gate(actor=actor, run=run, round_no=n)
        timings.append(time.perf_counter() - start)
        sample()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--write-repeats", type=int, default=None, help="gates timed after consent writes"
    )
    args = parser.parse_args()
    if args.quick:
        small, large, datasets, subjects, repeats, write_repeats = 3, 12, 2, 50, 3, 2
    else:
        small, large, datasets, subjects, repeats, write_repeats = 10, 200, 5, 1000, 5, 3
    repeats = args.repeats or repeats
    write_repeats = args.write_repeats or write_repeats
    rounds = 1 + repeats + 2 * write_repeats

    db = settings.DATABASES["default"]
    tmp_db = None
    if db["ENGINE"].endswith("sqlite3"):
        tmp_db = Path(tempfile.mkdtemp(prefix="fedgov-bench-gate-")) / "bench.sqlite3"
        db.setdefault("TEST", {})["NAME"] = str(tmp_db)
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        sizes = {"small": small, "large": large}
        runs = {
            label: seed(tag=label, sites=n, datasets=datasets, subjects=subjects, rounds=rounds)
            for label, n in sizes.items()
        }
        if connection.vendor == "postgresql":
            # A live database has its statistics and visibility map from autovacuum; a
            # table filled a second ago has neither, and would be planned blind.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        queries = {label: count_queries(run) for label, run in runs.items()}
        sample = group_by_timer(runs["large"])
        medians = time_rounds(runs, repeats, sample)
        uploads: list[float] = []

        def through_service(run) -> None:
            n, seconds = withdraw_through_service(run)
            uploads.append(seconds / n)

        after_service = time_after_writes(
            runs["large"],
            first_round=repeats + 2,
            repeats=write_repeats,
            write=through_service,
            sample=sample,
        )
        after_raw = time_after_writes(
            runs["large"],
            first_round=repeats + 2 + write_repeats,
            repeats=write_repeats,
            write=withdraw_through_raw_sql,
            sample=sample,
        )
        # Every sample, each taken right after a timed large gate: the divisor saw the
        # load the gates saw, also when other work shares the machine.
        group_by = statistics.median(sample.samples)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if tmp_db is not None and tmp_db.exists():
            tmp_db.unlink()

    (q_small, l_small, o_small, _), (q_large, l_large, o_large, cold) = (
        queries["small"],
        queries["large"],
    )
    t_small, t_large = medians["small"], medians["large"]
    t_service, t_raw = statistics.median(after_service), statistics.median(after_raw)
    ratio = t_service / group_by
    print(
        json.dumps(
            {
                "bench": "gate",
                "ratio": round(ratio, 3),
                "ratio_is": "first gate after a withdrawal in every dataset through "
                "consent_record_batch (refreshes the cache), over one GROUP BY count",
                "target": "same query count; ratio <= 3",
                "ok": q_small == q_large and ratio <= 3,
                "warm_ratio": round(t_large / group_by, 3),
                "raw_sql_cold_ratio": round(t_raw / group_by, 3),
                "median_ms_group_by": round(group_by * 1000, 2),
                "median_ms_large_after_service_write": round(t_service * 1000, 2),
                "median_ms_large_after_raw_sql_write": round(t_raw * 1000, 2),
                "median_ms_large_warm": round(t_large * 1000, 2),
                "median_ms_small_warm": round(t_small * 1000, 2),
                "ms_per_service_upload": round(statistics.median(uploads) * 1000, 2),
                "large_over_small": round(t_large / t_small, 3),
                "queries_small": q_small,
                "queries_large": q_large,
                "ledger_queries": [l_small, l_large],
                # One run, not a median: the large gate right after seeding (bulk_create:
                # every dataset invalidated, none refreshed).
                "ms_large_cold": round(cold * 1000, 2),
                "cold_ratio": round(cold / group_by, 3),
                "sites_small": small,
                "sites_large": large,
                "datasets_per_site": datasets,
                "subjects_per_dataset": subjects,
                "withdrawn_share": WITHDRAWN_SHARE,
                "outcomes": [o_small, o_large],
                "repeats": repeats,
                "write_repeats": write_repeats,
                "database": connection.vendor,
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
