"""consent_record_batch: all-or-nothing uploads, withdrawal as an event, row-named errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import LedgerEntry
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites import services
from sites.choices import SiteStatus
from sites.models import Consent, ConsentEvent
from tests.factories import DatasetFactory, PurposeFactory

pytestmark = pytest.mark.django_db

SITE = Actor.system("site-upload")
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def dataset():
    return DatasetFactory(purposes=[PurposeFactory(code="topics")])


def grant(subject, at=T0, expires=None, purpose="topics"):
    row = {
        "subject_pseudonym": subject,
        "purpose": purpose,
        "kind": "grant",
        "occurred_at": at.isoformat(),
    }
    if expires is not None:
        row["expires_at"] = expires.isoformat()
    return row


def withdraw(subject, at, purpose="topics"):
    return {
        "subject_pseudonym": subject,
        "purpose": purpose,
        "kind": "withdraw",
        "occurred_at": at.isoformat(),
    }


def test_batch_grants_create_consents_events_and_one_ledger_event(dataset):
    rows = [grant(f"s{i:04d}") for i in range(3)]
    result = services.consent_record_batch(actor=SITE, dataset=dataset, events=rows)

    assert (result.events, result.granted, result.consents_created) == (3, 3, 3)
    assert Consent.objects.filter(dataset=dataset, withdrawn_at__isnull=True).count() == 3
    assert ConsentEvent.objects.filter(batch_id=result.batch_id).count() == 3
    entry = LedgerEntry.objects.get(event_type="consent.batch_recorded")
    payload = json.loads(entry.payload)
    assert payload["batch_id"] == result.batch_id
    assert (payload["events"], payload["granted"], payload["withdrawn"]) == (3, 3, 0)
    assert "s0001" not in entry.payload  # counts and a digest, never the pseudonyms
    canonical = [
        {
            "subject_pseudonym": r["subject_pseudonym"],
            "purpose": "topics",
            "kind": "grant",
            "occurred_at": T0.isoformat(),
            "expires_at": None,
        }
        for r in rows
    ]
    assert payload["batch_sha256"] == hashlib.sha256(rfc8785.dumps(canonical)).hexdigest()


def test_withdrawal_is_an_event_and_keeps_the_consent_row(dataset):
    services.consent_record_batch(actor=SITE, dataset=dataset, events=[grant("s1")])
    later = T0 + dt.timedelta(days=3)
    result = services.consent_record_batch(
        actor=SITE, dataset=dataset, events=[withdraw("s1", later)]
    )

    consent = Consent.objects.get(subject_pseudonym="s1")
    assert consent.withdrawn_at == later
    assert consent.granted_at == T0
    assert result.withdrawn == 1
    assert list(
        ConsentEvent.objects.filter(subject_pseudonym="s1").values_list("kind", flat=True)
    ) == ["grant", "withdraw"]


def test_grant_then_withdraw_in_one_batch_applies_in_time_order(dataset):
    # The withdrawal is listed first but happened later: order by occurred_at.
    rows = [withdraw("s1", T0 + dt.timedelta(hours=1)), grant("s1")]
    services.consent_record_batch(actor=SITE, dataset=dataset, events=rows)
    assert Consent.objects.get(subject_pseudonym="s1").withdrawn_at is not None


def test_regrant_after_withdrawal_clears_withdrawn_at(dataset):
    services.consent_record_batch(
        actor=SITE,
        dataset=dataset,
        events=[grant("s1"), withdraw("s1", T0 + dt.timedelta(days=1))],
    )
    services.consent_record_batch(
        actor=SITE, dataset=dataset, events=[grant("s1", T0 + dt.timedelta(days=2))]
    )
    consent = Consent.objects.get(subject_pseudonym="s1")
    assert consent.withdrawn_at is None
    assert consent.granted_at == T0 + dt.timedelta(days=2)


def test_withdrawing_a_consent_that_does_not_exist_refuses_the_whole_batch(dataset):
    rows = [grant("s1"), grant("s2"), withdraw("ghost", T0 + dt.timedelta(hours=1))]
    with pytest.raises(InvalidInput) as exc:
        services.consent_record_batch(actor=SITE, dataset=dataset, events=rows)

    assert exc.value.errors["events"] == {
        "2": {"subject_pseudonym": ["has no consent for purpose 'topics' to withdraw"]}
    }
    assert "(first: events[2], subject_pseudonym)" in exc.value.errors["non_field_errors"][0]
    assert not Consent.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_one_bad_row_among_many_names_that_row_and_writes_nothing(dataset):
    rows = [grant(f"s{i:05d}") for i in range(2000)]
    rows[1234]["expires_at"] = (T0 - dt.timedelta(days=1)).isoformat()
    with pytest.raises(InvalidInput) as exc:
        services.consent_record_batch(actor=SITE, dataset=dataset, events=rows)

    assert list(exc.value.errors["events"]) == ["1234"]
    assert "expires_at" in exc.value.errors["events"]["1234"]
    assert not Consent.objects.exists()


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"subject_pseudonym": "", "purpose": "topics", "kind": "grant"}, "subject_pseudonym"),
        ({"subject_pseudonym": "jane@example.org"}, "subject_pseudonym"),
        ({"subject_pseudonym": "s0001\n"}, "subject_pseudonym"),
        ({"purpose": "marketing"}, "purpose"),
        ({"kind": "revoke"}, "kind"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-01-05T09:00:00"}, "occurred_at"),  # no offset
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"expires_at": "2025-01-01T00:00:00Z"}, "expires_at"),  # before the grant
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_rows_are_named_by_index_and_field(dataset, row, field):
    bad = {**grant("s9"), **row}
    with pytest.raises(InvalidInput) as exc:
        services.consent_record_batch(actor=SITE, dataset=dataset, events=[grant("s1"), bad])
    assert field in exc.value.errors["events"]["1"]
    assert not Consent.objects.exists()


def test_duplicate_rows_and_double_withdrawal_are_refused(dataset):
    with pytest.raises(InvalidInput) as exc:
        services.consent_record_batch(actor=SITE, dataset=dataset, events=[grant("s1")] * 2)
    assert exc.value.errors["events"]["1"]["non_field_errors"] == ["repeats events[0]"]

    services.consent_record_batch(
        actor=SITE, dataset=dataset, events=[grant("s1"), withdraw("s1", T0 + dt.timedelta(1))]
    )
    with pytest.raises(InvalidInput) as exc:
        services.consent_record_batch(
            actor=SITE, dataset=dataset, events=[withdraw("s1", T0 + dt.timedelta(2))]
        )
    assert "already withdrawn" in exc.value.errors["events"]["0"]["kind"][0]


def test_an_event_older_than_the_last_recorded_change_is_refused(dataset):
    services.consent_record_batch(
        actor=SITE, dataset=dataset, events=[grant("s1", T0 + dt.timedelta(days=5))]
    )
    with pytest.raises(InvalidInput) as exc:
        services.consent_record_batch(actor=SITE, dataset=dataset, events=[withdraw("s1", T0)])
    assert "occurred_at" in exc.value.errors["events"]["0"]


def test_empty_or_non_list_batches_are_refused(dataset):
    for events in ([], None, "grant"):
        with pytest.raises(InvalidInput) as exc:
            services.consent_record_batch(actor=SITE, dataset=dataset, events=events)
        assert "events" in exc.value.errors


def test_withdrawal_stays_possible_at_a_suspended_site_but_grants_to_withdrawn_dataset_do_not(
    dataset,
):
    services.consent_record_batch(actor=SITE, dataset=dataset, events=[grant("s1")])
    dataset.site.status = SiteStatus.SUSPENDED
    dataset.site.save()
    services.consent_record_batch(
        actor=SITE, dataset=dataset, events=[withdraw("s1", T0 + dt.timedelta(days=1))]
    )
    assert Consent.objects.get(subject_pseudonym="s1").withdrawn_at is not None

    services.dataset_withdraw(actor=SITE, dataset=dataset, reason="leaves")
    with pytest.raises(InvalidInput) as exc:
        services.consent_record_batch(actor=SITE, dataset=dataset, events=[grant("s2")])
    assert "withdrawn" in exc.value.errors["events"]["0"]["kind"][0]


def test_expiry_is_stored_and_aware_datetimes_are_accepted(dataset):
    expires = clock.now() + dt.timedelta(days=90)
    row = {
        "subject_pseudonym": "s1",
        "purpose": "topics",
        "kind": "grant",
        "occurred_at": T0,
        "expires_at": expires,
    }
    services.consent_record_batch(actor=SITE, dataset=dataset, events=[row])
    assert Consent.objects.get(subject_pseudonym="s1").expires_at == expires


def test_a_large_batch_uses_a_bounded_number_of_queries(dataset, django_assert_max_num_queries):
    rows = [grant(f"s{i:05d}") for i in range(3000)]
    # Bulk writes: statements grow with the backend's batch size (SQLite binds at most
    # 999 parameters), never one or two per row (that would be 6,000 here).
    with django_assert_max_num_queries(100):
        services.consent_record_batch(actor=SITE, dataset=dataset, events=rows)
    assert Consent.objects.count() == 3000


# A subject's valid history: grant, then alternately withdraw and grant, hours apart.
histories = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=5)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lengths=histories,
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=4),
)
def test_splitting_a_history_into_batches_gives_the_same_state_as_one_batch(lengths, cuts):
    purpose = PurposeFactory(code="topics")
    rows = []
    for n, length in enumerate(lengths):
        for step in range(length):
            at = T0 + dt.timedelta(hours=step, minutes=n)
            rows.append(grant(f"p{n}", at) if step % 2 == 0 else withdraw(f"p{n}", at))
    rows.sort(key=lambda r: r["occurred_at"])

    def final_state(dataset):
        return {
            c.subject_pseudonym: (c.granted_at, c.withdrawn_at)
            for c in Consent.objects.filter(dataset=dataset)
        }

    whole = DatasetFactory(purposes=[purpose])
    services.consent_record_batch(actor=SITE, dataset=whole, events=rows)

    split = DatasetFactory(purposes=[purpose])
    bounds = sorted({0, len(rows), *(c % (len(rows) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        services.consent_record_batch(actor=SITE, dataset=split, events=rows[start:end])

    assert final_state(split) == final_state(whole)
    assert ConsentEvent.objects.filter(dataset=split).count() == len(rows)
    for n, length in enumerate(lengths):
        _, withdrawn_at = final_state(whole)[f"p{n}"]
        # Odd-length histories end on a grant; even-length ones on a withdrawal.
        assert (withdrawn_at is None) == (length % 2 == 1)


# ------------------------------------------- every subject withdrew: dataset withdrawn


def _consented(subjects, **dataset_fields):
    purpose = PurposeFactory(code="topics")
    ds = DatasetFactory(purposes=[purpose], **dataset_fields)
    services.consent_record_batch(actor=SITE, dataset=ds, events=[grant(s) for s in subjects])
    return ds


def _withdraw_all(ds, subjects, at=None):
    at = at or T0 + dt.timedelta(days=1)
    services.consent_record_batch(
        actor=SITE, dataset=ds, events=[withdraw(s, at) for s in subjects]
    )


def test_a_dataset_whose_every_subject_withdrew_is_refused_and_its_supernode_unregistered():
    """Art. 6(1)(a), 7(3): with no subject left, the dataset has no lawful basis; the effect
    is the DPO's withdrawal: refused by the gate, SuperNode unregistered, absent next round."""
    from fedgov.actors import Actor
    from tests.factories import DpiaFactory, PolicyFactory, RunFactory
    from training.services.flower import supernodes_reconcile
    from training.services.gate import round_gate

    ds = _consented(["a", "b"])
    ds.site.flower_node_id = "1234"
    ds.site.save()
    run = RunFactory(purpose=ds.purposes.get(), policy=PolicyFactory(), datasets=[ds])
    DpiaFactory(run=run)
    actor = Actor.system("t")
    assert round_gate(actor=actor, run=run, round_no=1).outcome == "allowed"
    assert supernodes_reconcile(actor=actor, run=run) == []

    _withdraw_all(ds, ["a"])
    assert round_gate(actor=actor, run=run, round_no=2).outcome == "allowed"  # b consents
    assert supernodes_reconcile(actor=actor, run=run) == []

    _withdraw_all(ds, ["b"], T0 + dt.timedelta(days=2))
    decision = round_gate(actor=actor, run=run, round_no=3)
    assert decision.outcome == "blocked"
    assert "lawful-basis" in decision.reason
    result = decision.results.get(rule_id="lawful-basis")
    assert "every subject withdrew consent (Art. 7(3))" in result.reason
    (site,) = supernodes_reconcile(actor=actor, run=run)
    assert site.flower_node_id == ""


def test_a_dataset_on_another_basis_is_not_withdrawn_by_consent_withdrawals():
    from sites.selectors import datasets_all_withdrawn

    ds = _consented(["a"], lawful_basis="6(1)(e)")
    _withdraw_all(ds, ["a"])
    assert datasets_all_withdrawn(dataset_ids=[ds.pk], at=clock.now()) == set()


def test_all_withdrawn_is_judged_at_the_instant_not_by_batch_boundaries():
    from sites.selectors import datasets_all_withdrawn

    ds = _consented(["a"])
    _withdraw_all(ds, ["a"], T0 + dt.timedelta(days=1))
    at = T0 + dt.timedelta(days=1)
    assert datasets_all_withdrawn(dataset_ids=[ds.pk], at=at) == {ds.pk}
    assert (
        datasets_all_withdrawn(dataset_ids=[ds.pk], at=at - dt.timedelta(microseconds=1)) == set()
    )
    # A new grant brings the subject, and the dataset, back (the site may re-ask consent).
    services.consent_record_batch(
        actor=SITE, dataset=ds, events=[grant("a", at + dt.timedelta(hours=1))]
    )
    assert datasets_all_withdrawn(dataset_ids=[ds.pk], at=clock.now()) == set()


DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("ago", "late"),
    # Facts older than the clock skew (5 minutes) before recording are recorded late.
    [(dt.timedelta(days=30), 1), (dt.timedelta(minutes=6), 1), (dt.timedelta(minutes=4), 0)],
)
def test_consent_granted_in_the_past_is_recorded_and_flagged_late(dataset, ago, late):
    """Facts about the past (Art. 7(1), 5(2)): consent granted (and even expired) before it
    is uploaded is accepted, and the ledger says how much of the batch was late."""
    now = clock.now()
    at = now - ago
    services.consent_record_batch(
        actor=SITE,
        dataset=dataset,
        events=[grant("s-old", at=at, expires=now - DAY if ago > DAY else None)],
    )
    entry = LedgerEntry.objects.get(event_type="consent.batch_recorded")
    flagged = json.loads(entry.payload)["recorded_late"]
    expected_expired = 1 if ago > DAY else 0
    assert flagged == {
        "grants": late,
        "withdrawals": 0,
        "expired": expected_expired,
        "earliest": at.isoformat() if late else None,
    }
    assert entry.actor_repr and entry.created_at  # who recorded it, and when
