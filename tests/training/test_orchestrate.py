"""The round orchestrator against the real oned stand-in (in-process), without Flower processes.

The Flower round itself is played by recording updates through ``model_updates_record``,
exactly what the governed strategy's report does over the API.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from django.core.management import call_command

from audit.models import Checkpoint, LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import TransitionNotAllowed
from fedgov_flower.ticket import parse_unverified
from opennebula import services as opennebula_services
from opennebula.choices import WorkloadState
from opennebula.errors import OpenNebulaError
from opennebula.models import Workload
from tests.factories import UserFactory, sha, verified_actor
from tests.opennebula.conftest import (  # noqa: F401 - fixtures used by name
    ZONES,
    live_vms,
    one_settings,
    standin,
)
from tests.training.flower.conftest import governed_scenario
from training import tasks
from training.choices import RoundState
from training.models import ModelUpdate, Round
from training.services import flower as flower_services
from training.services import orchestrate
from training.services.orchestrate import round_advance, round_drive, round_start
from training.services.rounds import round_abort, round_approve

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("orchestrator-test")
S = RoundState


@pytest.fixture
def federation(standin, settings):  # noqa: F811 - the stand-in fixture by name
    """Three sites, each in its own stand-in zone (DE, FR, ES), one run of ``num_rounds``."""
    settings.FEDGOV_SIGNING_KEY_FILE = ""

    def make(*, num_rounds: int = 1, **policy):
        run, sites, _datasets = governed_scenario(subjects=10, num_rounds=num_rounds)
        for site, zone_id in zip(sites, ZONES, strict=True):
            site.one_zone_endpoint = standin.endpoint(zone_id)
            site.one_zone_id = zone_id
            site.one_credentials_ref = f"env:FEDGOV_TEST_ONE_{zone_id}"
            site.one_template_id = 0
            site.save()
        for name, value in policy.items():
            setattr(run.policy, name, value)
        run.policy.save()
        return run, sites

    return make


def events(event_type: str) -> list[dict]:
    return [json.loads(e.payload) for e in LedgerEntry.objects.filter(event_type=event_type)]


def all_live_vms(standin) -> list:  # noqa: F811
    return [vm for zone in standin.zones.values() for vm in live_vms(zone)]


def play_flower_round(round_: Round) -> None:
    """What the governed strategy reports after a round: one update per ticket node."""
    ticket = parse_unverified(flower_services.latest_ticket(round_).body)
    reports = [
        flower_services.UpdateReport(
            node_id=site.node_id,
            update_hash=sha(f"update-{round_.pk}-{site.slug}"),
            num_examples=30,
            records_used=30,
            records_excluded=0,
            metrics={"loss": 0.5},
            # The site filtered by the ticket's list (the data contract).
            filter_digest=site.allowed_digest or site.exclusion_digest,
        )
        for site in ticket.sites
    ]
    flower_services.model_updates_record(
        actor=Actor.system("flower"),
        round=round_,
        updates=reports,
        aggregate_hash=sha(f"aggregate-{round_.pk}"),
    )


def test_round_goes_from_gate_to_closed_with_a_checkpoint_and_no_vm_left(
    federation,
    standin,  # noqa: F811
):
    run, sites = federation(num_rounds=1)
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    assert round_.state == S.GATED

    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    # The orchestrator stops where the Flower round has to happen.
    assert round_.state == S.RUNNING
    running = Workload.objects.filter(run=run, state=WorkloadState.RUNNING)
    assert sorted(w.site_slug for w in running) == sorted(s.slug for s in sites)
    assert len(all_live_vms(standin)) == 3
    assert len(events("ticket.issued")) == 1

    play_flower_round(round_)
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)

    assert round_.state == S.CLOSED
    states = [e["state"] for e in events("round.closed")]
    assert states == ["closed"]
    aggregated = events("round.aggregated")[0]
    assert aggregated["aggregate_hash"] == sha(f"aggregate-{round_.pk}")
    assert len(aggregated["update_ids"]) == 3
    closed_seq = LedgerEntry.objects.get(event_type="round.closed").seq
    assert Checkpoint.objects.filter(size__gt=closed_seq).exists()
    # The run had one round: its VMs are gone.
    assert all_live_vms(standin) == []
    assert not Workload.objects.filter(run=run, state=WorkloadState.RUNNING).exists()
    call_command("ledger_verify", "--no-progress")


def test_site_placed_outside_the_eea_is_blocked_for_the_round_and_left_out_of_the_ticket(
    federation,
    standin,  # noqa: F811
):
    run, sites = federation()
    es = sites[1]
    standin.zones[101].faults.rogue_host = 1  # es-blogs' zone: its US host
    round_ = round_start(actor=ACTOR, run=run, round_no=1)

    round_ = round_drive(actor=ACTOR, round_id=round_.pk)

    assert round_.state == S.RUNNING
    verified = events("round.placement_verified")[0]
    assert "es-blogs" in verified["blocked_sites"]
    assert "US" in verified["blocked_sites"]["es-blogs"]
    assert es.pk not in verified["site_ids"]
    ticket = parse_unverified(flower_services.latest_ticket(round_).body)
    assert sorted(s.slug for s in ticket.sites) == ["de-legal", "pl-news"]
    es.refresh_from_db()
    assert es.flower_node_id == ""
    assert live_vms(standin.zones[101]) == []


def test_too_few_sites_after_placement_blocks_the_round_and_terminates_its_vms(
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation(min_eligible_sites=3)
    standin.zones[101].faults.rogue_host = 1
    round_ = round_start(actor=ACTOR, run=run, round_no=1)

    round_ = round_drive(actor=ACTOR, round_id=round_.pk)

    assert round_.state == S.BLOCKED
    assert "only 2 sites passed placement, the policy needs 3" in round_.state_reason
    assert "es-blogs" in round_.state_reason
    assert all_live_vms(standin) == []
    assert not Workload.objects.filter(run=run, state=WorkloadState.RUNNING).exists()
    call_command("ledger_verify", "--no-progress")


def test_provisioning_repeated_after_a_crash_reuses_the_vms_and_moves_the_round_once(
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_advance(actor=ACTOR, round_id=round_.pk)  # → approved
    # A worker claimed provisioning and died before recording anything.
    orchestrate.round_transition(
        actor=ACTOR, round=round_, target=S.PROVISIONING, reason="crashed worker"
    )

    first = round_advance(actor=ACTOR, round_id=round_.pk)
    second = round_advance(actor=ACTOR, round_id=round_.pk)
    again = round_advance(actor=ACTOR, round_id=round_.pk)

    assert (first.before, first.after) == (S.PROVISIONING, S.PLACEMENT_VERIFIED)
    assert (second.before, second.after) == (S.PLACEMENT_VERIFIED, S.RUNNING)
    assert not again.moved
    assert len(events("round.placement_verified")) == 1
    assert len(events("workload.started")) == 3
    assert len(all_live_vms(standin)) == 3
    assert len(events("ticket.issued")) == 1


def test_a_second_provisioning_call_after_success_starts_no_second_vm(
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_drive(actor=ACTOR, round_id=round_.pk, until=frozenset({S.PLACEMENT_VERIFIED}))

    with pytest.raises(TransitionNotAllowed):
        orchestrate.round_provision(actor=ACTOR, round=round_)

    assert len(all_live_vms(standin)) == 3
    assert len(events("round.provisioning")) == 1


def test_round_waits_for_a_second_operator_when_the_policy_asks_for_approval(
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation(requires_approval=True)
    requester = UserFactory(username="op-requester", roles=[roles.OPERATOR])
    run.requested_by = requester
    run.save()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)

    waiting = round_drive(actor=ACTOR, round_id=round_.pk)
    assert waiting.state == S.AWAITING_APPROVAL
    assert all_live_vms(standin) == []

    second = UserFactory(username="op-second", roles=[roles.OPERATOR])
    round_approve(actor=verified_actor(second), round=round_, reason="DPIA and gate reviewed")
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)

    assert round_.state == S.RUNNING
    assert len(all_live_vms(standin)) == 3


def test_abort_of_a_running_round_terminates_its_vms_after_commit(
    federation,
    standin,  # noqa: F811
    django_capture_on_commit_callbacks,
    settings,
):
    settings.CELERY_BROKER_URL = ""  # without a broker the release runs in the process
    run, _sites = federation()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    assert round_.state == S.RUNNING and len(all_live_vms(standin)) == 3
    operator = UserFactory(username="op-abort", roles=[roles.OPERATOR])

    with django_capture_on_commit_callbacks(execute=True):
        round_abort(actor=Actor.of(operator), round=round_, reason="site reported an incident")

    assert Round.objects.get(pk=round_.pk).state == S.ABORTED
    assert all_live_vms(standin) == []
    terminated = events("workload.terminated")
    assert len(terminated) == 3
    assert all("aborted by op-abort" in e["reason"] for e in terminated)
    call_command("ledger_verify", "--no-progress")


def test_running_round_fails_when_its_ticket_expires_without_updates(
    federation,
    standin,  # noqa: F811
    monkeypatch,
):
    run, _sites = federation()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    assert round_.state == S.RUNNING
    assert not round_advance(actor=ACTOR, round_id=round_.pk).moved

    later = flower_services.latest_ticket(round_).expires_at + timedelta(seconds=1)
    monkeypatch.setattr(orchestrate.clock, "now", lambda: later)
    result = round_advance(actor=ACTOR, round_id=round_.pk)

    assert result.after == S.FAILED
    assert "ticket expired" in Round.objects.get(pk=round_.pk).state_reason
    assert all_live_vms(standin) == []
    assert not ModelUpdate.objects.filter(round=round_).exists()


def test_closed_round_before_the_last_keeps_the_vms_for_the_next_round(
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation(num_rounds=2)
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    play_flower_round(round_)
    assert round_drive(actor=ACTOR, round_id=round_.pk).state == S.CLOSED
    assert len(all_live_vms(standin)) == 3

    second = round_start(actor=ACTOR, run=run, round_no=2)
    second = round_drive(actor=ACTOR, round_id=second.pk)
    assert second.state == S.RUNNING
    # The same three VMs serve round 2: no new one was started.
    assert len(events("workload.started")) == 3
    play_flower_round(second)
    assert round_drive(actor=ACTOR, round_id=second.pk).state == S.CLOSED
    assert all_live_vms(standin) == []


def test_task_runs_one_step_and_turns_a_passing_zone_error_into_a_retryable_one(
    federation,
    standin,  # noqa: F811
    monkeypatch,
):
    run, _sites = federation()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    assert tasks.round_advance(round_.pk) == {
        "round_id": round_.pk,
        "before": S.GATED,
        "after": S.APPROVED,
    }

    def zone_down(**_kwargs):
        raise OpenNebulaError("zone unreachable", code=None, permanent=False)

    monkeypatch.setattr(orchestrate, "round_advance", zone_down)
    with pytest.raises(tasks.ZoneUnavailable):
        tasks.round_advance.run(round_.pk)


def test_a_step_queued_twice_for_one_state_moves_the_round_once(
    federation,
    standin,  # noqa: F811
):
    # federate queues a step again when its first message seems lost; if both arrive,
    # the later one finds the round moved on and must not take a step nobody asked for.
    run, _sites = federation()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    assert round_.state == S.GATED

    first = tasks.round_advance(round_.pk, S.GATED)
    again = tasks.round_advance(round_.pk, S.GATED)

    assert (first["before"], first["after"]) == (S.GATED, S.APPROVED)
    assert (again["before"], again["after"]) == (S.APPROVED, S.APPROVED)
    assert Round.objects.get(pk=round_.pk).state == S.APPROVED
    assert not Workload.objects.filter(run=run).exists()  # no provisioning was started
    # Without a named state the same call takes the next step, as it always did.
    assert tasks.round_advance(round_.pk)["before"] == S.APPROVED


def test_site_no_longer_eligible_loses_its_vm_when_the_next_round_provisions(
    federation,
    standin,  # noqa: F811
):
    from sites.services import dataset_withdraw

    run, sites = federation(num_rounds=2)
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    play_flower_round(round_)
    assert round_drive(actor=ACTOR, round_id=round_.pk).state == S.CLOSED
    pl_news = sites[2]
    dataset_withdraw(
        actor=Actor.system("site"), dataset=run.datasets.get(site=pl_news), reason="leaves"
    )

    second = round_start(actor=ACTOR, run=run, round_no=2)
    second = round_drive(actor=ACTOR, round_id=second.pk)

    assert second.state == S.RUNNING
    assert live_vms(standin.zones[102]) == []
    assert len(all_live_vms(standin)) == 2
    terminated = events("workload.terminated")
    assert [e["site_id"] for e in terminated] == [pl_news.pk]
    assert "not eligible for round 2" in terminated[0]["reason"]


def test_site_without_a_zone_binding_is_blocked_for_the_round_with_the_reason(
    federation,
    standin,  # noqa: F811
):
    run, sites = federation()
    sites[0].one_zone_endpoint = ""
    sites[0].save()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)

    round_ = round_drive(actor=ACTOR, round_id=round_.pk)

    assert round_.state == S.RUNNING
    blocked = events("round.placement_verified")[0]["blocked_sites"]
    assert blocked == {"de-legal": "cannot provision: one_zone_endpoint: site de-legal has no "
                       "OpenNebula endpoint"}  # fmt: skip
    assert len(all_live_vms(standin)) == 2


def test_abort_while_vms_are_starting_leaves_no_vm_once_provisioning_stops(
    federation,
    standin,  # noqa: F811
    monkeypatch,
):
    run, _sites = federation()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_advance(actor=ACTOR, round_id=round_.pk)  # → approved
    operator = UserFactory(username="op-abort-early", roles=[roles.OPERATOR])
    real_ensure = opennebula_services.workload_ensure

    def ensure_then_abort(**kwargs):
        workload = real_ensure(**kwargs)
        current = Round.objects.get(pk=round_.pk)
        if current.state == S.PROVISIONING:
            # The operator aborts after the first VM is up; the others still start.
            round_abort(actor=Actor.of(operator), round=current, reason="wrong dataset")
        return workload

    monkeypatch.setattr(opennebula_services, "workload_ensure", ensure_then_abort)
    result = round_advance(actor=ACTOR, round_id=round_.pk)

    assert result.after == S.ABORTED
    assert all_live_vms(standin) == []
    assert not Workload.objects.filter(run=run, state=WorkloadState.RUNNING).exists()
    assert not events("round.placement_verified")


def test_round_blocked_at_the_gate_terminates_the_vms_kept_from_the_round_before(
    federation,
    standin,  # noqa: F811
):
    from sites.services import dataset_withdraw

    run, sites = federation(num_rounds=2, min_eligible_sites=3)
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    play_flower_round(round_)
    assert round_drive(actor=ACTOR, round_id=round_.pk).state == S.CLOSED
    assert len(all_live_vms(standin)) == 3
    dataset_withdraw(
        actor=Actor.system("site"), dataset=run.datasets.get(site=sites[0]), reason="leaves"
    )

    second = round_start(actor=ACTOR, run=run, round_no=2)

    assert second.state == S.BLOCKED
    assert all_live_vms(standin) == []
    call_command("ledger_verify", "--no-progress")


def test_sweep_finishes_a_round_left_half_way_and_skips_fresh_and_waiting_ones(
    federation,
    standin,  # noqa: F811
):
    run, _sites = federation(num_rounds=1)
    stalled = round_start(actor=ACTOR, run=run, round_no=1)
    stalled = round_drive(actor=ACTOR, round_id=stalled.pk)
    play_flower_round(stalled)
    # A worker died after the updates were recorded: the round sits in running.
    Round.objects.filter(pk=stalled.pk).update(updated_at=clock_now() - timedelta(minutes=10))
    waiting = Round.objects.create(
        run=run,
        number=2,
        state=S.AWAITING_APPROVAL,
        requested_by_name="test",
    )
    Round.objects.filter(pk=waiting.pk).update(updated_at=clock_now() - timedelta(minutes=10))

    results = orchestrate.rounds_sweep_stalled(actor=ACTOR, older_than_seconds=120)

    assert [r.round_id for r in results] == [stalled.pk]
    assert Round.objects.get(pk=stalled.pk).state == S.AGGREGATED
    assert Round.objects.get(pk=waiting.pk).state == S.AWAITING_APPROVAL
    # The next sweep only looks at rounds that sat still; this one just moved.
    assert orchestrate.rounds_sweep_stalled(actor=ACTOR, older_than_seconds=120) == []


@pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"),
    reason="needs a Redis broker: set CELERY_BROKER_URL=redis://…",
)
def test_a_step_whose_message_was_deleted_from_the_broker_is_taken_by_the_sweep(
    federation,
    standin,  # noqa: F811
):
    import redis

    run, _sites = federation(num_rounds=1)
    round_ = round_drive(actor=ACTOR, round_id=round_start(actor=ACTOR, run=run, round_no=1).pk)
    play_flower_round(round_)
    # The step that aggregates is queued for a worker, then lost before any worker took it
    # (kombu's Redis transport: one list per queue, one JSON message per item).
    with redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]) as queue:
        queue.delete("celery")
        tasks.round_advance.delay(round_.pk, S.RUNNING)
        (message,) = queue.lrange("celery", 0, -1)
        assert json.loads(message)["headers"]["task"] == "training.round_advance"
        assert queue.lrem("celery", 1, message) == 1
    assert Round.objects.get(pk=round_.pk).state == S.RUNNING

    # Beat's sweep, as a worker runs it, once the round has sat still past the limit.
    for expected in (S.AGGREGATED, S.CLOSED):
        Round.objects.filter(pk=round_.pk).update(updated_at=clock_now() - timedelta(minutes=10))
        assert tasks.sweep_stalled_rounds() == [round_.pk]
        assert Round.objects.get(pk=round_.pk).state == expected
    closed = LedgerEntry.objects.get(event_type="round.closed", subject_id=str(round_.pk))
    assert Checkpoint.objects.filter(size__gt=closed.seq).exists()


def clock_now():
    from fedgov import clock

    return clock.now()


# ------------------------------------------------ residency at placement (Art. 28(3)(a))


@pytest.mark.parametrize(
    ("processing", "policy_areas", "kept"),
    [
        # The dataset is DE-only: its French host is outside, though the policy says EEA.
        (["DE"], ["EEA"], ["de-legal", "pl-news"]),
        # The dataset allows the EEA but the policy only DE and ES: FR is still outside.
        (["EEA"], ["DE", "ES"], ["de-legal", "pl-news"]),
        (["EEA"], ["EEA"], ["de-legal", "es-blogs", "pl-news"]),
        # Declared, allowed and placed in FR: accepted. The dataset allows DE too: its model
        # updates are aggregated in DE, which the gate's residency rule also checks.
        (["FR", "DE"], ["EEA"], ["de-legal", "es-blogs", "pl-news"]),
    ],
    ids=["de-only-dataset", "de-es-policy", "both-eea", "fr-dataset"],
)
def test_a_vm_is_accepted_only_in_both_the_datasets_countries_and_the_policys_areas(
    federation,
    standin,  # noqa: F811
    processing,
    policy_areas,
    kept,
):
    run, sites = federation(allowed_areas=policy_areas)
    es = sites[1]  # its zone's hosts, cluster and datastore are in FR
    es.datasets.update(processing_countries=processing)
    if processing == ["FR", "DE"]:
        es.compute_country = "FR"
        es.save()
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    if "es-blogs" not in kept and policy_areas == ["EEA"]:
        # The gate alone cannot see it: the site declares compute in DE.
        assert round_.state == S.GATED
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    verified = events("round.placement_verified")[0]
    assert sorted(s.slug for s in sites if s.pk in verified["site_ids"]) == kept
    if "es-blogs" not in kept:
        # The scheduling requirements name only the allowed countries, so the zone's
        # scheduler finds no host and the VM never runs; the site is blocked.
        assert "es-blogs" in verified["blocked_sites"]
        assert live_vms(standin.zones[101]) == []
        es.refresh_from_db()
        assert es.flower_node_id == ""


def test_a_site_whose_datasets_and_policy_share_no_country_is_not_provisioned(
    federation,
    standin,  # noqa: F811
):
    run, sites = federation()
    sites[1].datasets.update(processing_countries=["US"])
    round_ = round_start(actor=ACTOR, run=run, round_no=1)
    # The gate refuses it already (residency); placement never asks its zone for a VM.
    round_ = round_drive(actor=ACTOR, round_id=round_.pk)
    assert live_vms(standin.zones[101]) == []
    assert round_.state in (S.RUNNING, S.BLOCKED)
