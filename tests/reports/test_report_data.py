"""Report data: what a run's report states, read through plain dataclasses."""

from __future__ import annotations

import pytest

from reports import data as report_data


@pytest.mark.django_db
def test_report_data_states_legal_frame_and_every_round(played_run):
    run, *_ = played_run

    header = report_data.run_header(run_id=run.pk)
    rounds = list(report_data.report_rounds(run_id=run.pk))

    assert [c.site_slug for c in header.controllers] == ["de-legal", "es-blogs", "pl-news"]
    assert header.dpia is not None and header.dpia.status == "approved"
    assert header.policy.content_hash == run.policy.content_hash
    # Transfers are the legs the latest gate checked (Chapter V), not the legacy field.
    legs = {(t.site_slug, t.data): t for t in header.transfers}
    assert {slug for slug, _ in legs} == {"de-legal", "es-blogs", "pl-news"}
    assert all(t.ok and not t.third_country for t in header.transfers)
    assert [r.number for r in rounds] == [1, 2]
    first, second = rounds
    assert first.gate_outcome == "allowed"
    assert [a.approver for a in first.approvals] == ["anton"]
    assert len(first.updates) == 3 and first.aggregate_hash == "01".ljust(64, "f")
    assert first.accuracy == 0.61 and second.accuracy == 0.74
    assert {(r.site_slug, r.ok) for r in first.rules if r.site_slug} >= {("de-legal", True)}
    assert all(r.article for r in first.rules)
    assert first.excluded_subjects == 0


@pytest.mark.django_db
def test_report_counts_consent_at_each_round_without_identities(played_run):
    run, *_ = played_run

    first, second = report_data.report_rounds(run_id=run.pk)

    counts = {c.dataset: (c.granted, c.withdrawn, c.expired) for c in second.consent}
    assert counts["es-blogs/es-blogs-corpus"] == (8, 2, 0)
    assert counts["pl-news/pl-news-corpus"] == (9, 0, 1)
    assert {c.dataset: c.granted for c in first.consent}["es-blogs/es-blogs-corpus"] == 10
    es = next(r for r in second.records if r.site_slug == "es-blogs")
    assert es.excluded_subjects == 2 and es.records_used == es.eligible_records == 8
    assert "es-blogs-s0003" not in repr(second)


@pytest.mark.django_db
def test_report_rounds_cite_the_ledger_events_of_each_round(played_run):
    from audit.selectors import events_for

    run, *_ = played_run

    first, _second = report_data.report_rounds(run_id=run.pk)

    types = {
        e.seq: e.event_type for e in events_for(subject_type="round", subject_id=first.round_id)
    }
    assert set(first.ledger_seqs) == set(types)
    assert {"gate.decided", "update.recorded", "aggregate.recorded"} <= set(types.values())


@pytest.mark.django_db
def test_report_rounds_stream_in_chunks(played_run, monkeypatch):
    run, *_ = played_run
    monkeypatch.setattr(report_data, "CHUNK", 1)

    stream = report_data.report_rounds(run_id=run.pk)

    assert next(stream).number == 1
    assert next(stream).number == 2
    assert next(stream, None) is None


@pytest.mark.django_db
def test_report_scope_of_unknown_run_is_refused():
    with pytest.raises(LookupError):
        report_data.report_run_ids(run_id=999_999)
