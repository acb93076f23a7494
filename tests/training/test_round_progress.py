"""A running round fails after FEDGOV_ROUND_PROGRESS_SECONDS without progress, not after
the ticket's lifetime; a round that is still recording updates is left to train."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fedgov_flower.ticket import parse_unverified
from tests.factories import sha
from tests.opennebula.conftest import one_settings, standin  # noqa: F401
from tests.training.test_orchestrate import ACTOR, all_live_vms, federation  # noqa: F401
from training.choices import RoundState
from training.models import Round
from training.services import flower as flower_services
from training.services import orchestrate
from training.services.orchestrate import round_advance, round_drive, round_start

S = RoundState
LIMIT = 300

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(federation, settings):  # noqa: F811
    settings.FEDGOV_ROUND_PROGRESS_SECONDS = LIMIT
    settings.FEDGOV_TICKET_TTL_SECONDS = 3600  # the ticket outlives the progress limit
    run, _sites = federation()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    assert round_.state == S.RUNNING
    return round_


def at(monkeypatch, moment) -> None:
    monkeypatch.setattr(orchestrate.clock, "now", lambda: moment)


def record_one_site(round_: Round) -> None:
    site = parse_unverified(flower_services.latest_ticket(round_).body).sites[0]
    report = flower_services.UpdateReport(
        node_id=site.node_id, update_hash=sha(f"u-{site.slug}"), num_examples=30,
        records_used=30, records_excluded=0, metrics={"loss": 0.5},
        filter_digest=site.allowed_digest or site.exclusion_digest,
    )  # fmt: skip
    flower_services.model_updates_record(
        actor=ACTOR, round=round_, updates=[report], aggregate_hash=None
    )


@pytest.mark.parametrize(
    ("idle", "moved"), [(LIMIT - 1, False), (LIMIT, True), (LIMIT + 600, True)]
)
def test_a_round_nothing_happens_to_fails_at_the_limit(running, monkeypatch, standin, idle, moved):  # noqa: F811
    at(monkeypatch, running.updated_at + timedelta(seconds=idle))

    result = round_advance(actor=ACTOR, round_id=running.pk)

    assert result.moved is moved
    reason = Round.objects.get(pk=running.pk).state_reason
    if moved:
        assert result.after == S.FAILED
        assert reason == f"no progress for {idle} s (limit {LIMIT} s): no update was recorded"
        assert all_live_vms(standin) == []
    else:
        assert result.note == "waiting for the Flower round"


def test_a_round_still_recording_updates_is_not_failed(running, monkeypatch, standin):  # noqa: F811
    record_one_site(running)
    recorded = running.updates.get().recorded_at
    # Long after the round started running, but soon after its last update.
    at(monkeypatch, recorded + timedelta(seconds=LIMIT - 1))
    assert round_advance(actor=ACTOR, round_id=running.pk).note == "waiting for the Flower round"

    at(monkeypatch, recorded + timedelta(seconds=LIMIT))
    result = round_advance(actor=ACTOR, round_id=running.pk)

    assert result.after == S.FAILED
    assert Round.objects.get(pk=running.pk).state_reason.endswith("1 site update but no aggregate")


def test_the_default_progress_limit_is_minutes_not_the_tickets_lifetime(settings):
    assert 60 <= settings.FEDGOV_ROUND_PROGRESS_SECONDS <= 600
    assert settings.FEDGOV_ROUND_PROGRESS_SECONDS < settings.FEDGOV_TICKET_TTL_SECONDS
