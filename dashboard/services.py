"""Writes of the dashboard: recording a full ledger verification."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from audit import keys
from audit.integrity import verify_ledger
from audit.services import ledger_append
from dashboard.models import LedgerVerification
from fedgov import clock
from fedgov.actors import Actor

logger = logging.getLogger(__name__)

# Enough for a DPO to see where tampering starts; the command line lists every problem.
KEPT_PROBLEMS = 20


def ledger_verification_run(*, actor: Actor) -> LedgerVerification:
    """Recompute the whole ledger now and record what was found.

    The verification itself only reads (``audit.integrity.verify_ledger``, the same code
    as ``manage.py ledger_verify``). A passed verification is recorded with a
    ``ledger.verified`` event in the same transaction. A failed one is recorded without an
    event: appending to a ledger just shown to be inconsistent would extend a tree whose
    stored hashes cannot be trusted, so the row alone carries that evidence. Raises nothing
    for tampering; the result says it.
    """
    started = clock.now()
    trusted = keys.public_keys()
    report = verify_ledger(keys=trusted, origin=settings.FEDGOV_LEDGER_ORIGIN)
    finished = clock.now()
    first_bad = report.problems[0].seq if report.problems else None
    with transaction.atomic(durable=True):
        row = LedgerVerification.objects.create(
            started_at=started,
            finished_at=max(finished, started),
            ok=report.ok,
            size=report.size,
            checkpoints=report.checkpoints,
            trusted_keys=len(trusted),
            first_bad_seq=first_bad,
            problems=[str(p) for p in report.problems[:KEPT_PROBLEMS]],
            requested_by=actor.user,
            requested_by_name=actor.label,
        )
        if report.ok:
            entry = ledger_append(
                event_type="ledger.verified",
                actor=actor,
                subject_type="ledger",
                subject_id="ledger",
                payload={
                    "verification_id": row.pk,
                    "size": report.size,
                    "checkpoints": report.checkpoints,
                    "trusted_keys": len(trusted),
                    "ok": True,
                },
            )
            row.ledger_seq = entry.seq
            row.save(update_fields=["ledger_seq"])
    log = logger.info if report.ok else logger.error
    log("ledger verification %s by %s: size %s ok=%s", row.pk, actor, report.size, report.ok)
    return row
