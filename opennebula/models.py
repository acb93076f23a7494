"""Workloads: each SuperNode VM fedgov started for a site and a run, and where it ran."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from opennebula.choices import WorkloadState
from sites.models import Site


class Workload(models.Model):
    """One site's SuperNode VM for one run, in the site's OpenNebula zone.

    A VM is keyed by its oned's endpoint identity (``zone_endpoint``, normalised by
    ``identity.endpoint_identity``), the zone id and the VM id: every standalone oned is
    zone 0, and an oned that lost its database hands out old ids again, so only one
    *running* row may hold a given VM key. ``vm_id`` is empty
    when provisioning failed before oned gave an id. The placement fields copy the VM's
    last history record and the ``COUNTRY`` labels of its host, cluster and datastore as
    they were when fedgov checked them. Rows are evidence: sites and runs are PROTECTed.
    """

    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="workloads", verbose_name=_("site")
    )
    site_slug = models.CharField(max_length=64, verbose_name=_("site slug"))
    run = models.ForeignKey(
        "training.TrainingRun",
        on_delete=models.PROTECT,
        related_name="workloads",
        verbose_name=_("run"),
    )
    zone_id = models.PositiveIntegerField(verbose_name=_("zone id"))
    zone_endpoint = models.CharField(max_length=255, verbose_name=_("zone endpoint"))
    vm_id = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("vm id"))
    vm_name = models.CharField(max_length=128, blank=True, verbose_name=_("vm name"))
    state = models.CharField(max_length=16, choices=WorkloadState.choices, verbose_name=_("state"))
    reason = models.TextField(blank=True, verbose_name=_("reason"))
    error_code = models.IntegerField(null=True, blank=True, verbose_name=_("error code"))
    host = models.CharField(max_length=128, blank=True, verbose_name=_("host"))
    host_id = models.IntegerField(null=True, blank=True, verbose_name=_("host id"))
    host_country = models.CharField(max_length=8, blank=True, verbose_name=_("host country"))
    cluster = models.CharField(max_length=128, blank=True, verbose_name=_("cluster"))
    cluster_id = models.IntegerField(null=True, blank=True, verbose_name=_("cluster id"))
    cluster_country = models.CharField(max_length=8, blank=True, verbose_name=_("cluster country"))
    datastore = models.CharField(max_length=128, blank=True, verbose_name=_("datastore"))
    datastore_id = models.IntegerField(null=True, blank=True, verbose_name=_("datastore id"))
    datastore_country = models.CharField(
        max_length=8, blank=True, verbose_name=_("datastore country")
    )
    allowed_countries = models.JSONField(default=list, verbose_name=_("allowed countries"))
    placement_checked_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("placement checked at")
    )
    created_at = models.DateTimeField(verbose_name=_("created at"))
    updated_at = models.DateTimeField(verbose_name=_("updated at"))
    terminated_at = models.DateTimeField(null=True, blank=True, verbose_name=_("terminated at"))
    actor_name = models.CharField(max_length=150, verbose_name=_("actor name"))

    class Meta:
        verbose_name = _("workload")
        verbose_name_plural = _("workloads")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["zone_endpoint", "zone_id", "vm_id"],
                condition=Q(vm_id__isnull=False, state="running"),
                name="workload_unique_running_vm_per_endpoint",
            ),
            models.UniqueConstraint(
                fields=["site", "run"],
                condition=Q(state="running"),
                name="workload_one_running_per_site_run",
            ),
            models.CheckConstraint(
                condition=~Q(state="running") | Q(vm_id__isnull=False),
                name="workload_running_has_vm",
            ),
        ]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"zone {self.zone_id} VM {self.vm_id} for {self.site_slug} run {self.run_id}"

    @property
    def blocked(self) -> bool:
        """True when the site may not train in this round on this workload."""
        return self.state != WorkloadState.RUNNING


class ZoneBreaker(models.Model):
    """fedgov's record of one oned zone (endpoint identity + zone id): who answers there,
    and its circuit breaker.

    ``zone_name`` is the name oned gave for the zone the first time fedgov called it
    (``one.zone.info``); every later operation checks oned still answers with it, so an
    endpoint now served by another oned is refused rather than mixed up with the first.

    ``consecutive_failures`` counts calls in a row that got no answer (connection refused,
    timeout, HTTP 5xx); at ``FEDGOV_ONE_BREAKER_THRESHOLD`` the breaker opens until
    ``open_until`` and every call to the zone fails at once instead of holding a worker.
    After that one trial call is let through: success closes it, failure reopens it.
    Kept in the database so every worker, /metrics and the dashboard see the same state.
    """

    zone_endpoint = models.CharField(max_length=255, verbose_name=_("zone endpoint"))
    zone_id = models.PositiveIntegerField(verbose_name=_("zone id"))
    zone_name = models.CharField(max_length=128, blank=True, verbose_name=_("zone name"))
    consecutive_failures = models.PositiveIntegerField(
        default=0, verbose_name=_("consecutive failures")
    )
    open_until = models.DateTimeField(null=True, blank=True, verbose_name=_("open until"))
    times_opened = models.PositiveIntegerField(default=0, verbose_name=_("times opened"))
    last_error = models.TextField(blank=True, verbose_name=_("last error"))
    last_failure_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last failure at"))
    updated_at = models.DateTimeField(verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("zone breaker")
        verbose_name_plural = _("zone breakers")
        constraints = [
            models.UniqueConstraint(
                fields=["zone_endpoint", "zone_id"], name="zone_breaker_one_per_zone"
            )
        ]

    def __str__(self) -> str:
        return f"breaker of zone {self.zone_id} at {self.zone_endpoint}"
