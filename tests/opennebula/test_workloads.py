"""workload_ensure / terminate / reconcile against the oned stand-in, through real pyone."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from audit import keys
from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from opennebula.choices import WorkloadState
from opennebula.client import OneClient
from opennebula.credentials import resolve
from opennebula.models import Workload
from opennebula.services import (
    workload_ensure,
    workload_terminate,
    workloads_reconcile,
)
from opennebula.tasks import reconcile
from tests.factories import RunFactory
from tests.opennebula.conftest import SECRET, SECRET_PASSWORD, ZONES, live_vms
from training.choices import RunStatus

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
EEA = ["EEA"]


def events(event_type: str | None = None) -> list[dict]:
    qs = LedgerEntry.objects.order_by("seq")
    if event_type:
        qs = qs.filter(event_type=event_type)
    return [json.loads(e.payload) for e in qs]


def test_happy_path_runs_one_supernode_per_site_in_three_zones(standin, make_site, run):
    for zone_id, country in ZONES.items():
        site = make_site(zone_id)
        workload = workload_ensure(
            actor=ACTOR, site=site, run=run, allowed_countries=EEA, context={"EXTRA": "1"}
        )
        assert workload.state == WorkloadState.RUNNING, workload.reason
        assert not workload.blocked
        assert (workload.host, workload.host_country) == (f"{country.lower()}-kvm-01", country)
        assert workload.cluster_country == workload.datastore_country == country
        vm = standin.zones[zone_id].vms[workload.vm_id]
        assert (vm.state, vm.lcm_state) == (3, 3)  # ACTIVE / RUNNING
        context = vm.context
        assert context["FEDGOV_SITE_ID"] == str(site.pk)
        assert context["FEDGOV_RUN_ID"] == str(run.pk)
        assert context["ONEAPP_FL_SUPERLINK_ADDRESS"] == "127.0.0.1:18499"
        assert context["ONEAPP_FL_TLS_ENABLED"] == "NO"
        assert context["FEDGOV_SITE"] == site.slug
        assert base64.b64decode(context["FEDGOV_PUBLIC_KEY"]) == keys.raw_public_bytes(
            keys.active_key().public_key
        )
        assert context["EXTRA"] == "1"
        assert 'COUNTRY = "DE"' in vm.user_template["SCHED_REQUIREMENTS"]
        assert "US" not in vm.user_template["SCHED_REQUIREMENTS"]
        assert vm.user_template["FEDGOV_MANAGED"] == "YES"
    started = events("workload.started")
    verified = events("placement.verified")
    assert len(started) == len(verified) == 3
    assert set(verified[0]) == {
        "zone_id", "vm_id", "site_id", "run_id", "host", "host_id", "host_country", "cluster",
        "cluster_id", "cluster_country", "datastore", "datastore_id", "datastore_country",
        "allowed_countries",
    }  # fmt: skip
    assert {p["zone_id"] for p in verified} == set(ZONES)
    assert {p["host_country"] for p in verified} == set(ZONES.values())


def test_ensure_twice_finds_the_running_vm_instead_of_starting_another(standin, make_site, run):
    site = make_site(0)
    first = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    second = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    assert first.pk == second.pk and first.vm_id == second.vm_id
    assert len(live_vms(standin.zones[0])) == 1
    assert len(events("workload.started")) == 1
    assert len(events("placement.verified")) == 2


def test_ensure_without_template_allocates_the_vm_from_settings(standin, make_site, run):
    site = make_site(101, one_template_id=None)
    workload = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=["FR"])
    assert workload.state == WorkloadState.RUNNING
    vm = standin.zones[101].vms[workload.vm_id]
    assert vm.template["MEMORY"] == "2048"
    assert "TEMPLATE_ID" not in vm.template


def _assert_blocked(workload, reason_part: str, standin, zone_id: int = 0):
    assert workload.blocked
    assert workload.state in {WorkloadState.FAILED, WorkloadState.BLOCKED}
    assert reason_part in workload.reason
    assert live_vms(standin.zones[zone_id]) == []


def test_wrong_credentials_block_the_site(standin, make_site, run, monkeypatch):
    monkeypatch.setenv("FEDGOV_TEST_ONE_0", "fedgov:wrong-password")
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    _assert_blocked(workload, "authentication failed", standin)
    assert workload.error_code == 0x100
    (failed,) = events("workload.failed")
    assert failed["code"] == 0x100 and failed["permanent"] is True


def test_zone_refusing_all_logins_blocks_the_site(standin, make_site, run):
    standin.zones[0].faults.auth = True
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    _assert_blocked(workload, "authentication failed", standin)


def test_missing_template_id_blocks_the_site(standin, make_site, run):
    workload = workload_ensure(
        actor=ACTOR, site=make_site(0, one_template_id=42), run=run, allowed_countries=EEA
    )
    _assert_blocked(workload, "no such object", standin)
    assert workload.error_code == 0x400
    assert "template [42]" in workload.reason


def test_dead_endpoint_blocks_the_site(standin, make_site, run):
    site = make_site(0)
    standin.kill_zone(0)
    workload = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    _assert_blocked(workload, "cannot connect", standin)
    assert workload.vm_id is None
    assert events("workload.failed")[0]["permanent"] is False


def test_slow_endpoint_times_out_and_blocks_the_site(standin, make_site, run, settings):
    settings.FEDGOV_ONE_CALL_TIMEOUT = 0.3
    standin.zones[0].faults.slow_seconds = 3
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    assert "no answer in time" in workload.reason
    standin.zones[0].faults.slow_seconds = 0
    _assert_blocked(workload, "no answer in time", standin)


def test_boot_failure_blocks_the_site_and_terminates_the_vm(standin, make_site, run):
    standin.zones[0].faults.boot_failure = True
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    _assert_blocked(workload, "BOOT_FAILURE", standin)
    assert workload.vm_id is not None
    assert standin.zones[0].vms[workload.vm_id].state == 6  # DONE


def test_vm_stuck_pending_blocks_the_site_with_the_scheduler_message(
    standin, make_site, run, settings
):
    settings.FEDGOV_ONE_RUNNING_DEADLINE = 0.5
    standin.zones[0].faults.stuck_pending = True
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    _assert_blocked(workload, "still in PENDING", standin)
    assert "Cannot dispatch VM" in workload.reason


def test_no_allowed_host_leaves_vm_pending_and_blocks_the_site(standin, make_site, run, settings):
    settings.FEDGOV_ONE_RUNNING_DEADLINE = 0.5
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=["PT"])
    _assert_blocked(workload, "No host meets SCHED_REQUIREMENTS", standin)


def test_wrong_placement_terminates_the_vm_at_once_and_blocks_the_site(standin, make_site, run):
    standin.zones[0].faults.rogue_host = 1  # us-kvm-99, labelled US
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    _assert_blocked(workload, "host us-kvm-99 is in US", standin)
    assert workload.state == WorkloadState.BLOCKED
    assert workload.host_country == "US" and workload.terminated_at is not None
    (rejected,) = events("placement.rejected")
    assert rejected["host"] == "us-kvm-99" and rejected["host_country"] == "US"
    assert rejected["cluster_country"] == "DE" and rejected["terminated"] is True
    assert events("placement.verified") == []


def test_malformed_xml_blocks_the_site(standin, make_site, run):
    standin.zones[0].faults.malformed_xml = True
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    _assert_blocked(workload, "malformed XML", standin)


def test_terminate_stops_the_vm_and_records_it(standin, make_site, run):
    site = make_site(0)
    workload = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    assert workload_terminate(actor=ACTOR, site=site, run=run, reason="run ended") == 1
    workload.refresh_from_db()
    assert workload.state == WorkloadState.TERMINATED
    assert live_vms(standin.zones[0]) == []
    (terminated,) = events("workload.terminated")
    assert terminated["vm_id"] == workload.vm_id and terminated["reason"] == "run ended"


def test_terminate_needs_a_reason(standin, make_site, run):
    with pytest.raises(InvalidInput) as exc:
        workload_terminate(actor=ACTOR, site=make_site(0), run=run, reason=" ")
    assert "reason" in exc.value.errors


def test_reconcile_removes_orphans_and_vms_of_finished_runs(standin, make_site, run):
    site_de, site_fr = make_site(0), make_site(101)
    finished = RunFactory()
    kept = workload_ensure(actor=ACTOR, site=site_de, run=run, allowed_countries=EEA)
    stale = workload_ensure(actor=ACTOR, site=site_fr, run=finished, allowed_countries=EEA)
    finished.status = RunStatus.FINISHED
    finished.save()
    # An orphan: fedgov crashed after instantiating, before recording the workload.
    client = OneClient(standin.endpoint(0), resolve("env:FEDGOV_TEST_ONE_0"), timeout=2)
    orphan = client.template_instantiate(
        0,
        "orphan",
        f'FEDGOV_MANAGED = "YES"\nFEDGOV_SITE_ID = "{site_de.pk}"\nFEDGOV_RUN_ID = "{run.pk}"\n',
    )
    # A VM fedgov does not manage is never touched.
    foreign = client.template_instantiate(0, "someone-else", 'OWNER = "other-team"\n')

    report = workloads_reconcile(actor=ACTOR)

    assert sorted(report.terminated) == sorted([(0, orphan), (101, stale.vm_id)])
    assert report.kept == [(0, kept.vm_id)] and report.errors == []
    assert {vm.id for vm in live_vms(standin.zones[0])} == {kept.vm_id, foreign}
    assert live_vms(standin.zones[101]) == []
    stale.refresh_from_db()
    assert stale.state == WorkloadState.TERMINATED
    reasons = {(p["zone_id"], p["vm_id"]): p["reason"] for p in events("workload.terminated")}
    assert "no running workload" in reasons[(0, orphan)]
    assert "no longer wants" in reasons[(101, stale.vm_id)]
    # A second sweep finds nothing to do.
    assert workloads_reconcile(actor=ACTOR).terminated == []


def test_reconcile_honours_an_explicit_wanted_set(standin, make_site, run):
    site = make_site(0)
    workload = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    report = workloads_reconcile(actor=ACTOR, wanted=set())
    assert report.terminated == [(0, workload.vm_id)]


def test_reconcile_reports_an_unreachable_zone_and_sweeps_the_others(standin, make_site, run):
    make_site(0)
    site_fr = make_site(101)
    stale = workload_ensure(actor=ACTOR, site=site_fr, run=run, allowed_countries=EEA)
    standin.kill_zone(0)
    report = workloads_reconcile(actor=ACTOR, wanted=set())
    assert report.terminated == [(101, stale.vm_id)]
    assert len(report.errors) == 1 and "cannot connect" in report.errors[0]


def test_reconcile_task_runs_the_sweep(standin, make_site, run):
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    run.status = RunStatus.STOPPED
    run.save()
    result = reconcile()
    assert result["terminated"] == [[0, workload.vm_id]]


@pytest.mark.parametrize(
    ("allowed", "field"),
    [([], "allowed_countries"), (["EEA", "Narnia"], "allowed_countries")],
)
def test_bad_countries_are_refused_and_nothing_is_written(standin, make_site, run, allowed, field):
    with pytest.raises(InvalidInput) as exc:
        workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=allowed)
    assert field in exc.value.errors
    assert Workload.objects.count() == 0 and LedgerEntry.objects.count() == 0
    assert live_vms(standin.zones[0]) == []


def test_site_without_zone_binding_is_refused(standin, make_site, run):
    site = make_site(0, one_zone_endpoint="", one_credentials_ref="secret-in-plain-text")
    with pytest.raises(InvalidInput) as exc:
        workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    assert set(exc.value.errors) == {"one_zone_endpoint", "one_credentials_ref"}
    assert "secret-in-plain-text" not in str(exc.value)
    assert Workload.objects.count() == 0


def test_bad_context_variable_blocks_without_starting_a_vm(standin, make_site, run):
    workload = workload_ensure(
        actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA, context={"bad-name": "x"}
    )
    _assert_blocked(workload, "not an upper-case name", standin)


def test_credentials_never_reach_logs_errors_rows_or_ledger(
    standin, make_site, run, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    site = make_site(0)
    workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    workload_terminate(actor=ACTOR, site=site, run=run, reason="end")
    monkeypatch.setenv("FEDGOV_TEST_ONE_0", "fedgov:" + SECRET_PASSWORD + "-wrong")
    failed = workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    standin.zones[0].faults.auth = False
    monkeypatch.setenv("FEDGOV_TEST_ONE_0", SECRET)
    standin.zones[0].faults.slow_seconds = 3
    slow = workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    standin.zones[0].faults.slow_seconds = 0
    assert failed.blocked and slow.blocked
    assert caplog.records, "the services log what they do"
    everything = [caplog.text, *(e.payload for e in LedgerEntry.objects.all())]
    everything += [json.dumps(list(Workload.objects.values()), default=str)]
    for text in everything:
        assert SECRET_PASSWORD not in text
        assert SECRET not in text


def test_ledger_contract_of_every_workload_event(standin, make_site, run, settings):
    site = make_site(0)
    workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    workload_terminate(actor=ACTOR, site=site, run=run, reason="end")
    standin.zones[0].faults.rogue_host = 1
    workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    standin.zones[0].faults.rogue_host = None
    standin.zones[0].faults.boot_failure = True
    workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    placement_keys = {
        "zone_id", "vm_id", "site_id", "run_id", "host", "host_id", "host_country", "cluster",
        "cluster_id", "cluster_country", "datastore", "datastore_id", "datastore_country",
        "allowed_countries",
    }  # fmt: skip
    expected = [
        ("workload.started", {"zone_id", "vm_id", "site_id", "run_id"}),
        ("placement.verified", placement_keys),
        ("workload.terminated", {"zone_id", "vm_id", "site_id", "run_id", "reason"}),
        ("workload.started", {"zone_id", "vm_id", "site_id", "run_id"}),
        ("placement.rejected", placement_keys | {"reasons", "terminated"}),
        (
            "workload.failed",
            {"zone_id", "vm_id", "site_id", "run_id", "reason", "code", "permanent", "cleanup"},
        ),
    ]
    entries = list(LedgerEntry.objects.order_by("seq"))
    assert [(e.event_type, set(json.loads(e.payload))) for e in entries] == expected
    cleanup = json.loads(entries[-1].payload)["cleanup"]
    assert set(cleanup) == {"vm_id", "attempts", "outcome", "stopped"}
    # BOOT_FAILURE: oned turns the terminate into a delete (DispatchManager::terminate).
    assert cleanup["attempts"][0] == "terminate-hard, VM seen in ACTIVE/BOOT_FAILURE: accepted"
    assert (cleanup["outcome"], cleanup["stopped"]) == ("DONE", True)
    assert [e.seq for e in entries] == list(range(entries[0].seq, entries[0].seq + 6))
    assert {e.subject_type for e in entries} == {"workload"}
    assert {e.actor_repr for e in entries} == {"system:test"}


def test_selectors_return_plain_views(standin, make_site, run):
    from opennebula.selectors import running_workload, workloads_of_run

    site = make_site(0)
    workload = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    view = running_workload(site.pk, run.pk)
    assert view is not None and view.vm_id == workload.vm_id and view.host_country == "DE"
    assert not view.blocked
    assert [v.id for v in workloads_of_run(run.pk)] == [workload.pk]
    assert running_workload(site.pk, RunFactory().pk) is None
