"""Consent written through the services leaves the gate's cache current for "now".

``consent_record_batch`` recomputes the touched datasets' cached state at its own instant,
inside its transaction, so the first gate after a consent change reads the cache. What
it stores must still equal a fresh recomputation at every instant a round may be
evaluated: before the refresh instant, at it, after it, and across the grant, expiry and
withdrawal instants that bound it (consent valid only when granted at or before the
instant, not expired and not withdrawn by then: Art. 6(1)(a), 7(3)). A write to one
dataset must leave every other dataset's cached state current.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites import selectors
from sites.models import Consent, ConsentStateCache, Dataset
from sites.services import consent_record_batch
from sites.services.consent import consent_states_current
from tests.factories import DatasetFactory, PurposeFactory

pytestmark = pytest.mark.django_db

SITE = Actor.system("site-upload")
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
MICRO = dt.timedelta(microseconds=1)
SUBJECTS = ["s0", "s1", "s2", "s3"]


def at(k: int, nudge: int = 0) -> dt.datetime:
    return T0 + k * MINUTE + nudge * MICRO


def upload(monkeypatch, dataset_id: int, when: dt.datetime, events: list[dict]) -> bool:
    """One batch recorded with the clock at ``when``; False when the service refused it."""
    monkeypatch.setattr(clock, "now", lambda: when)
    try:
        consent_record_batch(actor=SITE, dataset=Dataset(pk=dataset_id), events=events)
    except InvalidInput:
        return False
    finally:
        monkeypatch.undo()
    return True


def event(subject: str, kind: str, minute: int, expires: int | None = None) -> dict:
    row = {
        "subject_pseudonym": subject,
        "purpose": "topics",
        "kind": kind,
        "occurred_at": at(minute).isoformat(),
    }
    if expires is not None:
        row["expires_at"] = at(expires).isoformat()
    return row


def served_from_cache(dataset_ids: list[int], purpose_id: int, when: dt.datetime) -> dict:
    """The cached states at ``when``, asserting no dataset had to be recomputed."""
    with CaptureQueriesContext(connection) as captured:
        states = consent_states_current(dataset_ids=dataset_ids, purpose_id=purpose_id, at=when)
    assert len(captured.captured_queries) == 1, [q["sql"][:80] for q in captured.captured_queries]
    return states


def assert_same(dataset_ids: list[int], purpose_id: int, when: dt.datetime) -> None:
    cached = consent_states_current(dataset_ids=dataset_ids, purpose_id=purpose_id, at=when)
    fresh = selectors.consent_states(dataset_ids=dataset_ids, purpose_id=purpose_id, at=when)
    assert cached == fresh, when


# An upload: the clock's minute, then events (subject, kind, minute offset from the
# clock, expiry offset from the event). Offsets up to +4 minutes stay inside the
# service's clock skew (5 minutes), so some events take effect after the refresh.
events = st.lists(
    st.tuples(
        st.sampled_from(SUBJECTS),
        st.sampled_from(["grant", "withdraw"]),
        st.integers(-3, 4),
        st.none() | st.integers(1, 4),
    ),
    min_size=1,
    max_size=4,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("upload"), st.integers(0, 1), st.integers(0, 10), events),
        st.tuples(st.just("gate"), st.integers(-4, 16), st.sampled_from([-1, 0, 1])),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=steps)
def test_state_refreshed_by_the_service_equals_recomputation_at_any_round_instant(monkeypatch, ops):
    purpose = PurposeFactory(code="topics")
    datasets = [DatasetFactory(purposes=[purpose]).pk for _ in range(2)]
    clock_minute = 0
    refreshed = False
    for op in ops:
        if op[0] == "upload":
            _, which, minute, rows = op
            # The clock only moves forward, as the service's ordering checks assume.
            clock_minute = max(clock_minute, minute)
            when = at(clock_minute)
            batch = [
                event(
                    s, kind, clock_minute + off, None if exp is None else clock_minute + off + exp
                )
                for s, kind, off, exp in rows
                if not (kind == "withdraw" and exp is not None)
            ]
            if not batch or not upload(monkeypatch, datasets[which], when, batch):
                continue
            refreshed = True
            # Right after the write, a round at the upload's instant reads the cache
            # only, and what it reads is what the rows say.
            cached = served_from_cache([datasets[which]], purpose.pk, when)
            fresh = selectors.consent_states(
                dataset_ids=[datasets[which]], purpose_id=purpose.pk, at=when
            )
            assert cached == fresh
            row = ConsentStateCache.objects.get(dataset_id=datasets[which], purpose_id=purpose.pk)
            assert row.computed_generation == row.generation
        else:
            _, minute, nudge = op
            # Rounds before, at and after the refresh instant, on and beside boundaries.
            assert_same(datasets, purpose.pk, at(minute, nudge))
    if refreshed:
        for minute in range(-4, 17):
            for nudge in (-1, 0, 1):
                assert_same(datasets, purpose.pk, at(minute, nudge))


def _grants(monkeypatch, dataset_id: int, n: int = 3) -> None:
    assert upload(monkeypatch, dataset_id, at(0), [event(f"p{i}", "grant", 0) for i in range(n)])


def test_first_gate_after_a_withdrawal_through_the_service_reads_only_the_cache(monkeypatch):
    purpose = PurposeFactory(code="topics")
    ds = DatasetFactory(purposes=[purpose]).pk
    _grants(monkeypatch, ds)
    assert upload(monkeypatch, ds, at(5), [event("p1", "withdraw", 5)])
    # The round an hour later: the withdrawal holds, nothing else changed.
    state = served_from_cache([ds], purpose.pk, at(60))[ds]
    assert state.allowed_text == "p0\np2" and state.excluded == ("p1",)
    assert state == selectors.consent_states(dataset_ids=[ds], purpose_id=purpose.pk, at=at(60))[ds]


def test_a_round_before_the_refresh_instant_is_recomputed_not_served(monkeypatch):
    purpose = PurposeFactory(code="topics")
    ds = DatasetFactory(purposes=[purpose]).pk
    _grants(monkeypatch, ds)
    assert upload(monkeypatch, ds, at(5), [event("p1", "withdraw", 5)])
    # At minute 4 p1 had not withdrawn yet: the refreshed state (from minute 5) must not
    # be used for it.
    early = consent_states_current(dataset_ids=[ds], purpose_id=purpose.pk, at=at(4))[ds]
    assert early.allowed_text == "p0\np1\np2"


def test_a_grant_dated_after_the_refresh_is_not_served_once_it_takes_effect(monkeypatch):
    purpose = PurposeFactory(code="topics")
    ds = DatasetFactory(purposes=[purpose]).pk
    _grants(monkeypatch, ds)
    # Recorded at minute 5, effective at minute 8 (within the clock skew).
    assert upload(monkeypatch, ds, at(5), [event("late", "grant", 8)])
    assert served_from_cache([ds], purpose.pk, at(7))[ds].allowed_text == "p0\np1\np2"
    on = consent_states_current(dataset_ids=[ds], purpose_id=purpose.pk, at=at(8))[ds]
    assert on.allowed_text == "late\np0\np1\np2"


def _row(dataset_id: int, purpose_id: int) -> tuple[int, int]:
    row = ConsentStateCache.objects.get(dataset_id=dataset_id, purpose_id=purpose_id)
    return row.generation, row.computed_generation


@pytest.mark.parametrize("route", ["service", "orm", "raw"])
def test_a_consent_write_to_one_dataset_leaves_the_others_current(monkeypatch, route):
    purpose = PurposeFactory(code="topics")
    touched, other = (DatasetFactory(purposes=[purpose]).pk for _ in range(2))
    _grants(monkeypatch, touched)
    _grants(monkeypatch, other)
    consent_states_current(dataset_ids=[touched, other], purpose_id=purpose.pk, at=at(9))
    before = _row(other, purpose.pk)
    assert before[0] == before[1]
    if route == "service":
        assert upload(monkeypatch, touched, at(6), [event("p0", "withdraw", 6)])
    elif route == "orm":
        Consent.objects.filter(dataset_id=touched, subject_pseudonym="p0").update(
            withdrawn_at=at(6)
        )
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE sites_consent SET withdrawn_at = %s WHERE dataset_id = %s "
                "AND subject_pseudonym = 'p0'",
                [connection.ops.adapt_datetimefield_value(at(6)), touched],
            )
    assert _row(other, purpose.pk) == before
    generation, computed = _row(touched, purpose.pk)
    # Only the service refreshes; the other routes leave the touched dataset stale.
    assert (generation == computed) is (route == "service")
    with CaptureQueriesContext(connection) as captured:
        states = consent_states_current(
            dataset_ids=[touched, other], purpose_id=purpose.pk, at=at(9)
        )
    # Recomputed, if at all, for the touched dataset alone.
    recomputed = [q["sql"] for q in captured.captured_queries if "GROUP BY" in q["sql"]]
    assert all(
        str(other) not in sql.split("IN (")[1].split(")")[0].split(", ") for sql in recomputed
    )
    assert states[touched].excluded == ("p0",)
    assert_same([touched, other], purpose.pk, at(9))


def test_a_stale_store_never_replaces_a_refreshed_state(monkeypatch):
    """A gate that read the generations before a service's refresh committed stores its
    older state afterwards: the refreshed, current row must stay."""
    from sites.services import consent as service

    purpose = PurposeFactory(code="topics")
    ds = DatasetFactory(purposes=[purpose]).pk
    _grants(monkeypatch, ds)
    consent_states_current(dataset_ids=[ds], purpose_id=purpose.pk, at=at(9))
    original = service.site_selectors.consent_states

    def withdraw_in_between(**kwargs):
        states = original(**kwargs)  # the gate's recomputation, before the upload
        service.site_selectors.consent_states = original
        assert upload(monkeypatch, ds, at(6), [event("p0", "withdraw", 6)])
        return states

    Consent.objects.filter(dataset_id=ds, subject_pseudonym="p2").update(updated_at=at(1))
    service.site_selectors.consent_states = withdraw_in_between
    try:
        consent_states_current(dataset_ids=[ds], purpose_id=purpose.pk, at=at(9))
    finally:
        service.site_selectors.consent_states = original
    generation, computed = _row(ds, purpose.pk)
    assert generation == computed
    assert served_from_cache([ds], purpose.pk, at(9))[ds].excluded == ("p0",)
    assert_same([ds], purpose.pk, at(9))
