"""Admin pieces for site stewards: rows scoped to their site, and the consent CSV upload.

A steward's group permissions (fedgov/migrations/0002_role_permissions.py) let them
view sites, datasets and consents and add consent events; these mixins make sure they
see and upload for their own site only.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites import services
from sites.consent_csv import parse_consent_csv, row_errors_by_line, too_large
from sites.models import Dataset
from sites.permissions import scope_to_site

# 50,000 events (services.MAX_CONSENT_BATCH) of ~100 bytes each, with room to spare.
DEFAULT_MAX_CSV_BYTES = 8 * 1024 * 1024


def max_csv_bytes() -> int:
    return getattr(settings, "FEDGOV_CONSENT_CSV_MAX_BYTES", DEFAULT_MAX_CSV_BYTES)


class SiteScopedAdmin(admin.ModelAdmin):
    """Every row for the roles that see all sites; one site's rows for its steward."""

    site_field = "site"

    def get_queryset(self, request):
        return scope_to_site(super().get_queryset(request), request.user, self.site_field)


class ConsentUploadForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), label=_("Dataset"))
    file = forms.FileField(
        label=_("File"), help_text=_("CSV, comma- or semicolon-separated, UTF-8")
    )

    def __init__(self, *args, datasets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets


class ConsentUploadMixin:
    """``…/consentevent/upload/``: record a CSV of grants and withdrawals, all or nothing."""

    def has_upload_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sites.add_consentevent")

    def get_urls(self):
        custom = [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="sites_consentevent_upload",
            )
        ]
        return custom + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra = dict(extra_context or {})
        if self.has_upload_permission(request):
            extra["upload_url"] = reverse("admin:sites_consentevent_upload")
        return super().changelist_view(request, extra_context=extra)

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_upload_permission(request):
            raise PermissionDenied
        # The steward's own site's datasets only: another site's id is "not a valid choice".
        datasets = scope_to_site(
            Dataset.objects.select_related("site").order_by("site__slug", "name"),
            request.user,
            "site",
        )
        form = ConsentUploadForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
            datasets=datasets,
        )
        problems: list[str] = []
        if request.method == "POST" and form.is_valid():
            problems = self._record(request, form)
            if not problems:
                return HttpResponseRedirect(reverse("admin:sites_consentevent_changelist"))
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": _("Upload consent (CSV)"),
            "opts": self.model._meta,  # type: ignore[attr-defined]
            "form": form,
            "problems": problems,
            "max_bytes": max_csv_bytes(),
        }
        status = 400 if request.method == "POST" else 200
        return TemplateResponse(
            request, "admin/sites/consentevent/upload.html", context, status=status
        )

    def _record(self, request: HttpRequest, form: ConsentUploadForm) -> list[str]:
        upload = form.cleaned_data["file"]
        limit = max_csv_bytes()
        # The size Django already knows, before a byte is parsed; read() is bounded too.
        if upload.size > limit:
            return [too_large(upload.size, limit)]
        dataset = form.cleaned_data["dataset"]
        try:
            parsed = parse_consent_csv(upload.read(limit + 1), max_bytes=limit)
        except InvalidInput as exc:
            return list(exc.errors.get("file", [str(exc)]))
        try:
            result = services.consent_record_batch(
                actor=Actor.of(request.user),
                dataset=dataset,
                events=parsed.events,
                lines=parsed.lines,
            )
        except InvalidInput as exc:
            return [*row_errors_by_line(exc), *exc.errors.get("non_field_errors", [])]
        self.message_user(  # type: ignore[attr-defined]
            request,
            _(
                "%(dataset)s: %(events)s consent events recorded (%(granted)s grants, "
                "%(withdrawn)s withdrawals; batch %(batch)s)."
            )
            % {
                "dataset": dataset,
                "events": result.events,
                "granted": result.granted,
                "withdrawn": result.withdrawn,
                "batch": result.batch_id,
            },
            messages.SUCCESS,
        )
        return []
