"""The fault suite of issue 15: each fault ends blocked (or retried) with a reason, no VM
left running, and the ledger telling it. Runs on SQLite and on PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from audit.models import LedgerEntry
from fedgov.actors import Actor
from opennebula.choices import WorkloadState
from opennebula.client import OneClient
from opennebula.credentials import resolve
from opennebula.models import Workload
from opennebula.services import workload_ensure, workload_terminate, workloads_reconcile
from opennebula.standin import config
from opennebula.standin.server import Standin
from tests.factories import RunFactory, SiteFactory
from tests.opennebula.conftest import free_ports, live_vms, zone_data
from training.choices import RunStatus

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
EEA = ["EEA"]
DONE, ACTIVE, RUNNING, BOOT, PROLOG = 6, 3, 3, 2, 1


def ledger(event_type: str | None = None) -> list[dict]:
    qs = LedgerEntry.objects.order_by("seq")
    if event_type:
        qs = qs.filter(event_type=event_type)
    return [json.loads(e.payload) for e in qs]


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def vm_in(zone, lcm: int) -> bool:
    with zone.lock:
        return any(vm.state == ACTIVE and vm.lcm_state == lcm for vm in zone.vms.values())


def background(action) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def second_standin(standin, tmp_path):
    """Another, independent oned that also calls itself zone 0 (every standalone oned does)."""
    (port,) = free_ports(1)
    spec = config.parse({"zones": [zone_data(0, "FR", port)]})
    server = Standin(spec, tmp_path / "oned-second").start()
    yield server
    server.stop()


# -- the faults oned or the network can throw at a provisioning ---------------------------


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("auth", "authentication failed"),
        ("template", "no such object"),
        ("dead", "cannot connect"),
        ("slow", "no answer in time"),
        ("stuck_pending", "still in PENDING"),
        ("malformed_xml", "malformed XML"),
        ("boot_failure", "BOOT_FAILURE"),
        ("prolog_failure", "PROLOG_FAILURE"),
    ],
)
def test_each_fault_blocks_the_site_leaves_no_vm_and_the_ledger_says_why(
    standin, make_site, run, settings, fault, reason
):
    # Short limits only where the fault is the limit: a BOOT_FAILURE reached late on a
    # loaded machine must still read BOOT_FAILURE, not "still in BOOT".
    if fault == "stuck_pending":
        settings.FEDGOV_ONE_RUNNING_DEADLINE = 0.5
    if fault == "slow":
        settings.FEDGOV_ONE_CALL_TIMEOUT = 0.3
    zone = standin.zones[0]
    site = make_site(0, one_template_id=42 if fault == "template" else 0)
    if fault == "dead":
        standin.kill_zone(0)
    elif fault == "slow":
        zone.faults.slow_seconds = 2
    elif fault != "template":
        setattr(zone.faults, fault, True)
    workload = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    zone.faults.slow_seconds = 0
    assert workload.blocked and workload.state == WorkloadState.FAILED
    assert reason in workload.reason
    assert live_vms(zone) == []
    (failed,) = ledger("workload.failed")
    assert reason in failed["reason"] and failed["site_id"] == site.pk
    if workload.vm_id is not None:
        # A VM existed: the ledger says how it was taken down, and that it is gone.
        assert failed["cleanup"]["stopped"] is True and failed["cleanup"]["attempts"]
        assert zone.vms[workload.vm_id].state == DONE


def test_wrong_placement_on_a_host_cluster_or_datastore_is_rejected_and_terminated(
    standin, make_site, run
):
    standin.zones[0].faults.rogue_host = 1  # us-kvm-99: a US host in the DE cluster
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    assert workload.state == WorkloadState.BLOCKED and "us-kvm-99 is in US" in workload.reason
    assert live_vms(standin.zones[0]) == []
    (rejected,) = ledger("placement.rejected")
    assert rejected["terminated"] is True and rejected["host_country"] == "US"


# -- deadlines in PROLOG and BOOT: oned refuses terminate there ---------------------------


@pytest.mark.parametrize(("stall", "lcm"), [("PROLOG", PROLOG), ("BOOT", BOOT)])
def test_deadline_in_prolog_or_boot_deletes_the_vm_with_recover(
    standin, make_site, run, settings, stall, lcm
):
    settings.FEDGOV_ONE_RUNNING_DEADLINE = 0.3
    zone = standin.zones[0]
    zone.faults.stall_in = stall
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    assert workload.state == WorkloadState.FAILED
    assert f"still in ACTIVE/{stall}" in workload.reason
    (failed,) = ledger("workload.failed")
    attempts = failed["cleanup"]["attempts"]
    assert attempts[0].startswith(f"terminate-hard, VM seen in ACTIVE/{stall}: refused")
    assert f"wrong state {stall}" in attempts[0]
    assert attempts[1] == f"recover delete, VM seen in ACTIVE/{stall}: accepted"
    assert (failed["cleanup"]["outcome"], failed["cleanup"]["stopped"]) == ("DONE", True)
    # The driver finishing its step later must not bring the VM (and its token) back.
    zone.faults.stall_in = ""
    time.sleep(0.2)
    assert zone.vms[workload.vm_id].state == DONE
    assert live_vms(zone) == []


def test_without_recover_rights_cleanup_waits_until_oned_accepts_terminate(
    standin, make_site, run, settings
):
    settings.FEDGOV_ONE_RUNNING_DEADLINE = 0.3
    settings.FEDGOV_ONE_CLEANUP_DEADLINE = 5
    zone = standin.zones[0]
    zone.faults.stall_in = "BOOT"
    zone.faults.recover_denied = True

    def boot_finishes_late():
        wait_until(lambda: vm_in(zone, BOOT))
        time.sleep(0.6)  # past the RUNNING deadline, during cleanup
        zone.faults.stall_in = ""

    finisher = background(boot_finishes_late)
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    finisher.join()
    assert workload.state == WorkloadState.FAILED
    cleanup = ledger("workload.failed")[0]["cleanup"]
    attempts = cleanup["attempts"]
    assert attempts[0].startswith("terminate-hard, VM seen in ACTIVE/BOOT: refused")
    assert any(a.startswith("recover delete, VM seen in ACTIVE/BOOT: refused") for a in attempts)
    # The boot may finish between fedgov's one.vm.info and its action (CI hit exactly
    # that), so the accepted terminate was *seen* in BOOT or in RUNNING; either way oned
    # accepted it only once the VM had left BOOT, and it is the last step.
    assert attempts[-1] in {
        "terminate-hard, VM seen in ACTIVE/RUNNING: accepted",
        "terminate-hard, VM seen in ACTIVE/BOOT: accepted",
    }
    assert not any(a.endswith(": accepted") for a in attempts[:-1])
    assert (cleanup["outcome"], cleanup["stopped"]) == ("DONE", True)
    assert zone.vms[workload.vm_id].state == DONE


def test_cleanup_that_runs_out_of_time_says_so_and_the_vm_is_not_running(
    standin, make_site, run, settings
):
    settings.FEDGOV_ONE_RUNNING_DEADLINE = 0.2
    settings.FEDGOV_ONE_CLEANUP_DEADLINE = 0.3
    zone = standin.zones[0]
    zone.faults.stall_in = "BOOT"
    zone.faults.recover_denied = True
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    cleanup = ledger("workload.failed")[0]["cleanup"]
    assert cleanup["stopped"] is False and "still ACTIVE/BOOT" in cleanup["outcome"]
    assert "reconciliation retries" in workload.reason
    assert (zone.vms[workload.vm_id].state, zone.vms[workload.vm_id].lcm_state) == (3, BOOT)


# -- oned restarted mid-provision ---------------------------------------------------------


def test_oned_restart_with_its_database_kept_does_not_disturb_the_provisioning(
    standin, make_site, run, settings
):
    # A restart shorter than the retry budget (the test polls every few ms, so allow many
    # unanswered polls); a longer one blocks the site: see test_breaker.py.
    settings.FEDGOV_ONE_RETRY_BUDGET = 1000
    settings.FEDGOV_ONE_BREAKER_THRESHOLD = 1000
    zone = standin.zones[0]
    zone.faults.stall_in = "BOOT"

    def restart():
        wait_until(lambda: vm_in(zone, BOOT))
        standin.kill_zone(0)
        time.sleep(0.2)  # fedgov's polls meet "connection refused" meanwhile
        standin.restart_zone(0, keep_state=True)
        standin.serve_zone(0)
        standin.zones[0].faults.stall_in = ""

    restarter = background(restart)
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    restarter.join()
    assert workload.state == WorkloadState.RUNNING, workload.reason
    assert [vm.id for vm in live_vms(standin.zones[0])] == [workload.vm_id]
    assert len(ledger("workload.started")) == 1


def test_oned_restart_that_lost_its_database_blocks_the_site(standin, make_site, run, settings):
    zone = standin.zones[0]
    zone.faults.stall_in = "BOOT"

    def reinstall():
        wait_until(lambda: vm_in(zone, BOOT))
        standin.restart_zone(0, keep_state=False)

    restarter = background(reinstall)
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    restarter.join()
    assert workload.state == WorkloadState.FAILED and "no such object" in workload.reason
    cleanup = ledger("workload.failed")[0]["cleanup"]
    assert (cleanup["outcome"], cleanup["stopped"]) == ("VM no longer exists", True)
    assert live_vms(standin.zones[0]) == []


def test_a_reused_vm_id_after_a_lost_database_is_never_adopted_nor_touched(
    standin, make_site, run, settings
):
    zone = standin.zones[0]
    zone.faults.stall_in = "BOOT"

    def reinstall_and_reuse():
        wait_until(lambda: vm_in(zone, BOOT))
        standin.kill_zone(0)
        fresh = standin.restart_zone(0, keep_state=False)
        with fresh.lock:
            # Someone else's VM now gets id 0 on the reinstalled oned.
            fresh.vm_allocate('NAME = "payroll"\nCPU = "1"\nMEMORY = "64"\n')
        standin.serve_zone(0)

    restarter = background(reinstall_and_reuse)
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    restarter.join()
    assert workload.state == WorkloadState.FAILED
    assert "no longer carries fedgov's labels" in workload.reason
    assert ledger("workload.failed")[0]["cleanup"] is None  # nothing was done to it
    (payroll,) = live_vms(standin.zones[0])
    assert payroll.name == "payroll" and payroll.id == workload.vm_id


def test_reused_id_never_overwrites_the_row_of_the_vm_it_named_before(
    standin, make_site, run, settings
):
    site = make_site(0)
    first = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    standin.restart_zone(0, keep_state=False)  # the RUNNING VM is forgotten by oned
    later = RunFactory()
    second = workload_ensure(actor=ACTOR, site=site, run=later, allowed_countries=EEA)
    assert second.vm_id == first.vm_id and second.pk != first.pk
    first.refresh_from_db()
    assert first.run_id == run.pk and first.host == "de-kvm-01"  # evidence kept
    assert first.state == WorkloadState.TERMINATED and "given to another VM" in first.reason
    assert second.state == WorkloadState.RUNNING and second.run_id == later.pk


# -- identity: two oneds that both call themselves zone 0 ----------------------------------


def test_two_endpoints_with_the_same_zone_id_never_collide(standin, second_standin, make_site, run):
    site_de = make_site(0)
    site_fr = SiteFactory(
        country="FR",
        one_zone_endpoint=second_standin.endpoint(0),
        one_zone_id=0,
        one_credentials_ref="env:FEDGOV_TEST_ONE_0",
        one_template_id=0,
    )
    de = workload_ensure(actor=ACTOR, site=site_de, run=run, allowed_countries=EEA)
    fr = workload_ensure(actor=ACTOR, site=site_fr, run=run, allowed_countries=EEA)
    assert de.state == fr.state == WorkloadState.RUNNING
    assert (de.zone_id, de.vm_id) == (fr.zone_id, fr.vm_id) == (0, 0)
    assert de.zone_endpoint != fr.zone_endpoint
    assert (de.host, fr.host) == ("de-kvm-01", "fr-kvm-01")  # evidence names the right site
    assert workload_ensure(actor=ACTOR, site=site_de, run=run, allowed_countries=EEA).pk == de.pk
    before = len(ledger())
    report = workloads_reconcile(actor=ACTOR)
    assert report.kept == [(0, 0), (0, 0)] and report.terminated == []
    assert len(ledger()) == before
    assert workload_terminate(actor=ACTOR, site=site_de, run=run, reason="done") == 1
    fr.refresh_from_db()
    assert fr.state == WorkloadState.RUNNING
    assert [vm.id for vm in live_vms(second_standin.zones[0])] == [0]
    assert live_vms(standin.zones[0]) == []


# -- terminate, then provision again at once ----------------------------------------------


def test_reprovision_right_after_terminate_starts_a_new_vm(standin, make_site, run):
    zone = standin.zones[0]
    zone.faults.frozen_shutdown = True  # the old VM stays in SHUTDOWN for the whole test
    site = make_site(0)
    old = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    workload_terminate(actor=ACTOR, site=site, run=run, reason="operator restart")
    assert (zone.vms[old.vm_id].state, zone.vms[old.vm_id].lcm_state) == (ACTIVE, 12)
    new = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    assert new.state == WorkloadState.RUNNING and new.vm_id != old.vm_id and new.pk != old.pk
    assert (zone.vms[new.vm_id].state, zone.vms[new.vm_id].lcm_state) == (ACTIVE, RUNNING)
    old.refresh_from_db()
    assert old.state == WorkloadState.TERMINATED
    assert [p["vm_id"] for p in ledger("workload.started")] == [old.vm_id, new.vm_id]


# -- reconciliation -------------------------------------------------------------------------


def test_two_reconcile_sweeps_in_a_row_the_second_changes_and_logs_nothing(
    standin, make_site, run, caplog
):
    site = make_site(0)
    finished = RunFactory()
    stale = workload_ensure(actor=ACTOR, site=site, run=finished, allowed_countries=EEA)
    finished.status = RunStatus.FINISHED
    finished.save()
    kept = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    client = OneClient(standin.endpoint(0), resolve("env:FEDGOV_TEST_ONE_0"), timeout=2)
    labels = f'FEDGOV_MANAGED = "YES"\nFEDGOV_SITE_ID = "{site.pk}"\nFEDGOV_RUN_ID = "999"\n'
    orphan = client.template_instantiate(0, "orphan", labels)
    zone = standin.zones[0]
    wait_until(lambda: zone.vms[orphan].lcm_state == RUNNING)
    zone.faults.boot_failure = True
    broken = client.template_instantiate(0, "broken", labels)
    wait_until(lambda: zone.vms[broken].lcm_state == 36)
    zone.faults.boot_failure = False

    first = workloads_reconcile(actor=ACTOR)
    assert sorted(first.terminated) == sorted([(0, stale.vm_id), (0, orphan), (0, broken)])
    assert first.kept == [(0, kept.vm_id)]
    rows = list(Workload.objects.order_by("id").values())
    entries = LedgerEntry.objects.count()

    caplog.clear()
    caplog.set_level(logging.INFO, logger="fedgov")
    second = workloads_reconcile(actor=ACTOR)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("fedgov")] == []
    assert (second.terminated, second.errors) == ([], [])
    assert second.kept == [(0, kept.vm_id)]
    assert list(Workload.objects.order_by("id").values()) == rows
    assert LedgerEntry.objects.count() == entries
    assert [vm.id for vm in live_vms(zone)] == [kept.vm_id]


def test_reconcile_closes_a_row_whose_vm_someone_else_is_taking_down(standin, make_site, run):
    zone = standin.zones[0]
    zone.faults.frozen_shutdown = True
    workload = workload_ensure(actor=ACTOR, site=make_site(0), run=run, allowed_countries=EEA)
    with zone.lock:
        zone.vm_action("terminate", workload.vm_id)  # an operator, outside fedgov
    report = workloads_reconcile(actor=ACTOR)
    assert report.terminated == [] and report.kept == []
    workload.refresh_from_db()
    assert workload.state == WorkloadState.TERMINATED and "SHUTDOWN" in workload.reason
    assert len(ledger("workload.terminated")) == 1
    workloads_reconcile(actor=ACTOR)
    assert len(ledger("workload.terminated")) == 1


def test_the_adapter_never_reads_labels_from_short_pool_bodies(
    standin, make_site, run, monkeypatch
):
    def refuse(self):
        raise AssertionError("one.vmpool.info has no FEDGOV_* labels (to_xml_short)")

    monkeypatch.setattr(OneClient, "vm_pool", refuse)
    site = make_site(0)
    workload = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    assert workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA).pk == workload.pk
    assert workloads_reconcile(actor=ACTOR).kept == [(0, workload.vm_id)]
    assert workload_terminate(actor=ACTOR, site=site, run=run, reason="end") == 1
    assert live_vms(standin.zones[0]) == []


def test_an_endpoint_now_answering_as_another_zone_is_refused_and_nothing_starts(
    standin, make_site, run
):
    site = make_site(0)
    first = workload_ensure(actor=ACTOR, site=site, run=run, allowed_countries=EEA)
    assert first.state == WorkloadState.RUNNING
    # The endpoint now reaches another oned (DNS moved, a reinstall under a new name).
    standin.zones[0].spec.name = "someone-elses-oned"
    later = workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    assert later.state == WorkloadState.FAILED
    assert "recorded as 'zone-de'" in later.reason and "someone-elses-oned" in later.reason
    assert [vm.id for vm in live_vms(standin.zones[0])] == [first.vm_id]
    assert ledger("workload.failed")[0]["permanent"] is True


def test_a_start_that_cannot_bind_a_later_zone_leaves_nothing_serving(tmp_path, monkeypatch):
    """The second zone's port is taken: start fails, and the first zone's endpoint, which
    had already bound, is closed again (no listening socket, no serving thread)."""
    import socket

    for zone_id in (0, 101):
        monkeypatch.setenv(f"FEDGOV_TEST_ONE_{zone_id}", "fedgov:zone-secret-Xy7#q")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        spec = config.parse({"zones": [zone_data(0, "DE", 0), zone_data(101, "FR", busy_port)]})
        threads_before = threading.active_count()
        standin = Standin(spec, tmp_path / "oned")
        with pytest.raises(OSError, match="in use"):
            standin.start()
        first_port = spec.zones[0].port
        assert first_port != 0  # the first zone did bind before the second failed
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", first_port)) != 0
        deadline = time.monotonic() + 5
        while threading.active_count() > threads_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == threads_before
