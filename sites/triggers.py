# ruff: noqa: S608  (every name in this SQL is a constant of this module; none comes from input)
"""Triggers that keep ``sites_consentstatecache`` honest whatever writes consent.

Every INSERT, UPDATE or DELETE on ``sites_consent`` bumps the ``generation`` of each
(dataset, purpose) it touches and clears that row's cached lists, in the writer's own
transaction: a service, a ``bulk_create``, the admin, a raw SQL statement. The gate uses a
cached state only while its ``computed_generation`` equals ``generation``, so no consent
write can leave a cached allow-list in use (``sites.services.consent_states_current``).
A touched key with no cache row gets one with ``computed_generation = -1`` (never
current): a gate that read "no row" before the write then finds its own upsert stale.

PostgreSQL runs one statement-level trigger per operation over its transition tables (a
bulk insert of a million rows costs one upsert per dataset, not per row), and a TRUNCATE
trigger, since TRUNCATE fires no row trigger. SQLite has no statement triggers; its row
triggers do the same per row (its DELETE without WHERE keeps firing them: the truncate
optimisation is off on a table with triggers, https://sqlite.org/lang_delete.html).
"""

from __future__ import annotations

from typing import Any

CACHE = "sites_consentstatecache"
_CLEAR = "computed_generation = -1, lapsed_json = '[]', allowed_text = ''"
_COLUMNS = (
    "dataset_id, purpose_id, generation, computed_generation, valid_from_us, valid_until_us,"
    " eligible, total, withdrawn, lapsed_json, allowed_text"
)


def _pg_bump(table: str) -> str:
    # ORDER BY: concurrent writers lock the cache rows in one order (no deadlock between
    # two bulk writes); DISTINCT: ON CONFLICT may touch a row only once per statement.
    # Every name here is a constant of this module, none comes from input.
    return f"""
        INSERT INTO {CACHE} ({_COLUMNS})
        SELECT DISTINCT dataset_id, purpose_id, 1, -1, NULL::bigint, NULL::bigint, 0, 0, 0,
               '[]', ''
        FROM {table} ORDER BY dataset_id, purpose_id
        ON CONFLICT (dataset_id, purpose_id) DO UPDATE
        SET generation = {CACHE}.generation + 1, {_CLEAR};
    """


_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION sites_consent_state_invalidate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE {CACHE} SET generation = generation + 1, {_CLEAR};
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_pg_bump("new_rows")}
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_pg_bump("old_rows")}
    END IF;
    RETURN NULL;
END
$$
"""

_PG_TRIGGERS = (
    "CREATE TRIGGER sites_consent_state_ins AFTER INSERT ON sites_consent "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION sites_consent_state_invalidate()",
    "CREATE TRIGGER sites_consent_state_upd AFTER UPDATE ON sites_consent "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION sites_consent_state_invalidate()",
    "CREATE TRIGGER sites_consent_state_del AFTER DELETE ON sites_consent "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION sites_consent_state_invalidate()",
    "CREATE TRIGGER sites_consent_state_trunc AFTER TRUNCATE ON sites_consent "
    "FOR EACH STATEMENT EXECUTE FUNCTION sites_consent_state_invalidate()",
)


def _sqlite_bump(row: str) -> str:
    return f"""
        INSERT INTO {CACHE} ({_COLUMNS})
        VALUES ({row}.dataset_id, {row}.purpose_id, 1, -1, NULL, NULL, 0, 0, 0, '[]', '')
        ON CONFLICT (dataset_id, purpose_id) DO UPDATE
        SET generation = generation + 1, {_CLEAR};
    """


_SQLITE_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS sites_consent_state_ins AFTER INSERT ON sites_consent "
    f"BEGIN {_sqlite_bump('NEW')} END",
    "CREATE TRIGGER IF NOT EXISTS sites_consent_state_upd AFTER UPDATE ON sites_consent "
    f"BEGIN {_sqlite_bump('OLD')} {_sqlite_bump('NEW')} END",
    "CREATE TRIGGER IF NOT EXISTS sites_consent_state_del AFTER DELETE ON sites_consent "
    f"BEGIN {_sqlite_bump('OLD')} END",
)

NAMES = (
    "sites_consent_state_ins",
    "sites_consent_state_upd",
    "sites_consent_state_del",
    "sites_consent_state_trunc",
)


def install(connection: Any) -> None:
    """Create the triggers on ``connection`` (idempotent)."""
    uninstall(connection)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
            for sql in _PG_TRIGGERS:
                cursor.execute(sql)
        else:
            for sql in _SQLITE_TRIGGERS:
                cursor.execute(sql)


def uninstall(connection: Any) -> None:
    with connection.cursor() as cursor:
        for name in NAMES:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON sites_consent")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION IF EXISTS sites_consent_state_invalidate()")
