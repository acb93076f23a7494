"""Django's ``flush``, able to empty the ledger on SQLite as TRUNCATE does on PostgreSQL.

Flushing erases the whole database on purpose (tests, a fresh demo). SQLite empties
tables with DELETE, which the append-only triggers refuse, so the triggers are lifted for
the flush and restored after it, whatever happens.
"""

from typing import Any

from django.core.management.commands import flush
from django.db import connections

from audit import triggers


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "sqlite" or not triggers.installed(connection):
            super().handle(**options)
            return
        triggers.uninstall(connection)
        try:
            super().handle(**options)
        finally:
            triggers.install(connection)
