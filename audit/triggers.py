"""Database triggers that refuse UPDATE and DELETE on the ledger's evidence tables.

Installed by migration ``0003_append_only_triggers``; ``uninstall``/``install`` exist for
the SQLite ``flush`` command and for tamper tests that must reach behind the guards.
PostgreSQL's TRUNCATE fires no row trigger (it needs table ownership); a truncated
ledger is still caught by ``ledger_verify`` against its signed checkpoints.
"""

from __future__ import annotations

TABLES = ("audit_ledgerentry", "audit_subtreehash", "audit_checkpoint")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def install(connection) -> None:
    """Create the triggers on ``connection`` (idempotent)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
            for table in TABLES:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                cursor.execute(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
                )
        elif connection.vendor == "sqlite":
            for table in TABLES:
                for op in ("UPDATE", "DELETE"):
                    name = f"{table}_no_{op.lower()}"
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
                    cursor.execute(
                        f"CREATE TRIGGER {name} BEFORE {op} ON {table} BEGIN "
                        f"SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
                    )
        else:
            raise NotImplementedError(f"no append-only triggers for {connection.vendor}")


def uninstall(connection) -> None:
    """Drop the triggers (tamper tests, the SQLite flush); ``install`` puts them back."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in TABLES:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
        elif connection.vendor == "sqlite":
            for table in TABLES:
                for op in ("update", "delete"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")


def installed(connection) -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = %s",
                ["audit_ledgerentry_append_only"],
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = %s",
                ["audit_ledgerentry_no_update"],
            )
        return cursor.fetchone()[0] > 0
