"""Celery tasks of the ledger: the periodic checkpoint and the daily retention run."""

from __future__ import annotations

from django.conf import settings

from audit.models import Checkpoint
from audit.retention import retention_apply
from audit.services import checkpoint_create_if_new
from audit.timestamping import checkpoint_timestamp, configured
from audit.witnessing import checkpoint_witness
from fedgov.actors import Actor
from fedgov.tasks import fedgov_task


@fedgov_task(name="audit.checkpoint_if_new", soft_time_limit=30, time_limit=60)
def checkpoint_if_new() -> int | None:
    """Sign a checkpoint when the ledger grew since the last one; returns its size or None.

    Then asks the TSA to date the latest checkpoint (``audit.timestamping``) and the
    policy's witnesses (``audit.witnessing``) to cosign the latest
    checkpoint while any of them has not.

    Safe to run twice or concurrently: a second run finds the checkpoint already signed.
    """
    checkpoint = checkpoint_create_if_new(actor=Actor.system("celery-beat"))
    if configured():
        # Also after the commit, and as forgiving: a TSA that is down is asked again by the
        # next beat (for the latest checkpoint) and blocks nothing.
        checkpoint_timestamp()
    if settings.FEDGOV_WITNESSES:
        # After the checkpoint committed: a witness that is down delays witnessing (the
        # next beat asks again) and blocks nothing.
        latest = Checkpoint.objects.order_by("-size").first()
        if latest is not None and latest.cosignatures.count() < len(settings.FEDGOV_WITNESSES):
            checkpoint_witness(size=latest.size)
    return checkpoint.size if checkpoint is not None else None


@fedgov_task(name="audit.apply_retention", soft_time_limit=600, time_limit=900)
def apply_retention() -> int:
    """Redact entries past the retention period that no legal hold covers; returns how many.

    Safe to run twice or concurrently: an entry is redacted once, and a second run finds
    nothing left to do.
    """
    return retention_apply(actor=Actor.system("celery-beat")).redacted
