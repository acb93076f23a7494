"""Writes to the ledger. ``ledger_append`` is the one entry point every service uses."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785
from django.db import transaction

from audit.models import LedgerEntry
from fedgov import clock
from fedgov.actors import Actor


def canonical_json(payload: dict[str, Any]) -> bytes:
    return rfc8785.dumps(payload)


def ledger_append(
    *,
    event_type: str,
    actor: Actor,
    subject_type: str,
    subject_id: str | int,
    payload: dict[str, Any],
) -> LedgerEntry:
    """Append one event in the caller's transaction and return it.

    Must run inside ``transaction.atomic``: the event commits or rolls back with the
    change it records. Raises ``RuntimeError`` outside a transaction.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger_append must run inside the transaction of its change")
    body = canonical_json(payload)
    # Serialise appends: the lock on the last row is the order of the log.
    last = LedgerEntry.objects.select_for_update().order_by("-seq").first()
    seq = (last.seq + 1) if last else 0
    return LedgerEntry.objects.create(
        seq=seq,
        event_type=event_type,
        actor_id=actor.user_id,
        actor_repr=actor.label,
        subject_type=subject_type,
        subject_id=str(subject_id),
        created_at=clock.now(),
        payload=body.decode("utf-8"),
        leaf_hash=hashlib.sha256(b"\x00" + body).digest(),
    )
