"""Write path for OpenNebula workloads: ensure, terminate, reconcile. Each writes the ledger.

The calls to OpenNebula happen before the transaction that records their outcome: a VM
start can take minutes and must not hold database locks (SQLite's single writer above
all). A crash between the call and the record leaves a labelled VM without a row, which
``workloads_reconcile`` terminates on its next sweep.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from opennebula.choices import WorkloadState
from opennebula.credentials import check_ref
from opennebula.errors import OpenNebulaError
from opennebula.identity import endpoint_identity
from opennebula.models import Workload
from opennebula.placement import placement_violations
from sites import regions
from sites.models import Site
from training.choices import RunStatus
from training.models import TrainingRun
from training.ports import Placement, WorkloadRequest, load_adapter

logger = logging.getLogger("fedgov.opennebula")

SUBJECT = "workload"


def _provisioner():
    return load_adapter("FEDGOV_PROVISIONER")


def _allowed(allowed_countries: Any) -> frozenset[str]:
    areas = list(allowed_countries or [])
    if not areas:
        raise InvalidInput({"allowed_countries": ["at least one country or region is required"]})
    invalid = regions.invalid_areas(areas)
    if invalid:
        raise InvalidInput(
            {
                "allowed_countries": [
                    f"not an ISO country code or known region: {', '.join(invalid)}"
                ]
            }
        )
    return regions.expand(areas)


def _request(
    site: Site, run: TrainingRun, allowed: frozenset[str], context: dict
) -> WorkloadRequest:
    errors: dict[str, list[str]] = {}
    if not site.one_zone_endpoint:
        errors["one_zone_endpoint"] = [f"site {site.slug} has no OpenNebula endpoint"]
    else:
        try:
            endpoint_identity(site.one_zone_endpoint)
        except ValueError as exc:
            errors["one_zone_endpoint"] = [str(exc)]
    try:
        check_ref(site.one_credentials_ref)
    except OpenNebulaError as exc:
        errors["one_credentials_ref"] = [str(exc)]
    if not isinstance(context, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int) for k, v in context.items()
    ):
        errors["context"] = ["must map variable names to strings"]
    if errors:
        raise InvalidInput(errors)
    return WorkloadRequest(
        site_id=site.pk,
        site_slug=site.slug,
        run_id=run.pk,
        zone_endpoint=site.one_zone_endpoint,
        zone_id=site.one_zone_id,
        credentials_ref=site.one_credentials_ref,
        template_id=site.one_template_id,
        allowed_countries=allowed,
        context={k: str(v) for k, v in context.items()},
    )


def _placement_payload(workload: Workload) -> dict[str, Any]:
    return {
        "zone_id": workload.zone_id,
        "vm_id": workload.vm_id,
        "site_id": workload.site_id,
        "run_id": workload.run_id,
        "host": workload.host,
        "host_id": workload.host_id,
        "host_country": workload.host_country,
        "cluster": workload.cluster,
        "cluster_id": workload.cluster_id,
        "cluster_country": workload.cluster_country,
        "datastore": workload.datastore,
        "datastore_id": workload.datastore_id,
        "datastore_country": workload.datastore_country,
        "allowed_countries": list(workload.allowed_countries),
    }


def workload_ensure(
    *,
    actor: Actor,
    site: Site,
    run: TrainingRun,
    allowed_countries: Any,
    context: dict[str, str] | None = None,
) -> Workload:
    """Make sure the site's SuperNode runs for ``run`` where residency allows; record it.

    Returns the ``Workload``: ``state`` RUNNING when the placement was verified, BLOCKED
    when the VM landed outside ``allowed_countries`` (it is terminated at once), FAILED
    when it never reached RUNNING; ``reason`` says why. ``workload.blocked`` is what the
    round uses to exclude the site.

    Raises ``InvalidInput`` for a site without zone binding or bad countries/context.
    Ledger: ``workload.started`` (first time a VM is recorded), then ``placement.verified``
    or ``placement.rejected``; ``workload.failed`` when provisioning failed.
    """
    allowed = _allowed(allowed_countries)
    request = _request(site, run, allowed, dict(context or {}))
    provisioner = _provisioner()
    try:
        placement = provisioner.ensure_running(request)
    except OpenNebulaError as exc:
        return _record_failure(actor=actor, site=site, run=run, request=request, error=exc)
    violations = placement_violations(placement, allowed)
    cleanup_error = ""
    if violations:
        try:
            provisioner.terminate(request)
        except OpenNebulaError as exc:
            cleanup_error = f"; terminating the VM failed ({exc}), reconciliation will retry"
    return _record_placement(
        actor=actor,
        site=site,
        run=run,
        request=request,
        placement=placement,
        violations=violations,
        cleanup_error=cleanup_error,
    )


def _record_placement(
    *,
    actor: Actor,
    site: Site,
    run: TrainingRun,
    request: WorkloadRequest,
    placement: Placement,
    violations: list[str],
    cleanup_error: str,
) -> Workload:
    now = clock.now()
    identity = endpoint_identity(request.zone_endpoint)
    with transaction.atomic(durable=True):
        workload = _row_of(identity, placement.zone_id, placement.vm_id, site, run)
        _retire_reused(
            actor=actor,
            identity=identity,
            zone_id=placement.zone_id,
            vm_id=placement.vm_id,
            keep=workload,
            now=now,
        )
        created = workload is None
        if created:
            workload = Workload(
                site=site,
                site_slug=site.slug,
                run=run,
                zone_id=placement.zone_id,
                zone_endpoint=identity,
                vm_id=placement.vm_id,
                vm_name=f"fedgov-{site.slug}-run{run.pk}",
                created_at=now,
            )
        if violations:
            workload.state = WorkloadState.BLOCKED
            workload.reason = "placement breaks residency: " + "; ".join(violations) + cleanup_error
            workload.terminated_at = None if cleanup_error else now
        else:
            workload.state = WorkloadState.RUNNING
            workload.reason = ""
        for attr in (
            "host",
            "host_id",
            "host_country",
            "cluster",
            "cluster_id",
            "cluster_country",
            "datastore",
            "datastore_id",
            "datastore_country",
        ):
            setattr(workload, attr, getattr(placement, attr))
        workload.allowed_countries = sorted(request.allowed_countries)
        workload.placement_checked_at = now
        workload.updated_at = now
        workload.actor_name = actor.label
        workload.save()
        if created:
            ledger_append(
                event_type="workload.started",
                actor=actor,
                subject_type=SUBJECT,
                subject_id=workload.pk,
                payload={
                    "zone_id": workload.zone_id,
                    "vm_id": workload.vm_id,
                    "site_id": site.pk,
                    "run_id": run.pk,
                },
            )
        payload = _placement_payload(workload)
        if violations:
            payload.update({"reasons": violations, "terminated": not cleanup_error})
        ledger_append(
            event_type="placement.rejected" if violations else "placement.verified",
            actor=actor,
            subject_type=SUBJECT,
            subject_id=workload.pk,
            payload=payload,
        )
    return workload


def _record_failure(
    *, actor: Actor, site: Site, run: TrainingRun, request: WorkloadRequest, error: OpenNebulaError
) -> Workload:
    now = clock.now()
    reason = f"provisioning failed: {error}"
    cleanup = error.cleanup.as_payload() if error.cleanup is not None else None
    if cleanup is not None:
        reason += f"; cleanup: {cleanup['outcome']}"
    identity = endpoint_identity(request.zone_endpoint)
    with transaction.atomic(durable=True):
        workload = None
        if error.vm_id is not None:
            workload = _row_of(identity, request.zone_id, error.vm_id, site, run)
        if workload is None:
            workload = Workload(
                site=site,
                site_slug=site.slug,
                run=run,
                zone_id=request.zone_id,
                zone_endpoint=identity,
                vm_id=error.vm_id,
                created_at=now,
            )
        workload.state = WorkloadState.FAILED
        workload.reason = reason
        workload.error_code = error.code
        workload.allowed_countries = sorted(request.allowed_countries)
        workload.updated_at = now
        workload.actor_name = actor.label
        workload.save()
        ledger_append(
            event_type="workload.failed",
            actor=actor,
            subject_type=SUBJECT,
            subject_id=workload.pk,
            payload={
                "zone_id": request.zone_id,
                "vm_id": error.vm_id,
                "site_id": site.pk,
                "run_id": run.pk,
                "reason": reason,
                "code": error.code,
                "permanent": error.permanent,
                # What fedgov did to take the VM down, each attempt and the outcome.
                "cleanup": cleanup,
            },
        )
    logger.warning("site %s run %s blocked: %s", site.slug, run.pk, reason)
    return workload


def _digest(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _row_of(identity: str, zone_id: int, vm_id: int, site: Site, run: TrainingRun):
    """The live row recording this VM for this site and run, locked; ``None`` if there is none.

    Matching on the endpoint identity too keeps zone 0 of one oned from ever finding a row
    of zone 0 on another.
    """
    return (
        Workload.objects.select_for_update()
        .filter(zone_endpoint=identity, zone_id=zone_id, vm_id=vm_id, site=site, run=run)
        .exclude(state=WorkloadState.TERMINATED)
        .order_by("-id")
        .first()
    )


def _retire_reused(
    *, actor: Actor, identity: str, zone_id: int, vm_id: int, keep: Workload | None, now
) -> None:
    """Close running rows of *other* site/run pairs that hold this VM key.

    oned only reuses an id after losing its database; the VM such a row recorded is gone.
    Closing it keeps its evidence (the row is never overwritten) and frees the key.
    """
    stale = (
        Workload.objects.select_for_update()
        .filter(zone_endpoint=identity, zone_id=zone_id, vm_id=vm_id, state=WorkloadState.RUNNING)
        .exclude(pk=keep.pk if keep is not None else None)
        .order_by("id")
    )
    _terminate_rows(
        actor=actor,
        workloads=list(stale),
        reason=f"VM id {vm_id} was given to another VM by oned (its database was reset): "
        "the VM this row recorded is gone",
        now=now,
    )


def _terminate_rows(*, actor: Actor, workloads: list[Workload], reason: str, now) -> None:
    for workload in workloads:
        workload.state = WorkloadState.TERMINATED
        workload.reason = reason
        workload.terminated_at = now
        workload.updated_at = now
        workload.actor_name = actor.label
        workload.save()
        ledger_append(
            event_type="workload.terminated",
            actor=actor,
            subject_type=SUBJECT,
            subject_id=workload.pk,
            payload={
                "zone_id": workload.zone_id,
                "vm_id": workload.vm_id,
                "site_id": workload.site_id,
                "run_id": workload.run_id,
                "reason": reason,
            },
        )


def _mark_terminated(*, actor: Actor, workloads: list[Workload], reason: str) -> None:
    with transaction.atomic(durable=True):
        _terminate_rows(actor=actor, workloads=workloads, reason=reason, now=clock.now())


def workloads_mark_gone(*, actor: Actor, run: TrainingRun, zone_endpoints, reason: str) -> int:
    """Mark the run's running workloads on zones that no longer exist as terminated.

    For a zone that ended with the process that served it (the oned stand-in of a killed
    ``manage.py federate``): no zone is left to ask, its SuperNode "VMs" were that
    process's children, reaped with it. Raises ``InvalidInput`` without a reason.
    Returns how many rows were marked. Ledger: ``workload.terminated`` per workload.
    """
    if not (reason or "").strip():
        raise InvalidInput({"reason": ["a reason is required"]})
    identities = {endpoint_identity(e) for e in zone_endpoints}
    gone = [
        w
        for w in Workload.objects.filter(run=run, state=WorkloadState.RUNNING).order_by("id")
        if w.zone_endpoint in identities
    ]
    if gone:
        _mark_terminated(actor=actor, workloads=gone, reason=reason.strip())
    return len(gone)


def workload_terminate(*, actor: Actor, site: Site, run: TrainingRun, reason: str) -> int:
    """Terminate the site's SuperNode VMs for ``run`` and mark their rows terminated.

    Returns how many running workloads were marked. Raises ``InvalidInput`` without a
    reason or zone binding, ``OpenNebulaError`` when the zone refuses (nothing is written;
    reconciliation retries). Ledger: ``workload.terminated`` per workload.
    """
    if not (reason or "").strip():
        raise InvalidInput({"reason": ["a reason is required"]})
    request = _request(site, run, frozenset(), {})
    _provisioner().terminate(request)
    # Only rows on the endpoint just asked: a row from an earlier binding names a VM this
    # call did not touch, and is left running for reconciliation rather than mislabelled.
    running = list(
        Workload.objects.filter(
            site=site,
            run=run,
            state=WorkloadState.RUNNING,
            zone_endpoint=endpoint_identity(request.zone_endpoint),
            zone_id=request.zone_id,
        ).order_by("id")
    )
    if running:
        _mark_terminated(actor=actor, workloads=running, reason=reason.strip())
    return len(running)


@dataclass
class ReconcileReport:
    """What one sweep saw and did."""

    zones: int = 0
    listed: int = 0
    kept: list[tuple[int, int]] = field(default_factory=list)
    terminated: list[tuple[int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _active_wanted() -> set[tuple[int, int]]:
    return set(
        Workload.objects.filter(
            state=WorkloadState.RUNNING, run__status=RunStatus.ACTIVE
        ).values_list("site_id", "run_id")
    )


def workloads_reconcile(
    *, actor: Actor, wanted: set[tuple[int, int]] | None = None
) -> ReconcileReport:
    """Terminate every fedgov-labelled VM, in every configured zone, no active run wants.

    A VM is kept only if its (site id, run id) labels are in ``wanted`` (default: running
    workloads of active runs) and a running ``Workload`` row records it on the same
    endpoint, zone and VM id. A VM oned is already taking down (SHUTDOWN, EPILOG, ...) is
    never terminated again. A zone that cannot be listed is reported in ``errors`` and
    skipped; the next sweep retries. Running rows whose VM has vanished from a listed zone,
    or is ending, are marked terminated. A second sweep right after changes and logs nothing.
    Ledger: ``workload.terminated`` for each VM terminated or found gone.
    """
    wanted = _active_wanted() if wanted is None else set(wanted)
    report = ReconcileReport()
    provisioner = _provisioner()
    bindings = {
        (endpoint_identity(endpoint), endpoint, zone_id, ref)
        for endpoint, zone_id, ref in Site.objects.exclude(one_zone_endpoint="")
        .exclude(one_credentials_ref="")
        .values_list("one_zone_endpoint", "one_zone_id", "one_credentials_ref")
        .distinct()
    }
    seen: set[tuple[str, int, int]] = set()
    listed_zones: set[tuple[str, int]] = set()
    for identity, endpoint, zone_id, ref in sorted(bindings):
        if (identity, zone_id) in listed_zones:
            continue  # two sites sharing one zone (perhaps spelt differently)
        report.zones += 1
        try:
            vms = provisioner.list_managed(endpoint=endpoint, zone_id=zone_id, credentials_ref=ref)
        except OpenNebulaError as exc:
            report.errors.append(str(exc))
            logger.warning("reconcile: zone %s at %s not listed: %s", zone_id, identity, exc)
            continue
        listed_zones.add((identity, zone_id))
        for vm in vms:
            key = (identity, vm.zone_id, vm.vm_id)
            if key in seen:
                continue
            seen.add(key)
            report.listed += 1
            row = Workload.objects.filter(
                zone_endpoint=identity,
                zone_id=vm.zone_id,
                vm_id=vm.vm_id,
                state=WorkloadState.RUNNING,
            ).first()
            if vm.ending:
                if row is not None:
                    _mark_terminated(
                        actor=actor,
                        workloads=[row],
                        reason=f"reconcile: VM is {vm.state} in its zone",
                    )
                continue
            if row is not None and (row.site_id, row.run_id) in wanted:
                report.kept.append((vm.zone_id, vm.vm_id))
                continue
            if row is None:
                reason = "reconcile: no running workload records this VM"
            else:
                reason = f"reconcile: run {row.run_id} no longer wants site {row.site_id}"
            try:
                provisioner.terminate_vm(
                    endpoint=endpoint, zone_id=zone_id, credentials_ref=ref, vm_id=vm.vm_id
                )
            except OpenNebulaError as exc:
                report.errors.append(str(exc))
                continue
            report.terminated.append((vm.zone_id, vm.vm_id))
            _record_reconciled(actor=actor, vm=vm, row=row, reason=reason, identity=identity)
    gone = [
        w
        for w in Workload.objects.filter(state=WorkloadState.RUNNING)
        if (w.zone_endpoint, w.zone_id) in listed_zones
        and (w.zone_endpoint, w.zone_id, w.vm_id) not in seen
    ]
    if gone:
        _mark_terminated(actor=actor, workloads=gone, reason="reconcile: VM no longer in its zone")
    return report


def _record_reconciled(
    *, actor: Actor, vm, row: Workload | None, reason: str, identity: str
) -> None:
    if row is not None:
        _mark_terminated(actor=actor, workloads=[row], reason=reason)
        return
    with transaction.atomic(durable=True):
        ledger_append(
            event_type="workload.terminated",
            actor=actor,
            subject_type="opennebula.vm",
            # subject_id holds 64 characters: the endpoint goes in as a short digest.
            subject_id=f"{vm.zone_id}:{vm.vm_id}@{_digest(identity)}",
            payload={
                "zone_endpoint": identity,
                "zone_id": vm.zone_id,
                "vm_id": vm.vm_id,
                "site_id": vm.site_id,
                "run_id": vm.run_id,
                "reason": reason,
            },
        )
