"""Store each entry's leaf document as a column the database generates from the others.

SQLite adds a stored generated column by rebuilding the table, which drops its
triggers; they are installed again at the end.
"""

from django.db import migrations, models

import audit.expressions
from audit import triggers
from audit.expressions import PG_CREATE, PG_DROP


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_CREATE)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_DROP)


def install_triggers(apps, schema_editor):
    triggers.install(schema_editor.connection, redaction=False)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_only_triggers")]

    operations = [
        migrations.RunPython(create_function, drop_function),
        migrations.AddField(
            model_name="ledgerentry",
            name="leaf",
            field=models.GeneratedField(
                db_persist=True,
                expression=audit.expressions.LeafDocument(),
                output_field=models.TextField(),
            ),
        ),
        migrations.RunPython(install_triggers, migrations.RunPython.noop),
    ]
