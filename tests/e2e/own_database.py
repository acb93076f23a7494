"""A database of its own for an end-to-end test whose subprocesses run ``manage.py``.

On a PostgreSQL test run (CI's e2e pass) the subprocesses get a fresh PostgreSQL database
created next to pytest-django's test database and dropped afterwards, so they neither
clash with it nor leave anything behind; otherwise they get a SQLite file in the test's
temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings


def _server_url(db: dict, name: str) -> str:
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


@contextmanager
def own_database(tmp_path: Path, label: str) -> Iterator[str]:
    """Yield a ``DATABASE_URL`` for the subprocesses; PostgreSQL when the run is on it."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        yield f"sqlite:///{tmp_path / f'{label}.sqlite3'}"
        return
    import psycopg
    from psycopg import sql

    # PostgreSQL names stop at 63 bytes; the pid keeps parallel runs apart.
    name = f"{db['NAME']}_{label}_{os.getpid()}"[-63:]
    server = _server_url(db, "postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _server_url(db, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            # FORCE (PostgreSQL 13+) ends connections a killed subprocess left behind.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
