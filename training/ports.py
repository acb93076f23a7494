"""Ports: what training needs from the outside, as Protocols. Adapters implement them.

Adapters are chosen by dotted path in settings and loaded once (``load_adapter``), so the
training app never imports pyone or flwr itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


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


@cache
def load_adapter(setting_name: str):
    """Instantiate the adapter class named by dotted path in ``settings.<setting_name>``."""
    return import_string(getattr(settings, setting_name))()
