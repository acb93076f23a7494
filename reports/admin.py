"""Admin list of reports with download links; reports are requested, never edited, here."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html_join

from fedgov import roles
from reports.models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "run_name",
        "period_start",
        "period_end",
        "status",
        "progress",
        "requested_by_name",
        "created_at",
        "downloads",
    ]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Report._meta.fields] + ["downloads"]

    @admin.display(description="Download")
    def downloads(self, obj: Report) -> str:
        if obj.status != "done":
            return "—"
        url = reverse("report-download", kwargs={"public_id": obj.public_id})
        return format_html_join(
            " · ", '<a href="{}?file={}">{}</a>', [(url, "pdf", "PDF"), (url, "bundle", "bundle")]
        )

    def has_module_permission(self, request) -> bool:
        return roles.has_role(request.user, roles.LEGAL, roles.DPO, roles.AUDITOR)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
