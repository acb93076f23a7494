"""Read-only admin for recorded ledger verifications: evidence is never edited by hand."""

from __future__ import annotations

from django.contrib import admin

from dashboard.models import LedgerVerification
from fedgov.admin_identifiers import IdentifierColumns
from fedgov.admin_titles import InflectedTitles


@admin.register(LedgerVerification)
class LedgerVerificationAdmin(InflectedTitles, IdentifierColumns, admin.ModelAdmin):
    identifier_fields = ("id", "size", "first_bad_seq", "ledger_seq")
    list_display = [
        "finished_at",
        "ok",
        "size",
        "checkpoints",
        "first_bad_seq",
        "requested_by_name",
    ]
    list_filter = ["ok"]
    readonly_fields = [f.name for f in LedgerVerification._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
