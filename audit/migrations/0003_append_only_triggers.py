"""Build the tree over entries written before it existed, then make the ledger append-only."""

import hashlib

from django.db import migrations

from audit import merkle, triggers
from audit.leaf import actor_pseudonym, format_time, leaf_document


def build_tree(apps, schema_editor):
    # Entries appended before subtree hashes existed hashed only their payload; rehash
    # them with the full leaf document once, before the triggers freeze them.
    Entry = apps.get_model("audit", "LedgerEntry")
    Subtree = apps.get_model("audit", "SubtreeHash")
    Head = apps.get_model("audit", "TreeHead")
    hashes, levels, size = [], [], 0
    for entry in Entry.objects.order_by("seq").iterator(chunk_size=2000):
        if entry.seq != size:
            raise RuntimeError(f"ledger entry {size} is missing; cannot build the tree")
        leaf = leaf_document(
            seq=entry.seq,
            event_type=entry.event_type,
            actor=actor_pseudonym(entry.actor_id, entry.actor_repr),
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            time=format_time(entry.created_at),
            payload=entry.payload,
        )
        digest = hashlib.sha256(b"\x00" + leaf).digest()
        Entry.objects.filter(seq=entry.seq).update(leaf_hash=digest)
        level, current = 0, digest
        while levels and levels[-1] == level:
            levels.pop()
            current = merkle.node_hash(hashes.pop(), current)
            level += 1
            Subtree.objects.create(level=level, idx=size >> level, hash=current)
        hashes.append(current)
        levels.append(level)
        size += 1
    if size:
        Head.objects.update_or_create(pk=1, defaults={"size": size, "frontier": b"".join(hashes)})


def install_triggers(apps, schema_editor):
    triggers.install(schema_editor.connection, redaction=False)


def uninstall_triggers(apps, schema_editor):
    triggers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_tree_and_checkpoints")]

    operations = [
        migrations.RunPython(build_tree, migrations.RunPython.noop),
        migrations.RunPython(install_triggers, uninstall_triggers),
    ]
