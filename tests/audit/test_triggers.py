"""Append-only at the database: triggers refuse UPDATE and DELETE on every evidence table."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from audit import triggers
from audit.models import Checkpoint, LedgerEntry, SubtreeHash
from fedgov import roles


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "change"),
    [
        (LedgerEntry, {"payload": "{}"}),
        (SubtreeHash, {"hash": b"\x00" * 32}),
        (Checkpoint, {"note": "forged"}),
    ],
)
def test_database_refuses_update_and_delete_of_evidence(append, checkpoint, model, change):
    append(4)
    checkpoint()
    before = model.objects.count()
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        model.objects.update(**change)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        model.objects.all().delete()
    assert model.objects.count() == before


@pytest.mark.django_db
def test_raw_sql_cannot_reach_behind_the_guards_either(append):
    append(2)
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_ledgerentry WHERE seq = 1")
    assert LedgerEntry.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_ledger_and_keeps_the_guards(append, checkpoint):
    # Django's flush (tests, a fresh demo) empties every table; on SQLite that is DELETE.
    append(3)
    checkpoint()
    call_command("flush", interactive=False, verbosity=0)
    assert not LedgerEntry.objects.exists()
    assert triggers.installed(connection)
    # Roles come back after a flush too (fedgov.apps.ensure_roles), or later tests break.
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ALL_ROLES)
    append(2)
    assert list(LedgerEntry.objects.values_list("seq", flat=True)) == [0, 1]


@pytest.mark.django_db(transaction=True)
def test_upgrade_builds_the_tree_over_entries_written_before_it(key_dir):
    # Entries written by the first ledger (payload-only leaf hashes, no tree) are rehashed
    # and get their subtree hashes and head once, by migration 0003, then verify.
    import hashlib

    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    executor = MigrationExecutor(connection)
    executor.migrate([("audit", "0001_initial")])
    old = executor.loader.project_state([("audit", "0001_initial")]).apps
    Entry = old.get_model("audit", "LedgerEntry")
    for seq in range(5):
        body = f'{{"n":{seq}}}'
        Entry.objects.create(
            seq=seq,
            event_type="site.registered",
            actor_id=None,
            actor_repr="system:old",
            subject_type="site",
            subject_id=str(seq),
            created_at=timezone.now(),
            payload=body,
            leaf_hash=hashlib.sha256(b"\x00" + body.encode()).digest(),
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert triggers.installed(connection)
    assert SubtreeHash.objects.count() == 5 - bin(5).count("1")
    call_command("ledger_verify", "--no-progress")
