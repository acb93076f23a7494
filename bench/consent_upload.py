"""Benchmark: a 5,000-row consent upload through the API vs naive per-row ORM inserts.

Prints one JSON line. ``ratio`` = median(API upload, JSON) / median(per-row inserts of the
same rows in one transaction, no validation, no ledger): the bulk path with its checks,
HTTP parsing and ledger event must be no slower than the naive write. The CSV upload is
timed too. Uses a throw-away test database (a temporary SQLite file, or ``test_<name>``
on the PostgreSQL named by ``DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fedgov.settings")
os.environ.setdefault("FEDGOV_VAR_DIR", tempfile.mkdtemp(prefix="fedgov-bench-consent-"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def make_rows(n: int, tag: str) -> list[dict]:
    return [
        {
            "subject_pseudonym": f"{tag}-s{i:06d}",
            "purpose": "topics",
            "kind": "grant",
            "occurred_at": (T0 + dt.timedelta(seconds=i)).isoformat(),
            "expires_at": (T0 + dt.timedelta(days=365)).isoformat() if i % 3 == 0 else None,
        }
        for i in range(n)
    ]


def as_csv(rows: list[dict]) -> str:
    lines = ["subject_pseudonym,purpose,kind,occurred_at,expires_at"]
    for r in rows:
        lines.append(
            f"{r['subject_pseudonym']},{r['purpose']},{r['kind']},{r['occurred_at']},"
            f"{r['expires_at'] or ''}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    rows_n = args.rows or (1000 if args.quick else 5000)
    repeats = args.repeats or (2 if args.quick else 5)

    db = settings.DATABASES["default"]
    tmp_db = None
    if db["ENGINE"].endswith("sqlite3"):
        tmp_db = Path(tempfile.mkdtemp(prefix="fedgov-bench-consent-")) / "bench.sqlite3"
        db.setdefault("TEST", {})["NAME"] = str(tmp_db)
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        figures = measure(rows_n, repeats)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if tmp_db is not None and tmp_db.exists():
            tmp_db.unlink()

    ratio = figures["json"] / figures["naive"]
    print(
        json.dumps(
            {
                "bench": "consent_upload",
                "ratio": round(ratio, 3),
                "target": "<= 1.0",
                "ok": ratio <= 1.0,
                "rows": rows_n,
                "median_s_api_json": round(figures["json"], 4),
                "median_s_api_csv": round(figures["csv"], 4),
                "median_s_naive_per_row": round(figures["naive"], 4),
                "rows_per_s_api_json": round(rows_n / figures["json"]),
                "repeats": repeats,
                "database": connection.vendor,
                "quick": args.quick,
            }
        )
    )


def measure(rows_n: int, repeats: int) -> dict[str, float]:
    from django.contrib.auth.models import Group, User
    from rest_framework.test import APIClient

    from fedgov import roles
    from sites.models import Consent, ConsentEvent, Dataset, Purpose, Site

    today = dt.date.today()
    purpose = Purpose.objects.create(code="topics", name="Topics")
    site = Site.objects.create(
        slug="bench-site",
        organisation="Bench",
        country="DE",
        contact_email="dpo@bench.example",
        agreement_type="processor",
        agreement_document_hash="0" * 64,
        agreement_valid_from=today - dt.timedelta(days=1),
        agreement_valid_until=today + dt.timedelta(days=365),
        compute_country="DE",
    )
    user = User.objects.create(username="bench-dpo")
    user.groups.add(Group.objects.get(name=roles.DPO))
    client = APIClient()
    client.force_authenticate(user)

    def fresh_dataset(name: str) -> Dataset:
        dataset = Dataset.objects.create(
            site=site,
            name=name,
            lawful_basis="6(1)(a)",
            retention_until=today + dt.timedelta(days=365),
            processing_countries=["EEA"],
            data_categories=["text"],
        )
        dataset.purposes.add(purpose)
        return dataset

    def api_upload(kind: str, i: int) -> float:
        dataset = fresh_dataset(f"{kind}-{i}")
        rows = make_rows(rows_n, f"{kind}{i}")
        url = f"/api/v1/datasets/{dataset.pk}/consent-events"
        start = time.perf_counter()
        if kind == "json":
            response = client.post(url, rows, format="json")
        else:
            response = client.generic("POST", url, as_csv(rows), content_type="text/csv")
        elapsed = time.perf_counter() - start
        assert response.status_code == 201, response.content[:500]
        return elapsed

    def naive(i: int) -> float:
        dataset = fresh_dataset(f"naive-{i}")
        rows = make_rows(rows_n, f"naive{i}")
        start = time.perf_counter()
        with transaction.atomic():
            for r in rows:
                at = dt.datetime.fromisoformat(r["occurred_at"])
                expires = dt.datetime.fromisoformat(r["expires_at"]) if r["expires_at"] else None
                Consent.objects.create(
                    dataset=dataset,
                    purpose=purpose,
                    subject_pseudonym=r["subject_pseudonym"],
                    granted_at=at,
                    expires_at=expires,
                )
                ConsentEvent.objects.create(
                    dataset=dataset,
                    purpose=purpose,
                    subject_pseudonym=r["subject_pseudonym"],
                    kind="grant",
                    occurred_at=at,
                    expires_at=expires,
                    batch_id="naive",
                    recorded_by_name="bench",
                )
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"json": [], "csv": [], "naive": []}
    # Interleaved so that a slow moment on a shared machine hits all three alike.
    for i in range(repeats):
        times["naive"].append(naive(i))
        times["json"].append(api_upload("json", i))
        times["csv"].append(api_upload("csv", i))
    return {k: statistics.median(v) for k, v in times.items()}


if __name__ == "__main__":
    main()
