"""Append-only at the database for the evidence that arrives after a checkpoint: RFC 3161
tokens and witness cosignatures, guarded like the ledger's own tables (``audit.triggers``)."""

from django.db import migrations

from audit import triggers


def install_triggers(apps, schema_editor):
    triggers.install(schema_editor.connection, tables=triggers.WITNESS_TABLES)


def uninstall_triggers(apps, schema_editor):
    triggers.uninstall(schema_editor.connection, tables=triggers.WITNESS_TABLES)


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_checkpoint_timestamp")]

    operations = [migrations.RunPython(install_triggers, uninstall_triggers)]
