"""Retention of the ledger's contents, and the legal holds that suspend it (services).

After ``FEDGOV_LEDGER_RETENTION_DAYS`` an entry's contents (payload and actor) are
removed; its sequence number, type, subject, time and leaf hash stay, so every proof and
checkpoint still verifies and the log still shows that an event took place. An entry is
redacted only when a signed checkpoint already covers it and no active legal hold covers
it. Each run, each hold placed and each hold released is a ledger event.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Q
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.models import Checkpoint, LedgerEntry, LegalHold
from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionOutcome:
    """What a retention run did (or, dry, would do)."""

    cutoff: datetime
    retention_days: int
    redacted: int
    first_seq: int | None
    last_seq: int | None
    held: int
    awaiting_checkpoint: int
    active_holds: int
    dry_run: bool


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _hold_filter(hold: LegalHold) -> Q:
    # An empty Q() would match nothing in exclude(); a hold on everything must match all.
    covered = Q(seq__gte=0)
    if hold.subject_type:
        covered &= Q(subject_type=hold.subject_type, subject_id=hold.subject_id)
    if hold.held_from is not None:
        covered &= Q(created_at__gte=hold.held_from)
    if hold.held_until is not None:
        covered &= Q(created_at__lte=hold.held_until)
    return covered


def held_filter(holds: list[LegalHold]) -> Q | None:
    """The entries the given holds cover, or None when they cover none."""
    combined = None
    for hold in holds:
        part = _hold_filter(hold)
        combined = part if combined is None else combined | part
    return combined


def legal_hold_place(
    *,
    actor: Actor,
    reference: str,
    reason: str,
    subject_type: str = "",
    subject_id: str | int | None = "",
    held_from: datetime | None = None,
    held_until: datetime | None = None,
) -> LegalHold:
    """Place a hold; retention skips what it covers until it is released.

    Raises ``InvalidInput`` naming the field for an empty reference or reason, half a
    subject, or a period that ends before it starts.
    """
    # Lazy reasons: the admin form or API response shows them in its reader's language.
    errors: dict[str, list[Any]] = {}
    reference, reason = (reference or "").strip(), (reason or "").strip()
    subject_type = (subject_type or "").strip()
    subject_id = "" if subject_id is None else str(subject_id).strip()
    if not reference:
        errors["reference"] = [_("a case or matter reference is required")]
    elif len(reference) > 64:
        errors["reference"] = [_("at most 64 characters")]
    if not reason:
        errors["reason"] = [_("say why the entries must be kept")]
    if bool(subject_type) != bool(subject_id):
        field = "subject_id" if subject_type else "subject_type"
        errors[field] = [
            _("give both subject_type and subject_id, or neither for the whole ledger")
        ]
    for name, value in (("subject_type", subject_type), ("subject_id", subject_id)):
        if len(value) > 64:
            errors[name] = [_("at most 64 characters")]
    if held_from and held_until and held_until < held_from:
        errors["held_until"] = [_("must not be before held_from")]
    if errors:
        raise InvalidInput(errors)
    with transaction.atomic():
        hold = LegalHold.objects.create(
            reference=reference,
            reason=reason,
            subject_type=subject_type,
            subject_id=subject_id,
            held_from=held_from,
            held_until=held_until,
            placed_by=actor.label,
            placed_at=clock.now(),
        )
        ledger_append(
            event_type="legal_hold.placed",
            actor=actor,
            subject_type="legal_hold",
            subject_id=hold.pk,
            payload={
                "hold_id": hold.pk,
                # The reference and reason are free text: the ledger keeps their hashes.
                "reference_sha256": _digest(reference),
                "reason_sha256": _digest(reason),
                "subject_type": subject_type or None,
                "subject_id": subject_id or None,
                "held_from": held_from.isoformat() if held_from else None,
                "held_until": held_until.isoformat() if held_until else None,
            },
        )
    logger.info("legal hold %s placed on %s by %s", hold.pk, hold.scope(), actor)
    return hold


def legal_hold_release(*, actor: Actor, hold: LegalHold, reason: str) -> LegalHold:
    """Release an active hold. ``TransitionNotAllowed`` if it is already released."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput({"reason": [_("say why the hold ends")]})
    with transaction.atomic():
        locked = LegalHold.objects.select_for_update().get(pk=hold.pk)
        if locked.released_at is not None:
            raise TransitionNotAllowed(
                format_lazy(
                    _("legal hold {reference} was released on {date}"),
                    reference=locked.reference,
                    date=f"{locked.released_at:%Y-%m-%d}",
                )
            )
        locked.released_at = clock.now()
        locked.released_by = actor.label
        locked.release_reason = reason
        locked.save(update_fields=["released_at", "released_by", "release_reason"])
        ledger_append(
            event_type="legal_hold.released",
            actor=actor,
            subject_type="legal_hold",
            subject_id=locked.pk,
            payload={"hold_id": locked.pk, "reason_sha256": _digest(reason)},
        )
    logger.info("legal hold %s released by %s", locked.pk, actor)
    return locked


def retention_apply(*, actor: Actor, dry_run: bool = False) -> RetentionOutcome:
    """Redact the contents of entries older than the retention period.

    Skips entries an active hold covers and entries no signed checkpoint covers yet
    (they are redacted by a later run). Writes one ``ledger.retention_applied`` event
    when anything was redacted; a dry run writes nothing.
    """
    days = settings.FEDGOV_LEDGER_RETENTION_DAYS
    with transaction.atomic():
        cutoff = clock.now() - timedelta(days=days)
        holds = list(LegalHold.objects.select_for_update().filter(released_at__isnull=True))
        covered = Checkpoint.objects.aggregate(size=Max("size"))["size"] or 0
        # Trusted-key events hold no personal data and must stay replayable
        # (audit.trust.list_problems): retention leaves them whole.
        expired = LedgerEntry.objects.filter(
            redacted_at__isnull=True, created_at__lt=cutoff
        ).exclude(subject_type="trusted_key")
        held_q = held_filter(holds)
        held = expired.filter(held_q).count() if held_q is not None else 0
        eligible = expired.exclude(held_q) if held_q is not None else expired
        awaiting = eligible.filter(seq__gte=covered).count()
        chosen = eligible.filter(seq__lt=covered)
        span = chosen.aggregate(first=Min("seq"), last=Max("seq"), count=Count("seq"))
        redacted = span["count"]
        if redacted and not dry_run:
            chosen.update(payload="{}", actor_id=None, actor_repr="", redacted_at=clock.now())
            ledger_append(
                event_type="ledger.retention_applied",
                actor=actor,
                subject_type="ledger",
                subject_id="retention",
                payload={
                    "retention_days": days,
                    "cutoff": cutoff.isoformat(),
                    "redacted": redacted,
                    "first_seq": span["first"],
                    "last_seq": span["last"],
                    "held": held,
                    "active_holds": sorted(h.pk for h in holds),
                    "awaiting_checkpoint": awaiting,
                },
            )
    outcome = RetentionOutcome(
        cutoff=cutoff,
        retention_days=days,
        redacted=redacted,
        first_seq=span["first"],
        last_seq=span["last"],
        held=held,
        awaiting_checkpoint=awaiting,
        active_holds=len(holds),
        dry_run=dry_run,
    )
    logger.info(
        "retention %s: %s entries older than %s redacted, %s held, %s awaiting a checkpoint",
        "dry run" if dry_run else "applied",
        redacted,
        cutoff.date(),
        held,
        awaiting,
    )
    return outcome
