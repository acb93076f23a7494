"""The OpenNebula adapter of training's workload port (``training.ports.Workloads``).

Orchestration asks this object, never the opennebula app directly, so the dependency
runs one way: ``opennebula`` implements what ``training`` declares.
"""

from __future__ import annotations

from typing import Any

from fedgov.actors import Actor
from opennebula import services
from opennebula.choices import WorkloadState
from opennebula.models import Workload
from sites.models import Site
from training.models import TrainingRun
from training.ports import WorkloadStatus


def _status(workload: Workload) -> WorkloadStatus:
    return WorkloadStatus(
        site_id=workload.site_id,
        state=workload.state,
        blocked=workload.blocked,
        reason=workload.reason,
        zone_id=workload.zone_id,
        vm_id=workload.vm_id,
        host=workload.host,
        host_country=workload.host_country,
    )


class OpenNebulaWorkloads:
    """Each site's SuperNode as a VM in the site's own OpenNebula zone."""

    def ensure(
        self,
        *,
        actor: Actor,
        site: Site,
        run: TrainingRun,
        allowed_countries: Any,
        context: dict[str, str] | None = None,
    ) -> WorkloadStatus:
        # Looked up on the module at call time: tests wrap services.workload_ensure.
        workload = services.workload_ensure(
            actor=actor, site=site, run=run, allowed_countries=allowed_countries, context=context
        )
        return _status(workload)

    def terminate(self, *, actor: Actor, site: Site, run: TrainingRun, reason: str) -> int:
        return services.workload_terminate(actor=actor, site=site, run=run, reason=reason)

    def mark_gone(self, *, actor: Actor, run: TrainingRun, zone_endpoints: Any, reason: str) -> int:
        return services.workloads_mark_gone(
            actor=actor, run=run, zone_endpoints=zone_endpoints, reason=reason
        )

    def running_site_ids(self, *, run: TrainingRun) -> list[int]:
        return list(
            Workload.objects.filter(run=run, state=WorkloadState.RUNNING)
            .values_list("site_id", flat=True)
            .distinct()
            .order_by("site_id")
        )
