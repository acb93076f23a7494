"""``manage.py messages``: refresh the root catalogue and compile every catalogue.

Extraction calls Django's makemessages, which needs GNU gettext (``apt-get install
gettext``): a translator's tool, never run by CI or ``make``. Compiling needs no system
package: polib writes each ``.mo`` (``--compile``), so a fresh machine can rebuild them.
tests/test_i18n_catalogue.py fails when either step was forgotten.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from fedgov import catalogue


class Command(BaseCommand):
    help = "Extract fedgov's strings into locale/ (needs xgettext), then compile every .po."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--compile", action="store_true", help="only compile .po into .mo (pure Python)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["compile"]:
            os.chdir(catalogue.ROOT)
            call_command(
                "makemessages",
                all=True,
                ignore_patterns=list(catalogue.ROOT_CATALOGUE_IGNORES),
                add_location="file",
                no_obsolete=True,
                verbosity=options["verbosity"],
            )
        for mo_path in catalogue.compile_catalogues():
            self.stdout.write(f"compiled {mo_path.relative_to(catalogue.ROOT)}")
