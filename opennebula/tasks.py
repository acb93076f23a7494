"""Celery tasks for OpenNebula: the reconciliation sweep (run by beat)."""

from __future__ import annotations

from fedgov.actors import Actor
from fedgov.tasks import fedgov_task
from opennebula.services import workloads_reconcile


# Idempotent: a second sweep finds nothing left to terminate. Zone errors are collected in
# the report rather than raised (one dead zone must not stop the others); beat's next
# tick is the retry.
@fedgov_task(name="opennebula.reconcile", soft_time_limit=600, time_limit=660)
def reconcile() -> dict:
    report = workloads_reconcile(actor=Actor.system("opennebula-reconcile"))
    return {
        "zones": report.zones,
        "listed": report.listed,
        "terminated": [list(key) for key in report.terminated],
        "errors": report.errors,
    }
