"""Database triggers that refuse UPDATE and DELETE on the ledger's evidence tables.

The one exception is retention's redaction of an old entry's contents (``_REDACTION``).

Installed by migration ``0003_append_only_triggers`` on the ledger's own tables, and by
``0009_witness_evidence_append_only`` on the tables of RFC 3161 tokens and witness
cosignatures; ``uninstall``/``install`` exist for the SQLite ``flush`` command and for
tamper tests that must reach behind the guards.
PostgreSQL's TRUNCATE fires no row trigger (it needs table ownership); a truncated
ledger is still caught by ``ledger_verify`` against its signed checkpoints.
"""

from __future__ import annotations

from typing import Any

TABLES = ("audit_ledgerentry", "audit_subtreehash", "audit_checkpoint")
# Evidence about checkpoints that arrives after them: a timestamp authority's token and
# the witnesses' cosignatures. A stored row is only ever added, never changed: a changed
# token or cosignature would still fail its signature check, but a deleted one would
# silently lower what the checkpoint can prove (trusted time, k of n witnesses).
WITNESS_TABLES = ("audit_checkpointtimestamp", "audit_cosignature")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


# The one change an entry may undergo: retention removes its contents once, keeping its
# place, type, subject, time and leaf hash, and only under a signed checkpoint that
# already covers it (so the removed contents stay provable as they were).
_REDACTION = """
    OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL
    AND NEW.seq = OLD.seq AND NEW.leaf_hash = OLD.leaf_hash
    AND NEW.event_type = OLD.event_type AND NEW.subject_type = OLD.subject_type
    AND NEW.subject_id = OLD.subject_id AND NEW.created_at = OLD.created_at
    AND NEW.payload = '{}' AND NEW.actor_id IS NULL AND NEW.actor_repr = ''
    AND EXISTS (SELECT 1 FROM audit_checkpoint WHERE size > OLD.seq)
"""

_PG_ENTRY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_entry_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {_REDACTION} THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def _tables(connection: Any, tables: tuple[str, ...] | None) -> tuple[str, ...]:
    """``tables``, or every guarded table this schema has: migrations before 0007 install
    the guards while the witness tables do not exist yet."""
    if tables is not None:
        return tables
    present = set(connection.introspection.table_names())
    return TABLES + tuple(table for table in WITNESS_TABLES if table in present)


def install(
    connection: Any, *, redaction: bool = True, tables: tuple[str, ...] | None = None
) -> None:
    """Create the triggers on ``connection`` (idempotent), on ``tables`` or on all.

    ``redaction=False`` gives the guards of the schema before retention existed, for the
    migrations that run (forwards or backwards) while ``redacted_at`` does not.
    """
    tables = _tables(connection, tables)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
            cursor.execute(_PG_ENTRY_FUNCTION)
            for table in tables:
                function = (
                    "audit_entry_guard"
                    if table == "audit_ledgerentry" and redaction
                    else "audit_refuse_change"
                )
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                cursor.execute(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {function}()"
                )
        elif connection.vendor == "sqlite":
            for table in tables:
                for op in ("UPDATE", "DELETE"):
                    name = f"{table}_no_{op.lower()}"
                    when = (
                        f" WHEN NOT ({_REDACTION})"
                        if (table, op) == ("audit_ledgerentry", "UPDATE") and redaction
                        else ""
                    )
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
                    cursor.execute(
                        f"CREATE TRIGGER {name} BEFORE {op} ON {table}{when} BEGIN "
                        f"SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
                    )
        else:
            raise NotImplementedError(f"no append-only triggers for {connection.vendor}")


def uninstall(connection: Any, *, tables: tuple[str, ...] | None = None) -> None:
    """Drop the triggers (tamper tests, the SQLite flush); ``install`` puts them back.

    With ``tables``, only theirs, and PostgreSQL's shared functions stay."""
    everything = tables is None
    tables = _tables(connection, tables)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in tables:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            if everything:
                cursor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
                cursor.execute("DROP FUNCTION IF EXISTS audit_entry_guard()")
        elif connection.vendor == "sqlite":
            for table in tables:
                for op in ("update", "delete"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")


def installed(connection: Any) -> bool:
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
        return bool(cursor.fetchone()[0] > 0)
