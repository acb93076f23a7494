"""Trusted time for checkpoints: an RFC 3161 token from the configured TSA per checkpoint.

After a checkpoint is signed (and committed), fedgov asks ``FEDGOV_TSA_URL`` for a token
over SHA-256 of the signed note and stores it once it has checked it against the pinned
TSA certificates (``FEDGOV_TSA_CERT_FILES``). A TSA that is down delays the timestamp
(the next checkpoint run asks again) and never blocks appending or signing, as with
witnesses. ``ledger_verify`` re-checks every stored token (``problems``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from asn1crypto import x509
from django.conf import settings

from audit import tsa
from audit.models import Checkpoint, CheckpointTimestamp
from fedgov import clock

logger = logging.getLogger(__name__)

NO_TRUSTED_TIME = (
    "no trusted time: FEDGOV_TSA_URL is not set, checkpoints carry no RFC 3161 timestamp"
)


@dataclass(frozen=True)
class TimestampOutcome:
    size: int
    stored: CheckpointTimestamp | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.stored is not None


def configured() -> bool:
    return bool(settings.FEDGOV_TSA_URL)


def pinned_certs() -> list[x509.Certificate]:
    return tsa.load_pinned(list(settings.FEDGOV_TSA_CERT_FILES))


def checkpoint_timestamp(*, size: int | None = None) -> TimestampOutcome:
    """Date the checkpoint at ``size`` (default: the latest) with the TSA, once.

    Returns the stored token, the one already stored, or no token with the reason (TSA
    unset, down, or answering with a token that does not check); logs a failure and
    raises nothing for it.
    """
    query = Checkpoint.objects.order_by("-size")
    row = query.filter(size=size).first() if size is not None else query.first()
    if row is None:
        return TimestampOutcome(size or 0, None, "no checkpoint")
    existing = CheckpointTimestamp.objects.filter(checkpoint=row).first()
    if existing is not None:
        return TimestampOutcome(row.size, existing, "already timestamped")
    if not configured():
        return TimestampOutcome(row.size, None, NO_TRUSTED_TIME)
    data = row.note.encode()
    try:
        token = tsa.request_token(settings.FEDGOV_TSA_URL, data, settings.FEDGOV_TSA_TIMEOUT)
    except tsa.TimestampError as exc:
        logger.warning("checkpoint at size %s not timestamped: %s", row.size, exc)
        return TimestampOutcome(row.size, None, str(exc))
    check = tsa.check_token(token, data, pinned_certs())
    if not check.ok or check.time is None:
        # Stored, such a token would make ledger_verify fail on the TSA's error, not ours.
        logger.warning("checkpoint at size %s: the TSA's token %s", row.size, check.problem)
        return TimestampOutcome(row.size, None, check.problem)
    CheckpointTimestamp.objects.bulk_create(
        [
            CheckpointTimestamp(
                checkpoint=row,
                token=token,
                gen_time=check.time,
                tsa_url=settings.FEDGOV_TSA_URL,
                received_at=clock.now(),
            )
        ],
        ignore_conflicts=True,
    )
    stored = CheckpointTimestamp.objects.get(checkpoint=row)
    return TimestampOutcome(row.size, stored, "timestamped")


def problems() -> list[str]:
    """What is wrong with the stored tokens, checked against the pinned TSA certificates."""
    found: list[str] = []
    if not settings.FEDGOV_TSA_CERT_FILES:
        return found  # nothing to check them against: ``summary`` says they went unchecked
    rows = CheckpointTimestamp.objects.select_related("checkpoint").order_by("checkpoint_id")
    pinned = pinned_certs()
    for row in rows:
        check = tsa.check_token(bytes(row.token), row.checkpoint.note.encode(), pinned)
        if not check.ok:
            found.append(
                f"timestamp of the checkpoint at size {row.checkpoint_id}: {check.problem}"
            )
        elif check.time != row.gen_time:
            found.append(
                f"timestamp of the checkpoint at size {row.checkpoint_id}: the row says "
                f"{row.gen_time}, the token {check.time}"
            )
        elif check.time < row.checkpoint.created_at:
            # The note states its own time; a TSA cannot date it before it was signed.
            found.append(
                f"timestamp of the checkpoint at size {row.checkpoint_id} ({check.time}) is "
                f"older than the checkpoint ({row.checkpoint.created_at})"
            )
    return found


def summary() -> str:
    """One line for ledger_verify: how many checkpoints carry trusted time."""
    stamped = CheckpointTimestamp.objects.count()
    if not settings.FEDGOV_TSA_CERT_FILES:
        if stamped:
            return (
                f"trusted time not checked: {stamped} checkpoint timestamp(s) stored, but no "
                "TSA certificate is pinned (set FEDGOV_TSA_CERT_FILES)"
            )
        return NO_TRUSTED_TIME
    total = Checkpoint.objects.count()
    source = f" from {settings.FEDGOV_TSA_URL}" if settings.FEDGOV_TSA_URL else ""
    return (
        f"trusted time: {stamped} of {total} checkpoints carry an RFC 3161 timestamp{source}, "
        "each checked against the pinned TSA certificate"
    )
