"""Admin list of reports with download links; reports are requested, never edited, here."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import FedgovError, InvalidInput
from reports.data import Period, run_ref
from reports.models import Report
from reports.services import report_generate, requester_language
from training.models import TrainingRun


class ReportRequestForm(forms.Form):
    """What the API's POST /reports takes: a run, or a period, or a run within a period."""

    run = forms.ModelChoiceField(
        queryset=TrainingRun.objects.order_by("-pk"),
        required=False,
        label=_("Run"),
        empty_label=_("(any run)"),
    )
    period_start = forms.DateTimeField(
        required=False,
        label=_("Period start"),
        help_text=_("YYYY-MM-DD HH:MM, UTC; leave empty for the whole run"),
    )
    period_end = forms.DateTimeField(required=False, label=_("Period end"))
    language = forms.ChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        label=_("Language"),
        help_text=_("The PDF's language; the evidence bundle is the same in every language."),
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("period_start"), cleaned.get("period_end")
        if (start is None) != (end is None):
            raise forms.ValidationError(_("Give both ends of the period, or neither."))
        if cleaned.get("run") is None and start is None:
            raise forms.ValidationError(_("Name a run or a period."))
        return cleaned


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    # The downloads sit beside the status: at the end of a wide row they fell off screen.
    list_display = [
        "public_id",
        "run_name",
        "status",
        "progress",
        "downloads",
        "requested_by_name",
        "language",
        "created_at",
        "period_start",
        "period_end",
    ]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Report._meta.fields] + ["downloads"]

    @admin.display(description=_("Download"))
    def downloads(self, obj: Report) -> str:
        if obj.status != "done":
            return "—"
        url = reverse("report-download", kwargs={"public_id": obj.public_id})
        return format_html_join(
            " · ",
            '<a href="{}?file={}">{}</a>',
            [(url, "pdf", "PDF"), (url, "bundle", _("evidence bundle"))],
        )

    def has_module_permission(self, request) -> bool:
        return roles.has_role(request.user, roles.LEGAL, roles.DPO, roles.AUDITOR)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        # "Add" here is requesting a report (reports.add_report: Legal and DPO); the
        # service still requires the second factor of whoever asks.
        return request.user.has_perm("reports.add_report")

    def add_view(self, request, form_url="", extra_context=None):
        """Request a signed report; the worker builds it and the list shows its progress."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ReportRequestForm(
            request.POST if request.method == "POST" else None,
            initial={"language": requester_language(Actor.of(request.user))},
        )
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            run = run_ref(run_id=data["run"].pk) if data["run"] else None
            start, end = data["period_start"], data["period_end"]
            try:
                report = report_generate(
                    actor=Actor.of(request.user),
                    run=run,
                    period=Period(start, end) if start else None,
                    language=data.get("language") or None,
                )
            except InvalidInput as exc:
                form.add_error(None, exc.message)
            except FedgovError as exc:
                messages.error(request, _("Report not requested: %(reason)s") % {"reason": exc})
            else:
                messages.success(
                    request,
                    _(
                        "Report %(report)s requested; it is signed in the background and its "
                        "downloads appear here when it is done."
                    )
                    % {"report": report.public_id},
                )
                return HttpResponseRedirect(reverse("admin:reports_report_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Request a signed report"),
            "opts": self.model._meta,
            "form": form,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/reports/report/request.html", context)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
