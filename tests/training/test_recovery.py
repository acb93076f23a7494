"""A killed ``manage.py federate``'s rounds end at restart, and a dead zone costs a bounded
number of calls, never a worker held in retries.

Real oned stand-in zones (in-process), real services; the dead owner is a process mark
that names no live process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from django.db import connection

from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.locks import exclusive
from fedgov.processes import mark_of
from opennebula.choices import WorkloadState
from opennebula.models import Workload, ZoneBreaker
from tests.factories import sha
from tests.opennebula.conftest import (  # noqa: F401 - fixtures used by name
    ZONES,
    live_vms,
    one_settings,
    standin,
)
from tests.training.test_orchestrate import events, federation  # noqa: F401
from training import tasks
from training.choices import RoundState
from training.models import ModelUpdate, Round
from training.services import flower as flower_services
from training.services.orchestrate import round_drive, round_start
from training.services.recovery import OWNER_FILE, runs_recover_abandoned

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("recovery-test")
S = RoundState
DEAD = "999999999:1"  # no such pid: an owner that is gone


def owner_record(tmp_path, run, *, owner=DEAD, endpoints=()):
    path = tmp_path / "federate" / run.name / OWNER_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"owner": owner, "run_id": run.pk, "endpoints": list(endpoints)}))
    return path


def placed_round(federation):  # noqa: F811
    run, sites = federation(num_rounds=1)
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    assert round_.state == S.RUNNING  # the ticket is issued, the Flower round would start
    return run, sites, round_


def test_round_of_a_killed_federate_fails_with_the_reason_and_its_vms_go(
    federation,  # noqa: F811
    standin,  # noqa: F811
    tmp_path,
):
    run, _sites, round_ = placed_round(federation)
    path = owner_record(tmp_path, run, endpoints=[standin.endpoint(z) for z in ZONES])

    touched = runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate")

    round_.refresh_from_db()
    assert [r.pk for r in touched] == [round_.pk]
    assert round_.state == S.FAILED
    assert "federate (process 999999999) driving it was killed; it was running" in (
        round_.state_reason
    )
    # The zones are alive here: the VMs were terminated through them.
    assert [vm for z in standin.zones.values() for vm in live_vms(z)] == []
    assert not Workload.objects.filter(run=run, state=WorkloadState.RUNNING).exists()
    assert len(events("workload.terminated")) == 3
    assert not path.exists()


def test_workloads_on_a_dead_stand_in_are_recorded_as_gone(
    federation,  # noqa: F811
    standin,  # noqa: F811
    tmp_path,
):
    run, _sites, round_ = placed_round(federation)
    endpoints = [standin.endpoint(z) for z in ZONES]
    for zone_id in ZONES:
        standin.kill_zone(zone_id)  # the stand-in died with the federate that served it
    owner_record(tmp_path, run, endpoints=endpoints)

    runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate")

    assert Round.objects.get(pk=round_.pk).state == S.FAILED
    assert not Workload.objects.filter(run=run, state=WorkloadState.RUNNING).exists()
    gone = events("workload.terminated")
    assert len(gone) == 3
    assert all("stand-in zone" in e["reason"] for e in gone), gone


def test_a_round_whose_aggregate_is_recorded_is_closed_not_failed(
    federation,  # noqa: F811
    standin,  # noqa: F811
    tmp_path,
):
    run, _sites, round_ = placed_round(federation)
    ticket = flower_services.latest_ticket(round_)
    from fedgov_flower.ticket import parse_unverified

    flower_services.model_updates_record(
        actor=ACTOR,
        round=round_,
        updates=[
            # An honest site: its counts and the ticket's subject-list digest (issue 13).
            flower_services.UpdateReport(
                s.node_id, sha(s.slug), 30, 30, 0, {}, s.allowed_digest or s.exclusion_digest
            )
            for s in parse_unverified(ticket.body).sites
        ],
        aggregate_hash=sha("aggregate"),
    )
    owner_record(tmp_path, run)

    runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate")

    assert Round.objects.get(pk=round_.pk).state == S.CLOSED
    assert ModelUpdate.objects.filter(round=round_, accepted=True).count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_round_a_live_worker_is_stepping_is_ended_only_after_that_step(
    federation,  # noqa: F811
    standin,  # noqa: F811
    tmp_path,
):
    # With a broker the dead federate's round may still be in a worker's step: recovery
    # must not fail it under that step's feet (the step would write after the recovery).
    run, _sites, round_ = placed_round(federation)
    path = owner_record(tmp_path, run, endpoints=[standin.endpoint(z) for z in ZONES])
    holding, release = threading.Event(), threading.Event()

    def worker_step():
        # The claim round_advance holds, from another connection (PostgreSQL) and another
        # file description (SQLite), as a worker's would be.
        try:
            with exclusive("round-advance", round_.pk) as claimed:
                assert claimed
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    step = threading.Thread(target=worker_step)
    step.start()
    try:
        assert holding.wait(30)
        busy = runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate", claim_wait=0.5)
        assert busy == []
        assert Round.objects.get(pk=round_.pk).state == S.RUNNING
        assert path.exists()  # kept for the next sweep

        threading.Timer(0.5, release.set).start()
        ended = runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate", claim_wait=30)
    finally:
        release.set()
        step.join(30)
    assert [r.state for r in ended] == [S.FAILED]
    assert "driving it was killed; it was running" in ended[0].state_reason
    assert not path.exists()


def test_a_live_owner_and_an_unreadable_record_are_left_alone(
    federation,  # noqa: F811
    standin,  # noqa: F811
    tmp_path,
):
    run, _sites, round_ = placed_round(federation)
    live = owner_record(tmp_path, run, owner=mark_of(os.getpid()))
    before = LedgerEntry.objects.count()

    assert runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate") == []
    live.write_text("{not json")
    assert runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate") == []

    assert Round.objects.get(pk=round_.pk).state == S.RUNNING
    assert LedgerEntry.objects.count() == before
    assert live.exists()


def test_a_round_awaiting_approval_is_aborted_with_the_reason(
    federation,  # noqa: F811
    standin,  # noqa: F811
    tmp_path,
):
    run, _sites = federation(num_rounds=1, requires_approval=True)
    round_ = round_drive(actor=ACTOR, round_id=round_start(actor=ACTOR, run=run, round_no=1).pk)
    assert round_.state == S.AWAITING_APPROVAL
    owner_record(tmp_path, run)

    runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate")

    round_.refresh_from_db()
    assert round_.state == S.ABORTED
    assert "killed; it was awaiting approval" in round_.state_reason


# --- the dead zone ------------------------------------------------------------------


def test_a_dead_zone_costs_the_task_its_retry_budget_once_and_no_celery_retry(
    federation,  # noqa: F811
    standin,  # noqa: F811
    one_settings,  # noqa: F811
):
    """The issue saw one worker busy for up to 300 s retrying a dead zone.

    Now a zone that does not answer costs each call its timeout, at most the retry
    budget's worth of calls, and then the site is blocked with the zone's error: the task
    completes, nothing is re-queued (Celery's backoff, up to ``retry_backoff_max`` = 300 s,
    was the 300 s). After the breaker's threshold of such failures the zone gets no call
    at all (tests/opennebula/test_breaker.py).
    """
    one_settings.FEDGOV_ONE_CALL_TIMEOUT = 0.2
    one_settings.FEDGOV_ONE_RETRY_BUDGET = 2
    one_settings.FEDGOV_ONE_BREAKER_THRESHOLD = 2
    one_settings.FEDGOV_ONE_BREAKER_COOLDOWN = 600
    run, sites = federation(num_rounds=2)
    dead = standin.zones[0]
    dead.faults.slow_seconds = 30  # a black hole: it accepts and never answers in time
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    tasks.round_advance.apply(args=[round_.pk])  # gated → approved

    result = tasks.round_advance.apply(args=[round_.pk])  # provisioning, one call

    assert result.successful(), result.traceback
    assert result.result["after"] == S.PLACEMENT_VERIFIED
    payload = events("round.placement_verified")[0]
    assert "no answer in time" in payload["blocked_sites"][sites[0].slug]
    breaker = ZoneBreaker.objects.get(zone_id=0)
    assert 1 <= breaker.consecutive_failures <= one_settings.FEDGOV_ONE_RETRY_BUDGET
    assert live_vms(dead) == []


def test_crash_point_is_inert_unless_named_and_kills_with_sigkill_when_named():
    code = "from fedgov.faults import crash_point; crash_point('round.closed'); print('alive')"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGOV_CRASH")}
    unset = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    other = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "FEDGOV_CRASH_AT": "round.aggregated"},
        capture_output=True,
        text=True,
    )
    named = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "FEDGOV_CRASH_AT": "round.closed"},
        capture_output=True,
        text=True,
    )
    skipped = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "FEDGOV_CRASH_AT": "round.closed", "FEDGOV_CRASH_SKIP": "1"},
        capture_output=True,
        text=True,
    )
    assert (unset.returncode, unset.stdout) == (0, "alive\n")
    assert (other.returncode, other.stdout) == (0, "alive\n")
    assert (named.returncode, named.stdout) == (-9, "")
    assert (skipped.returncode, skipped.stdout) == (0, "alive\n")
