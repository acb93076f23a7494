"""Read-only admin for the ledger: entries and checkpoints can be viewed, never changed."""

from __future__ import annotations

from django.contrib import admin

from audit.models import Checkpoint, LedgerEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence is never added, changed or deleted through the admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["seq", "event_type", "subject_type", "subject_id", "actor_repr", "created_at"]
    list_filter = ["event_type", "subject_type"]
    search_fields = ["=subject_id", "=event_type"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "seq",
        "event_type",
        "actor_id",
        "actor_repr",
        "subject_type",
        "subject_id",
        "created_at",
        "payload",
        "leaf_hash_hex",
    ]
    exclude = ["leaf_hash"]
    show_full_result_count = False

    @admin.display(description="leaf hash")
    def leaf_hash_hex(self, entry: LedgerEntry) -> str:
        return bytes(entry.leaf_hash).hex()


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["size", "created_at", "key_id", "created_by"]
    readonly_fields = ["size", "root_hex", "created_at", "key_id", "created_by", "note"]
    exclude = ["root"]

    @admin.display(description="root hash")
    def root_hex(self, checkpoint: Checkpoint) -> str:
        return bytes(checkpoint.root).hex()
