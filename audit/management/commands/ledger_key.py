"""``manage.py ledger_key list|rotate``: the ledger's signing keys."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from audit import keys, note


class Command(BaseCommand):
    help = (
        "list: every public key with its id, signed-note verifier key and whether it signs "
        "now. rotate: make a new active key; old keys stay for verifying."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "rotate"])

    def handle(self, *args, **options):
        if options["action"] == "rotate":
            try:
                key = keys.rotate()
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"new active key {key.key_id}")
        origin = settings.FEDGOV_LEDGER_ORIGIN
        for info in keys.key_infos():
            marker = "active " if info.active else "retired"
            vkey = note.verifier_key(origin, info.public_key)
            self.stdout.write(f"{marker} {info.key_id} {vkey}")
