"""Ports: what training needs from the outside, as Protocols. Adapters implement them.

Adapters are chosen by dotted path in settings and loaded once (``load_adapter``), so the
training app never imports pyone, flwr's deployment or the OpenNebula app itself:

- ``Workloads`` is what orchestration needs: run a site's SuperNode for a run where
  residency allows, stop it, list the sites that still run one. ``opennebula.workloads``
  implements it (``settings.FEDGOV_WORKLOADS``).
- ``Provisioner`` is what that adapter needs from a cloud: start a VM and read where it
  landed. ``opennebula.provisioner`` implements it with pyone (``FEDGOV_PROVISIONER``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from fedgov.errors import FedgovError

if TYPE_CHECKING:
    from fedgov.actors import Actor
    from sites.models import Site
    from training.models import TrainingRun


@dataclass(frozen=True)
class Placement:
    """Where a site's SuperNode VM actually landed, read from the VM's history record."""

    zone_id: int
    vm_id: int
    host: str
    host_country: str
    cluster: str
    cluster_country: str
    datastore: str
    datastore_country: str
    host_id: int | None = None
    cluster_id: int | None = None
    datastore_id: int | None = None

    @property
    def countries(self) -> frozenset[str]:
        return frozenset({self.host_country, self.cluster_country, self.datastore_country})


@dataclass(frozen=True)
class WorkloadRequest:
    """What the provisioner is asked to run: one site's SuperNode for one run."""

    site_id: int
    site_slug: str
    run_id: int
    zone_endpoint: str
    zone_id: int
    credentials_ref: str
    template_id: int | None
    allowed_countries: frozenset[str]
    context: dict[str, str] = field(default_factory=dict)


class Provisioner(Protocol):
    """Runs and stops each site's SuperNode workload on the site's own cloud."""

    def ensure_running(self, request: WorkloadRequest) -> Placement:
        """Start (or find) the workload, wait until it runs, and return its placement."""

    def terminate(self, request: WorkloadRequest) -> None:
        """Stop the site's workload for the run; succeeds when none exists."""


class WorkloadError(FedgovError):
    """A workload could not be started or stopped; ``permanent`` says if a retry can help.

    The adapter's own error type subclasses it (``opennebula.errors.OpenNebulaError``), so
    orchestration and its tasks catch this one without knowing the cloud.
    """

    permanent: bool = False


@dataclass(frozen=True)
class WorkloadStatus:
    """A site's SuperNode workload for a run, as orchestration sees it."""

    site_id: int
    state: str
    blocked: bool
    reason: str = ""
    zone_id: int | None = None
    vm_id: int | None = None
    host: str = ""
    host_country: str = ""


class Workloads(Protocol):
    """Runs, stops and lists the SuperNode workloads of a run's sites (each records its
    own ledger events)."""

    def ensure(
        self,
        *,
        actor: Actor,
        site: Site,
        run: TrainingRun,
        allowed_countries: Any,
        context: dict[str, str] | None = None,
    ) -> WorkloadStatus:
        """Make sure the site's workload runs where residency allows; ``blocked`` if not.

        Raises ``InvalidInput`` when the site cannot be provisioned at all and
        ``WorkloadError`` when the cloud fails.
        """
        ...

    def terminate(self, *, actor: Actor, site: Site, run: TrainingRun, reason: str) -> int:
        """Stop the site's workloads for the run; returns how many were running."""
        ...

    def mark_gone(self, *, actor: Actor, run: TrainingRun, zone_endpoints: Any, reason: str) -> int:
        """Mark the run's workloads on zones that no longer exist (a killed ``federate``'s
        stand-in, whose SuperNodes ended with it) as terminated; returns how many."""
        ...

    def running_site_ids(self, *, run: TrainingRun) -> list[int]:
        """Ids of the sites with a running workload for the run."""
        ...


def workloads() -> Workloads:
    """The workload adapter named by ``settings.FEDGOV_WORKLOADS``."""
    adapter: Workloads = load_adapter("FEDGOV_WORKLOADS")
    return adapter


@cache
def load_adapter(setting_name: str):
    """Instantiate the adapter class named by dotted path in ``settings.<setting_name>``."""
    return import_string(getattr(settings, setting_name))()
