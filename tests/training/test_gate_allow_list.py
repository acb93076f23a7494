"""Consent is an allow-list (Art. 6(1)(a), 7): only subjects whose consent is valid at the
round's instant may be used, read from SQL in one pass over the consent rows.

Boundaries: consent granted exactly at the instant is valid; expiry and withdrawal are
exclusive ends, so consent expiring or withdrawn exactly at the instant is not. A
subject with no consent row, or consent only for another purpose, is never allowed.
"""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fedgov.actors import Actor
from sites import selectors
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    PurposeFactory,
    RunFactory,
    SiteFactory,
)
from training.flower.ticket import exclusion_digest
from training.models import SiteEligibility
from training.services.gate import round_gate

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
AT = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
TICK = dt.timedelta(microseconds=1)
DAY = dt.timedelta(days=1)

# (subject, granted_at, expires_at, withdrawn_at, allowed at AT?) — Art. 6(1)(a), 7(1), 7(3)
CASES = [
    ("granted-a-day-before", AT - DAY, None, None, True),
    ("granted-at-the-instant", AT, None, None, True),
    ("granted-a-tick-after", AT + TICK, None, None, False),  # not yet valid
    ("expires-at-the-instant", AT - DAY, AT, None, False),  # expiry is exclusive
    ("expires-a-tick-after", AT - DAY, AT + TICK, None, True),
    ("withdrawn-at-the-instant", AT - DAY, None, AT, False),  # Art. 7(3)
    ("withdrawn-a-tick-before", AT - DAY, None, AT - TICK, False),
    ("withdrawn-a-tick-after", AT - DAY, None, AT + TICK, True),  # not yet withdrawn
    ("expired-and-withdrawn", AT - DAY, AT - TICK, AT - TICK, False),
]


@pytest.fixture
def consents():
    purpose = PurposeFactory()
    other = PurposeFactory(code="marketing", name="Marketing")
    ds = DatasetFactory(purposes=[purpose, other])
    for subject, granted, expires, withdrawn, _ in CASES:
        ConsentFactory(
            dataset=ds,
            purpose=purpose,
            subject_pseudonym=subject,
            granted_at=granted,
            expires_at=expires,
            withdrawn_at=withdrawn,
        )
    # Consent for another purpose never allows this one (Art. 6(1)(a): "specific purposes").
    ConsentFactory(
        dataset=ds, purpose=other, subject_pseudonym="other-purpose-only", granted_at=AT - DAY
    )
    return ds, purpose


def test_allowed_set_at_the_instant_follows_each_boundary(consents):
    ds, purpose = consents
    state = selectors.consent_states(dataset_ids=[ds.pk], purpose_id=purpose.pk, at=AT)[ds.pk]
    expected = sorted(subject for subject, *_, ok in CASES if ok)
    assert list(state.allowed) == expected
    assert state.eligible == len(expected)
    assert "other-purpose-only" not in state.allowed
    assert "no-record-at-all" not in state.allowed


@pytest.mark.parametrize(
    ("subject", "granted", "expires", "withdrawn", "ok"), CASES, ids=[c[0] for c in CASES]
)
def test_each_case_alone(subject, granted, expires, withdrawn, ok):
    purpose = PurposeFactory()
    ds = DatasetFactory(purposes=[purpose])
    ConsentFactory(
        dataset=ds,
        purpose=purpose,
        subject_pseudonym=subject,
        granted_at=granted,
        expires_at=expires,
        withdrawn_at=withdrawn,
    )
    states = selectors.consent_states(dataset_ids=[ds.pk], purpose_id=purpose.pk, at=AT)
    assert (subject in states[ds.pk].allowed) is ok


def test_the_consent_rows_are_read_in_one_query_whatever_the_number_of_datasets():
    purpose = PurposeFactory()
    datasets = [DatasetFactory(purposes=[purpose]) for _ in range(5)]
    for ds in datasets:
        for k in range(20):
            ConsentFactory(
                dataset=ds, purpose=purpose, subject_pseudonym=f"{ds.pk}-{k}", granted_at=AT - DAY
            )
    with CaptureQueriesContext(connection) as queries:
        states = selectors.consent_states(
            dataset_ids=[d.pk for d in datasets], purpose_id=purpose.pk, at=AT
        )
    consent_reads = [q for q in queries.captured_queries if "sites_consent" in q["sql"]]
    assert len(consent_reads) == 1
    assert all(len(states[d.pk].allowed) == 20 for d in datasets)


def _run_at(at, *subjects):
    purpose = PurposeFactory()
    run = RunFactory(purpose=purpose, policy=PolicyFactory())
    DpiaFactory(run=run, valid_until=at.date() + dt.timedelta(days=30))
    site = SiteFactory(
        slug="de-legal",
        agreement_valid_from=at.date() - dt.timedelta(days=30),
        agreement_valid_until=at.date() + dt.timedelta(days=30),
    )
    ds = DatasetFactory(site=site, purposes=[purpose], retention_until=at.date() + DAY)
    run.datasets.add(ds)
    for subject, granted, expires, withdrawn in subjects:
        ConsentFactory(
            dataset=ds,
            purpose=purpose,
            subject_pseudonym=subject,
            granted_at=granted,
            expires_at=expires,
            withdrawn_at=withdrawn,
        )
    return run


def test_gate_stores_the_allow_list_and_its_digest_for_an_eligible_site():
    run = _run_at(
        AT,
        ("s1", AT - DAY, None, None),
        ("s2", AT + TICK, None, None),  # granted after the round's instant
        ("s3", AT - DAY, AT, None),  # expires at the instant
    )
    with mock.patch("fedgov.clock.now", return_value=AT):
        decision = round_gate(actor=ACTOR, run=run, round_no=1)
    assert decision.outcome == "allowed", decision.reason
    elig = SiteEligibility.objects.get(decision=decision)
    assert elig.allowed_pseudonyms == ["s1"]
    assert elig.allowed_digest == exclusion_digest(["s1"])
    site = json.loads(decision.snapshot)["sites"][0]
    assert (site["allowed_count"], site["allowed_digest"]) == (1, exclusion_digest(["s1"]))
    # The snapshot carries the digest, never the pseudonyms.
    assert '"s1"' not in decision.snapshot


def test_a_refused_site_gets_no_allow_list():
    run = _run_at(AT, ("s1", AT + TICK, None, None))  # nobody valid yet
    with mock.patch("fedgov.clock.now", return_value=AT):
        decision = round_gate(actor=ACTOR, run=run, round_no=1)
    assert decision.outcome == "blocked"
    elig = SiteEligibility.objects.get(decision=decision)
    assert (elig.allowed_pseudonyms, elig.allowed_digest) == ([], "")
