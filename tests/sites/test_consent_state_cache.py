"""The gate's consent-state cache always equals the state recomputed from the consent rows.

Consent is valid at the round's instant only when granted at or before it, and neither
expired nor withdrawn by then: expiry and withdrawal are exclusive ends (Art. 6(1)(a),
7(3)). A cached state therefore holds only between two such instants, and only until the
next write to the consent table, whoever makes it. Every check below compares
``consent_states_current`` (cache) with ``consent_states`` (one pass over the rows).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sites import selectors
from sites.models import Consent, ConsentStateCache
from sites.services.consent import consent_states_current
from tests.factories import DatasetFactory, PurposeFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
MICRO = dt.timedelta(microseconds=1)
SUBJECTS = [f"s{i}" for i in range(5)]


def at(k: int, nudge: int = 0) -> dt.datetime:
    return T0 + k * MINUTE + nudge * MICRO


def assert_same(dataset_ids: list[int], purpose_id: int, when: dt.datetime) -> None:
    cached = consent_states_current(dataset_ids=dataset_ids, purpose_id=purpose_id, at=when)
    fresh = selectors.consent_states(dataset_ids=dataset_ids, purpose_id=purpose_id, at=when)
    assert cached == fresh, when


# A consent row as (grant minute, expiry minute or None, withdrawal minute or None).
rows = st.tuples(
    st.integers(0, 8), st.none() | st.integers(1, 9), st.none() | st.integers(0, 9)
).filter(lambda r: r[1] is None or r[1] > r[0])
# Instants on the minute (every boundary lies there) and a microsecond either side.
instants = st.tuples(st.integers(-1, 10), st.sampled_from([-1, 0, 1]))


def _write(kind: str, dataset_id: int, purpose_id: int, subject: str, row: tuple) -> None:
    """One consent write by a route that bypasses the services."""
    granted, expires, withdrawn = (
        at(row[0]),
        at(row[1]) if row[1] is not None else None,
        at(row[2]) if row[2] is not None else None,
    )
    existing = Consent.objects.filter(
        dataset_id=dataset_id, purpose_id=purpose_id, subject_pseudonym=subject
    )
    # Raw SQL writes what Django would store (SQLite keeps datetimes as text).
    stored = [connection.ops.adapt_datetimefield_value(v) for v in (granted, expires, withdrawn)]
    if kind == "delete":
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM sites_consent WHERE dataset_id = %s AND subject_pseudonym = %s",
                [dataset_id, subject],
            )
        return
    if existing.exists():
        if kind == "raw":
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE sites_consent SET granted_at = %s, expires_at = %s, "
                    "withdrawn_at = %s WHERE dataset_id = %s AND subject_pseudonym = %s",
                    [*stored, dataset_id, subject],
                )
        else:
            existing.update(granted_at=granted, expires_at=expires, withdrawn_at=withdrawn)
        return
    if kind == "raw":
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO sites_consent (dataset_id, purpose_id, subject_pseudonym, "
                "granted_at, expires_at, withdrawn_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [dataset_id, purpose_id, subject, *stored, stored[0]],
            )
    else:
        Consent.objects.bulk_create(
            [
                Consent(
                    dataset_id=dataset_id,
                    purpose_id=purpose_id,
                    subject_pseudonym=subject,
                    granted_at=granted,
                    expires_at=expires,
                    withdrawn_at=withdrawn,
                )
            ]
        )


steps = st.lists(
    st.one_of(
        st.tuples(st.just("gate"), instants),
        st.tuples(
            st.sampled_from(["bulk", "raw", "delete"]),
            st.integers(0, 1),
            st.sampled_from(SUBJECTS),
            rows,
        ),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(st.tuples(st.sampled_from(SUBJECTS), rows), max_size=6), ops=steps)
def test_cache_equals_recomputation_over_random_histories_and_instants(history, ops):
    purpose = PurposeFactory()
    datasets = [DatasetFactory(purposes=[purpose]).pk for _ in range(2)]
    empty = DatasetFactory(purposes=[purpose]).pk  # no consent row at all
    ids = [*datasets, empty]
    for subject, row in history:
        _write("bulk", datasets[0], purpose.pk, subject, row)
    for op in ops:
        if op[0] == "gate":
            (minute, nudge) = op[1]
            assert_same(ids, purpose.pk, at(minute, nudge))
            # Asked again at the same instant with no write between: served from the
            # cache in one query (so the comparison above did exercise it).
            with CaptureQueriesContext(connection) as captured:
                assert_cached = consent_states_current(
                    dataset_ids=ids, purpose_id=purpose.pk, at=at(minute, nudge)
                )
            assert len(captured.captured_queries) == 1
            fresh = selectors.consent_states(
                dataset_ids=ids, purpose_id=purpose.pk, at=at(minute, nudge)
            )
            assert assert_cached == fresh
        else:
            kind, which, subject, row = op
            _write(kind, datasets[which], purpose.pk, subject, row)
    for minute in range(-1, 11):
        for nudge in (-1, 0, 1):
            assert_same(ids, purpose.pk, at(minute, nudge))


def _cached_row(dataset_id: int, purpose_id: int) -> ConsentStateCache:
    return ConsentStateCache.objects.get(dataset_id=dataset_id, purpose_id=purpose_id)


def _fill(subjects: int = 3):
    purpose = PurposeFactory()
    ds = DatasetFactory(purposes=[purpose])
    Consent.objects.bulk_create(
        Consent(dataset=ds, purpose=purpose, subject_pseudonym=f"p{i}", granted_at=at(0))
        for i in range(subjects)
    )
    return ds.pk, purpose.pk


def test_a_state_holds_between_boundaries_and_is_recomputed_past_them():
    ds, purpose = _fill()
    Consent.objects.filter(subject_pseudonym="p0").update(expires_at=at(5))
    Consent.objects.filter(subject_pseudonym="p1").update(withdrawn_at=at(7))
    assert_same([ds], purpose, at(3))
    row = _cached_row(ds, purpose)
    assert (row.valid_from_us, row.valid_until_us) == (
        at(0).timestamp() * 1_000_000,
        at(5).timestamp() * 1_000_000,
    )
    # Expiry is an exclusive end: at 5 exactly p0 is out; one microsecond before, in.
    before = consent_states_current(dataset_ids=[ds], purpose_id=purpose, at=at(5, -1))
    on = consent_states_current(dataset_ids=[ds], purpose_id=purpose, at=at(5))
    assert before[ds].allowed_text == "p0\np1\np2"
    assert on[ds].allowed_text == "p1\np2" and on[ds].excluded == ("p0",)
    assert_same([ds], purpose, at(7))
    assert consent_states_current(dataset_ids=[ds], purpose_id=purpose, at=at(7))[
        ds
    ].allowed_text == ("p2")


@pytest.mark.parametrize(
    "write",
    [
        "INSERT INTO sites_consent (dataset_id, purpose_id, subject_pseudonym, granted_at, "
        "updated_at) VALUES (%(ds)s, %(purpose)s, 'intruder', %(t)s, %(t)s)",
        "UPDATE sites_consent SET withdrawn_at = %(t)s WHERE subject_pseudonym = 'p1'",
        "UPDATE sites_consent SET granted_at = %(later)s WHERE subject_pseudonym = 'p2'",
        "DELETE FROM sites_consent WHERE subject_pseudonym = 'p0'",
        "DELETE FROM sites_consent",
    ],
)
def test_a_raw_sql_write_is_never_served_from_a_stale_cache(write):
    ds, purpose = _fill()
    when = at(4)
    assert_same([ds], purpose, when)
    assert _cached_row(ds, purpose).computed_generation == _cached_row(ds, purpose).generation
    with connection.cursor() as cursor:
        adapt = connection.ops.adapt_datetimefield_value
        cursor.execute(
            write, {"ds": ds, "purpose": purpose, "t": adapt(at(1)), "later": adapt(at(9))}
        )
    row = _cached_row(ds, purpose)
    # Invalidated in the writer's own statement, and the pseudonyms gone from the cache.
    assert row.computed_generation != row.generation
    assert row.allowed_text == "" and row.lapsed_json == "[]"
    assert_same([ds], purpose, when)


def test_a_bulk_insert_into_a_dataset_never_cached_before_is_seen():
    purpose = PurposeFactory()
    ds = DatasetFactory(purposes=[purpose]).pk
    assert consent_states_current(dataset_ids=[ds], purpose_id=purpose.pk, at=at(4)) == {}
    Consent.objects.bulk_create(
        Consent(dataset_id=ds, purpose=purpose, subject_pseudonym=f"b{i}", granted_at=at(0))
        for i in range(50)
    )
    assert_same([ds], purpose.pk, at(4))
    assert consent_states_current(dataset_ids=[ds], purpose_id=purpose.pk, at=at(4))[
        ds
    ].eligible == (50)


def test_a_write_between_the_gates_read_and_its_store_leaves_the_row_stale():
    """The gate reads generations, then the rows, then stores: a consent write landing
    after the generation read must not be hidden by the store that follows it."""
    from sites.services import consent as service

    ds, purpose = _fill()
    original = selectors.consent_states

    def recompute_then_write(**kwargs):
        states = original(**kwargs)  # computed before the write below
        Consent.objects.filter(subject_pseudonym="p0").update(withdrawn_at=at(1))
        return states

    service.site_selectors.consent_states = recompute_then_write
    try:
        consent_states_current(dataset_ids=[ds], purpose_id=purpose, at=at(4))
    finally:
        service.site_selectors.consent_states = original
    row = _cached_row(ds, purpose)
    assert row.computed_generation != row.generation
    assert_same([ds], purpose, at(4))
    assert "p0" not in consent_states_current(dataset_ids=[ds], purpose_id=purpose, at=at(4))[
        ds
    ].allowed_text.split("\n")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # TRUNCATE refuses pending FK checks of the fill
def test_truncate_on_postgresql_invalidates_the_cache():
    ds, purpose = _fill()
    assert_same([ds], purpose, at(4))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sites_consent, sites_consentevent")
    row = _cached_row(ds, purpose)
    assert row.computed_generation != row.generation and row.allowed_text == ""
    assert consent_states_current(dataset_ids=[ds], purpose_id=purpose, at=at(4)) == {}
