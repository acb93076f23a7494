"""Dead zones: a bounded retry budget and a circuit breaker per zone, on /metrics and the
dashboard. No timing thresholds: the bounds show in which error ends the provisioning.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from opennebula.choices import WorkloadState
from opennebula.identity import endpoint_identity
from opennebula.models import ZoneBreaker
from opennebula.services import workload_ensure, workloads_reconcile
from tests.factories import RunFactory, UserFactory
from tests.opennebula.conftest import live_vms

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
EEA = ["EEA"]


@pytest.fixture
def breaker_settings(one_settings):
    one_settings.FEDGOV_ONE_BREAKER_THRESHOLD = 3
    one_settings.FEDGOV_ONE_BREAKER_COOLDOWN = 600
    one_settings.FEDGOV_ONE_RETRY_BUDGET = 2
    return one_settings


def breaker_of(standin, zone_id: int = 0) -> ZoneBreaker | None:
    identity = endpoint_identity(standin.endpoint(zone_id))
    return ZoneBreaker.objects.filter(zone_endpoint=identity, zone_id=zone_id).first()


def test_endpoint_identity_normalises_spellings_and_refuses_non_urls():
    assert endpoint_identity("HTTP://One.Example:2633/RPC2/") == "http://one.example:2633/RPC2"
    assert endpoint_identity("https://one.example/RPC2") == "https://one.example:443/RPC2"
    assert endpoint_identity("http://[::1]:2633/RPC2") == "http://[::1]:2633/RPC2"
    for bad in ("one.example:2633", "ftp://one.example/", "http:///RPC2"):
        with pytest.raises(ValueError):
            endpoint_identity(bad)


def test_a_dead_zone_opens_its_breaker_and_then_fails_fast_without_calling(
    standin, make_site, breaker_settings
):
    site = make_site(0)
    standin.kill_zone(0)
    for _ in range(3):
        failed = workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
        assert "cannot connect" in failed.reason
    breaker = breaker_of(standin)
    assert breaker.consecutive_failures == 3 and breaker.times_opened == 1
    # The zone is back, but the breaker is open: no call reaches it, nothing starts.
    standin.serve_zone(0)
    blocked = workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    assert blocked.state == WorkloadState.FAILED and "is unavailable" in blocked.reason
    assert standin.zones[0].vms == {}
    ledgered = json.loads(LedgerEntry.objects.order_by("-seq").first().payload)
    assert "is unavailable" in ledgered["reason"] and ledgered["permanent"] is False
    # After the cooldown one trial call goes through; its success closes the breaker.
    breaker_settings.FEDGOV_ONE_BREAKER_COOLDOWN = 0
    ZoneBreaker.objects.update(open_until=breaker.open_until.replace(year=2000))
    ok = workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    assert ok.state == WorkloadState.RUNNING, ok.reason
    closed = breaker_of(standin)
    assert closed.consecutive_failures == 0 and closed.open_until is None
    assert closed.times_opened == 1


def test_refusals_prove_the_zone_alive_and_never_open_the_breaker(
    standin, make_site, breaker_settings
):
    standin.zones[0].faults.auth = True
    site = make_site(0)
    for _ in range(5):
        failed = workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
        assert "authentication failed" in failed.reason
    assert breaker_of(standin) is None


def test_a_zone_that_stops_answering_mid_provision_spends_only_the_retry_budget(
    standin, make_site, breaker_settings
):
    # A long RUNNING deadline: without the budget fedgov would poll until it, and the
    # reason would be "still in ACTIVE/BOOT after 120s".
    breaker_settings.FEDGOV_ONE_RUNNING_DEADLINE = 120
    breaker_settings.FEDGOV_ONE_CLEANUP_DEADLINE = 120
    breaker_settings.FEDGOV_ONE_CALL_TIMEOUT = 0.2
    zone = standin.zones[0]
    zone.faults.stall_in = "BOOT"
    site = make_site(0)

    def hang_when_booting():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with zone.lock:
                if any(vm.lcm_state == 2 for vm in zone.vms.values()):
                    zone.faults.slow_seconds = 30
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=hang_when_booting, daemon=True)
    thread.start()
    workload = workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    thread.join()
    zone.faults.slow_seconds = 0
    assert workload.state == WorkloadState.FAILED
    assert "no answer in time" in workload.reason or "is unavailable" in workload.reason
    cleanup = json.loads(LedgerEntry.objects.order_by("-seq").first().payload)["cleanup"]
    assert cleanup["stopped"] is False and "zone not answering" in cleanup["outcome"]
    assert breaker_of(standin).open_until is not None
    # Reconciliation (zone answering again, breaker reset by the operator's wait) finishes
    # the job: the VM is taken down.
    ZoneBreaker.objects.all().delete()
    zone.faults.stall_in = ""
    workloads_reconcile(actor=ACTOR)
    assert live_vms(zone) == []


def test_breakers_are_on_metrics_and_the_dashboard(standin, make_site, breaker_settings, client):
    site = make_site(0)
    standin.kill_zone(0)
    for _ in range(3):
        workload_ensure(actor=ACTOR, site=site, run=RunFactory(), allowed_countries=EEA)
    breaker_settings.FEDGOV_METRICS_TOKEN = "breaker-test-token"
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer breaker-test-token").content.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    labels = (("endpoint", endpoint_identity(standin.endpoint(0))), ("zone", "0"))
    assert samples[("fedgov_opennebula_zone_breaker_open", labels)] == 1
    assert samples[("fedgov_opennebula_zone_unanswered_calls", labels)] == 3
    assert samples[("fedgov_opennebula_zone_breaker_opened_total", labels)] == 1
    dpo = UserFactory(roles=[roles.DPO])
    client.force_login(dpo)
    page = client.get(reverse("dashboard:index")).content.decode()
    zones = page[page.index('id="zones"') :]
    assert endpoint_identity(standin.endpoint(0)) in zones
    assert "open until" in zones and "cannot connect" in zones


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_count_every_unanswered_call_and_open_the_breaker_once(settings):
    from django.db import connection

    from opennebula.breaker import Breaker
    from opennebula.errors import OpenNebulaError

    settings.FEDGOV_ONE_BREAKER_THRESHOLD = 3
    settings.FEDGOV_ONE_BREAKER_COOLDOWN = 600
    identity = "http://oned.example:2633/RPC2"
    workers, start = 8, threading.Barrier(8)
    errors: list[BaseException] = []

    def worker():
        try:
            breaker = Breaker(identity, 0)
            start.wait()
            breaker.record_failure(
                OpenNebulaError("one.vm.info: cannot connect", code=None, permanent=False)
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (row,) = ZoneBreaker.objects.all()
    assert row.consecutive_failures == workers  # no lost update
    assert row.times_opened == 1  # opened once, not once per worker
