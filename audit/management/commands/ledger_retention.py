"""``manage.py ledger_retention [--dry-run]``: remove old entries' contents, holds permitting."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.models import LegalHold
from audit.retention import retention_apply
from fedgov.actors import Actor


class Command(BaseCommand):
    help = (
        "Redact the payload and actor of ledger entries older than "
        "FEDGOV_LEDGER_RETENTION_DAYS, except those an active legal hold covers and those "
        "no signed checkpoint covers yet. Leaf hashes stay, so proofs still verify."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be redacted; change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = retention_apply(
            actor=Actor.system("ledger_retention"), dry_run=options["dry_run"]
        )
        verb = "would redact" if outcome.dry_run else "redacted"
        span = f" (seq {outcome.first_seq}..{outcome.last_seq})" if outcome.redacted else ""
        self.stdout.write(
            f"retention {outcome.retention_days} days: entries written before "
            f"{outcome.cutoff:%Y-%m-%d %H:%M} UTC are due"
        )
        self.stdout.write(f"{verb} {outcome.redacted} entries{span}")
        self.stdout.write(
            f"kept under {outcome.active_holds} active legal hold(s): {outcome.held} entries"
        )
        if outcome.awaiting_checkpoint:
            self.stdout.write(
                f"waiting for a signed checkpoint first: {outcome.awaiting_checkpoint} entries"
            )
        for hold in LegalHold.objects.filter(released_at__isnull=True):
            self.stdout.write(
                f"  hold {hold.reference}: {hold.scope()} (since {hold.placed_at:%Y-%m-%d})"
            )
