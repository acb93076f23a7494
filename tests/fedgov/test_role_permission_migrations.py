"""Every fedgov migration that grants roles permissions is one ensure_roles restores."""

from __future__ import annotations

import importlib
import pkgutil

import fedgov.migrations
from fedgov import roles
from fedgov.apps import ROLE_PERMISSION_TABLES, role_permissions


def _grant_tables(module) -> list[str]:
    """Module-level dicts of role name -> permission names ("app.codename")."""
    found = []
    for name, value in vars(module).items():
        if (
            isinstance(value, dict)
            and value
            and set(value) <= set(roles.ALL_ROLES)
            and all(
                isinstance(perms, list | tuple)
                and all(isinstance(p, str) and "." in p for p in perms)
                for perms in value.values()
            )
        ):
            found.append(name)
    return found


def test_every_migration_granting_role_permissions_is_listed():
    listed = set(ROLE_PERMISSION_TABLES)
    granting = set()
    for info in pkgutil.iter_modules(fedgov.migrations.__path__):
        module_name = f"fedgov.migrations.{info.name}"
        module = importlib.import_module(module_name)
        granting |= {(module_name, table) for table in _grant_tables(module)}
    assert granting, "the scan found no grant table; it no longer matches the migrations"
    assert granting <= listed, f"not in fedgov.apps.ROLE_PERMISSION_TABLES: {granting - listed}"


def test_the_scan_recognises_a_grant_table():
    class Fake:
        GRANTS = {roles.DPO: ["sites.view_site"]}
        OTHER = {"x": 1}

    assert _grant_tables(Fake) == ["GRANTS"]


def test_role_permissions_merges_every_listed_table():
    merged = role_permissions()
    for module_name, table in ROLE_PERMISSION_TABLES:
        for role, perms in getattr(importlib.import_module(module_name), table).items():
            assert set(perms) <= set(merged[role])
