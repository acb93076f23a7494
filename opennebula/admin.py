"""Read-only admin for workloads: evidence of where each SuperNode ran."""

from __future__ import annotations

from django.contrib import admin

from fedgov.admin_identifiers import IdentifierColumns
from opennebula.models import Workload


@admin.register(Workload)
class WorkloadAdmin(IdentifierColumns, admin.ModelAdmin):
    identifier_fields = ("zone_id", "vm_id", "host_id", "cluster_id", "datastore_id", "error_code")
    list_display = (
        "zone_id",
        "vm_id",
        "site_slug",
        "run",
        "state",
        "host",
        "host_country",
        "cluster_country",
        "datastore_country",
        "updated_at",
    )
    list_filter = ("state", "zone_id", "host_country")
    search_fields = ("site_slug", "host", "cluster", "datastore", "reason")
    readonly_fields = [f.name for f in Workload._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
