"""Every environment variable fedgov reads is in the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

APPS = ("fedgov", "audit", "sites", "opennebula", "training", "reports", "dashboard")
READ = re.compile(
    r"""(?:environ(?:\.get)?\(|environ\[|getenv\(|env_(?:str|bool|int|list)\()\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# Not configuration: set by fedgov itself for processes it starts, or by the OS.
NOT_CONFIGURATION = {
    "DJANGO_SETTINGS_MODULE",  # set by manage.py and the WSGI module
    "FEDGOV_BENCH_UNGOVERNED",  # bench/ sets it on its own baseline's ClientApp
    "FEDGOV_FLOWER_POLL_CAP",  # the Flower supervisor sets it on the processes it starts
    "HOME",
    "LANG",
    "PATH",
}


def _names_read() -> set[str]:
    root = Path(settings.BASE_DIR)
    names = set()
    for app in APPS:
        for path in (root / app).rglob("*.py"):
            names.update(READ.findall(path.read_text()))
    return names


def _readme_table() -> str:
    text = (Path(settings.BASE_DIR) / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_every_variable_fedgov_reads_is_in_the_readme_table():
    table = _readme_table()
    names = _names_read()
    assert {"DATABASE_URL", "FEDGOV_OTP_ISSUER", "FEDGOV_WITNESS_MAX_LAG"} <= names
    missing = sorted(n for n in names - NOT_CONFIGURATION if f"`{n}`" not in table)
    assert not missing, f"add to README.md's configuration table: {missing}"
