"""Reads for other apps: workloads as plain dataclasses, never querysets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fedgov import clock
from opennebula.choices import WorkloadState
from opennebula.models import Workload, ZoneBreaker


@dataclass(frozen=True)
class WorkloadView:
    """One workload as the round, the dashboard and reports see it."""

    id: int
    site_id: int
    site_slug: str
    run_id: int
    zone_id: int
    vm_id: int | None
    state: str
    blocked: bool
    reason: str
    host: str
    host_country: str
    cluster: str
    cluster_country: str
    datastore: str
    datastore_country: str
    placement_checked_at: datetime | None


def _view(w: Workload) -> WorkloadView:
    return WorkloadView(
        id=w.pk,
        site_id=w.site_id,
        site_slug=w.site_slug,
        run_id=w.run_id,
        zone_id=w.zone_id,
        vm_id=w.vm_id,
        state=w.state,
        blocked=w.blocked,
        reason=w.reason,
        host=w.host,
        host_country=w.host_country,
        cluster=w.cluster,
        cluster_country=w.cluster_country,
        datastore=w.datastore,
        datastore_country=w.datastore_country,
        placement_checked_at=w.placement_checked_at,
    )


def workloads_of_run(run_id: int) -> list[WorkloadView]:
    """Every workload recorded for a run, newest first."""
    return [_view(w) for w in Workload.objects.filter(run_id=run_id)]


def running_workload(site_id: int, run_id: int) -> WorkloadView | None:
    """The site's verified, running workload for the run, if any."""
    w = Workload.objects.filter(site_id=site_id, run_id=run_id, state=WorkloadState.RUNNING).first()
    return _view(w) if w is not None else None


@dataclass(frozen=True)
class ZoneBreakerView:
    """One zone's circuit breaker for /metrics and the dashboard."""

    zone_endpoint: str
    zone_id: int
    zone_name: str
    open: bool
    consecutive_failures: int
    times_opened: int
    open_until: datetime | None
    last_error: str
    last_failure_at: datetime | None


def zone_breakers() -> list[ZoneBreakerView]:
    """Every zone fedgov has called, open breakers first."""
    now = clock.now()
    views = [
        ZoneBreakerView(
            zone_endpoint=b.zone_endpoint,
            zone_id=b.zone_id,
            zone_name=b.zone_name,
            open=b.open_until is not None and b.open_until > now,
            consecutive_failures=b.consecutive_failures,
            times_opened=b.times_opened,
            open_until=b.open_until,
            last_error=b.last_error,
            last_failure_at=b.last_failure_at,
        )
        for b in ZoneBreaker.objects.order_by("zone_endpoint", "zone_id")
    ]
    return sorted(views, key=lambda v: not v.open)
