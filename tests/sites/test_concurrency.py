"""Concurrent writers on PostgreSQL: uploads serialise per dataset, name races are 400s."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites import services
from sites.models import Consent, ConsentEvent, Site
from tests.factories import DatasetFactory, PurposeFactory, sha

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def run_together(*calls):
    """Start every call at once in its own thread (own connection); return outcomes."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def worker(i, call):
        try:
            barrier.wait()
            outcomes[i] = call()
        except Exception as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_uploads_for_the_same_subjects_apply_one_after_the_other():
    dataset = DatasetFactory(purposes=[PurposeFactory(code="topics")])
    rows = [
        {
            "subject_pseudonym": f"s{i:04d}",
            "purpose": "topics",
            "kind": "grant",
            "occurred_at": T0.isoformat(),
        }
        for i in range(300)
    ]

    def upload():
        return services.consent_record_batch(
            actor=Actor.system("site"), dataset=dataset, events=rows
        )

    first, second = run_together(upload, upload)

    assert isinstance(first, services.ConsentBatchResult), first
    assert isinstance(second, services.ConsentBatchResult), second
    assert sorted([first.consents_created, second.consents_created]) == [0, 300]
    assert Consent.objects.filter(dataset=dataset).count() == 300
    assert ConsentEvent.objects.filter(dataset=dataset).count() == 600


def test_two_registrations_of_one_slug_give_one_site_and_one_clear_refusal():
    today = dt.date.today()

    def register():
        return services.site_register(
            actor=Actor.system("dpo"),
            slug="race",
            organisation="Race Org",
            country="DE",
            contact_email="dpo@race.example",
            agreement_type="processor",
            agreement_document_hash=sha("race"),
            agreement_valid_from=today,
            agreement_valid_until=today + dt.timedelta(days=10),
            compute_country="DE",
        )

    outcomes = run_together(register, register)

    assert Site.objects.filter(slug="race").count() == 1
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 1
    assert isinstance(refused[0], InvalidInput), refused[0]
    assert "slug" in refused[0].errors
