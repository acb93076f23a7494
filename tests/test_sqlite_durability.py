"""The embedded SQLite database: write-ahead log, synced at every commit.

WAL with ``synchronous=FULL`` keeps every committed transaction across a power loss, as
the rollback journal did (https://www.sqlite.org/pragma.html#pragma_synchronous), with one
fsync per commit; ``synchronous=NORMAL`` would not, so the test pins both pragmas.
"""

from __future__ import annotations

import subprocess
import sys

from django.conf import settings

PROBE = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    mode = cursor.fetchone()[0]
    cursor.execute("PRAGMA synchronous")
    sync = cursor.fetchone()[0]
print(connection.vendor, mode, sync)
"""


def test_the_embedded_database_logs_ahead_and_syncs_every_commit(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "fedgov.settings",
        "FEDGOV_VAR_DIR": str(tmp_path),
        "PYTHONPATH": ":".join(sys.path),
    }
    probe = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{PROBE}"],
        env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    # 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
    assert probe.stdout.split() == ["sqlite", "wal", "2"]
