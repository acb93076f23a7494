"""``manage.py ledger_export --from SEQ --to SEQ OUT``: write an evidence bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.bundle import bundle_write
from fedgov.errors import InvalidInput


class Command(BaseCommand):
    help = (
        "Write entries FROM..TO with the checkpoints covering them, their inclusion proofs, "
        "consistency proofs between the checkpoints and the public keys, as a folder or, "
        "when OUT ends in .zip, a zip file. Verify it with `python -m audit.verify OUT`. "
        "On a damaged ledger the bundle is still written whole, marked damaged in its "
        "manifest, and the command exits 1 naming the first bad seq."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="first", type=int, required=True, metavar="SEQ")
        parser.add_argument("--to", dest="last", type=int, required=True, metavar="SEQ")
        parser.add_argument("out", type=Path, metavar="OUT")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = bundle_write(
                first_seq=options["first"], last_seq=options["last"], out=options["out"]
            )
        except InvalidInput as exc:
            raise CommandError(f"no bundle written: {exc.message}") from exc
        self.stdout.write(
            f"wrote {summary.path}: entries {summary.first_seq}..{summary.last_seq}, "
            f"{summary.checkpoints} checkpoint(s), proofs against size {summary.anchor_size}"
        )
        if summary.damaged_seq is not None:
            # The bundle is complete and says so in its manifest; the exit code says it too.
            raise CommandError(
                f"the ledger is damaged (first bad seq {summary.damaged_seq}); the bundle was "
                "written whole and marked damaged, and no checkpoint was signed"
            )
