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
from fedgov.errors import TransitionNotAllowed
from fedgov_flower.ticket import exclusion_digest
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
from training.gate.builder import allow_list_digest
from training.models import SiteEligibility
from training.services.flower import round_allowed
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


def _allowed(state) -> list[str]:
    return state.allowed_text.split("\n") if state.allowed_text else []


def test_allowed_set_at_the_instant_follows_each_boundary(consents):
    ds, purpose = consents
    state = selectors.consent_states(dataset_ids=[ds.pk], purpose_id=purpose.pk, at=AT)[ds.pk]
    expected = sorted(subject for subject, *_, ok in CASES if ok)
    assert _allowed(state) == expected
    assert state.eligible == len(expected)
    assert "other-purpose-only" not in _allowed(state)
    assert "no-record-at-all" not in _allowed(state)


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
    assert (subject in _allowed(states.get(ds.pk, selectors.ConsentState()))) is ok


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
    assert all(len(_allowed(states[d.pk])) == 20 for d in datasets)


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
    assert (elig.allowed_count, elig.allowed_digest) == (1, exclusion_digest(["s1"]))
    # The list itself is built when the site fetches it, from the gate's instant.
    fetched = round_allowed(round=decision.round, site=elig.site)
    assert (fetched.pseudonyms, fetched.digest) == (["s1"], elig.allowed_digest)
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
    assert (elig.allowed_count, elig.allowed_digest) == (0, "")


# Pseudonyms whose code-point order differs from a locale's: case, digits, and the
# punctuation PSEUDONYM allows. Python sorts by code point; the SQL must too.
AWKWARD = ["a-1", "A-1", "a.1", "a_1", "a:1", "a+1", "a/1", "a=1", "Z9", "z9", "0", "_", "-"]


def test_the_sql_list_is_in_pythons_order_so_the_digests_agree():
    purpose = PurposeFactory()
    ds = DatasetFactory(purposes=[purpose])
    for subject in AWKWARD:
        ConsentFactory(dataset=ds, purpose=purpose, subject_pseudonym=subject, granted_at=AT - DAY)
    state = selectors.consent_states(dataset_ids=[ds.pk], purpose_id=purpose.pk, at=AT)[ds.pk]
    assert _allowed(state) == sorted(AWKWARD)
    assert allow_list_digest([state.allowed_text]) == (exclusion_digest(AWKWARD), len(AWKWARD))


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [""],
        ["a\nb", "c\nd"],  # disjoint ranges: hashed as text
        ["c\nd", "a\nb"],  # disjoint, given out of order
        ["a\nc", "b\nd"],  # interleaved
        ["a\nb", "b\nc"],  # one subject in two datasets of the site: counted once
        ["a", "a"],
        ["a\nz", "m"],  # one range inside the other
        ["a", "", "b"],
    ],
)
def test_a_sites_digest_is_the_digest_of_the_sorted_union_of_its_lists(parts):
    union = sorted({name for part in parts if part for name in part.split("\n")})
    assert allow_list_digest(parts) == (exclusion_digest(union), len(union))


def test_a_withdrawal_recorded_late_for_the_gates_instant_makes_the_fetch_refuse():
    """Art. 7(3): a withdrawal that took effect before the gate, recorded after it, means
    the signed digest no longer describes who may be used; the list is not handed out."""
    run = _run_at(AT, ("s1", AT - DAY, None, None), ("s2", AT - DAY, None, None))
    with mock.patch("fedgov.clock.now", return_value=AT):
        decision = round_gate(actor=ACTOR, run=run, round_no=1)
    assert decision.outcome == "allowed", decision.reason
    elig = SiteEligibility.objects.get(decision=decision)
    assert elig.allowed_count == 2
    from sites.models import Consent

    Consent.objects.filter(subject_pseudonym="s2").update(withdrawn_at=AT - TICK)
    with pytest.raises(TransitionNotAllowed, match="no longer matches"):
        round_allowed(round=decision.round, site=elig.site)
