"""Celery tasks of the ledger: the periodic checkpoint."""

from __future__ import annotations

from audit.services import checkpoint_create_if_new
from fedgov.actors import Actor
from fedgov.tasks import fedgov_task


@fedgov_task(name="audit.checkpoint_if_new", soft_time_limit=30, time_limit=60)
def checkpoint_if_new() -> int | None:
    """Sign a checkpoint when the ledger grew since the last one; returns its size or None.

    Safe to run twice or concurrently: a second run finds the checkpoint already signed.
    """
    checkpoint = checkpoint_create_if_new(actor=Actor.system("celery-beat"))
    return checkpoint.size if checkpoint is not None else None
