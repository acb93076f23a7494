"""Admin for the ledger: entries and checkpoints can be viewed, never changed.

Legal holds are the exception that writes, and only through ``audit.retention``: Legal
and the DPO place a hold on its own page and release it behind a page that asks why.
A hold's row is never edited or deleted here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from audit.models import Checkpoint, Cosignature, LedgerEntry, LegalHold, TrustedKey
from audit.retention import legal_hold_place, legal_hold_release
from fedgov import roles
from fedgov.actors import Actor
from fedgov.admin_identifiers import IdentifierColumns
from fedgov.admin_titles import InflectedTitles
from fedgov.errors import FedgovError, InvalidInput

logger = logging.getLogger("fedgov.admin.holds")

# Django's own msgids, translated by its catalogues: through a name of their own, so
# that fedgov's extraction does not copy them into fedgov's catalogue (as admin_titles).
_django = gettext

# As the API: Auditors read holds; Legal and the DPO (superusers count as DPO) act on them.
HOLD_VIEWERS = (roles.DPO, roles.LEGAL, roles.AUDITOR)
HOLD_KEEPERS = (roles.LEGAL, roles.DPO)


_ModelT = TypeVar("_ModelT", bound=Model)


class ReadOnlyAdmin(admin.ModelAdmin[_ModelT]):
    """Evidence is never added, changed or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: _ModelT | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _ModelT | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _ModelT | None = None) -> bool:
        return False


class RedactedFilter(admin.SimpleListFilter):
    title = _("redacted")
    parameter_name = "redacted"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[tuple[str, str]]:
        return [("yes", _django("Yes")), ("no", _django("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(redacted_at__isnull=self.value() == "no")
        return queryset


@admin.register(LedgerEntry)
class LedgerEntryAdmin(IdentifierColumns, ReadOnlyAdmin[LedgerEntry]):
    identifier_fields = ("seq", "actor_id")
    list_display = [
        "seq",
        "event_type",
        "subject_type",
        "subject_id",
        "actor_repr",
        "created_at",
        "redacted_at",
    ]
    list_filter = ["event_type", "subject_type", RedactedFilter]
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
        "redacted_at",
    ]
    exclude = ["leaf_hash"]
    show_full_result_count = False

    @admin.display(description=_("leaf hash"))
    def leaf_hash_hex(self, entry: LedgerEntry) -> str:
        return bytes(entry.leaf_hash).hex()


@admin.register(Checkpoint)
class CheckpointAdmin(IdentifierColumns, ReadOnlyAdmin[Checkpoint]):
    identifier_fields = ("size",)
    list_display = ["size", "created_at", "key_id", "created_by"]
    readonly_fields = ["size", "root_hex", "created_at", "key_id", "created_by", "note"]
    exclude = ["root"]

    @admin.display(description=_("root hash"))
    def root_hex(self, checkpoint: Checkpoint) -> str:
        return bytes(checkpoint.root).hex()


@admin.register(TrustedKey)
class TrustedKeyAdmin(ReadOnlyAdmin[TrustedKey]):
    """The trust list, shown only: it changes through `manage.py ledger_key` (ledger events)."""

    list_display = ["key_id", "role", "name", "valid_from", "valid_to", "reason"]
    list_filter = ["role"]
    readonly_fields = [
        "key_id", "role", "name", "public_key_hex", "valid_from", "valid_to", "reason",
        "end_reason", "added_by",
    ]  # fmt: skip
    exclude = ["public_key"]

    @admin.display(description=_("public key"))
    def public_key_hex(self, key: TrustedKey) -> str:
        return bytes(key.public_key).hex()


@admin.register(Cosignature)
class CosignatureAdmin(IdentifierColumns, ReadOnlyAdmin[Cosignature]):
    identifier_fields = ("timestamp",)
    list_display = ["checkpoint", "witness", "key_id", "timestamp", "received_at"]
    readonly_fields = ["checkpoint", "witness", "key_id", "timestamp", "line", "received_at"]


class HoldStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "active"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> Iterable[tuple[str, str]]:
        return [("yes", "Active"), ("no", "Released")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(released_at__isnull=self.value() == "yes")
        return queryset


class LegalHoldPlaceForm(forms.Form):
    """The fields of a new hold; ``legal_hold_place`` decides what is acceptable."""

    reference = forms.CharField(
        max_length=64, label=_("Reference"), help_text=_("Case or matter reference.")
    )
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text=_("Why these entries must be kept. The ledger records its hash."),
    )
    subject_type = forms.CharField(
        max_length=64,
        required=False,
        label=_("Subject type"),
        help_text=_(
            "With subject id, e.g. dataset and 12. Leave both empty to hold the whole ledger."
        ),
    )
    subject_id = forms.CharField(max_length=64, required=False, label=_("Subject id"))
    held_from = forms.DateTimeField(
        required=False,
        label=_("Held from (UTC)"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("Entries written from this moment; empty for the start of the ledger."),
    )
    held_until = forms.DateTimeField(
        required=False,
        label=_("Held until (UTC)"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("Entries written up to this moment; empty for no end."),
    )


class ReleaseForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text=_("Why the hold ends. Recorded with your name; the ledger records its hash."),
    )


# A hold's page shows every field and edits none (placing and releasing have their own pages).
_HOLD_FIELDS: tuple[str, ...] = (
    "reference",
    "reason",
    "scope",
    "subject_type",
    "subject_id",
    "held_from",
    "held_until",
    "placed_by",
    "placed_at",
    "is_active",
    "released_by",
    "released_at",
    "release_reason",
    "ledger_events",
)


@admin.register(LegalHold)
class LegalHoldAdmin(InflectedTitles, admin.ModelAdmin[LegalHold]):
    list_display = ["reference", "scope", "placed_by", "placed_at", "is_active", "released_at"]
    list_filter = [HoldStatusFilter, "placed_at"]
    search_fields = ["reference", "=subject_id"]
    date_hierarchy = "placed_at"
    fields = _HOLD_FIELDS
    readonly_fields = _HOLD_FIELDS
    actions = ["release_holds"]
    change_form_template = "admin/audit/legalhold/change_form.html"

    # -- permissions: read-only rows; placing and releasing go through the services ----

    def has_view_permission(self, request: HttpRequest, obj: LegalHold | None = None) -> bool:
        return super().has_view_permission(request, obj) or roles.has_role(
            request.user, *HOLD_VIEWERS
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or roles.has_role(request.user, *HOLD_VIEWERS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return roles.has_role(request.user, *HOLD_KEEPERS)

    def has_release_permission(self, request: HttpRequest) -> bool:
        return roles.has_role(request.user, *HOLD_KEEPERS)

    def has_change_permission(self, request: HttpRequest, obj: LegalHold | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LegalHold | None = None) -> bool:
        return False

    # -- columns ----------------------------------------------------------------------

    @admin.display(description=_("scope"))
    def scope(self, hold: LegalHold) -> str:
        return hold.scope()

    @admin.display(description=_("active"), boolean=True, ordering="released_at")
    def is_active(self, hold: LegalHold) -> bool:
        return hold.active

    @admin.display(description=_("ledger events"))
    def ledger_events(self, hold: LegalHold) -> str:
        entries = LedgerEntry.objects.filter(
            subject_type="legal_hold", subject_id=str(hold.pk)
        ).order_by("seq")
        rows = [(e.seq, e.event_type, e.created_at.strftime("%Y-%m-%d %H:%M:%S")) for e in entries]
        if not rows:
            return "—"
        items = format_html_join("", "<li>seq {} · {} · {} UTC</li>", rows)
        return format_html('<ul class="fg-events">{}</ul>', items)

    # -- placing a hold ---------------------------------------------------------------

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A form of its own instead of a model form: the service writes the row and its
        ledger event together, and its refusals come back as the form's field errors."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = LegalHoldPlaceForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                hold = legal_hold_place(actor=Actor.of(request.user), **form.cleaned_data)
            except InvalidInput as exc:
                for name, reasons in exc.errors.items():
                    for reason in reasons:
                        form.add_error(name if name in form.fields else None, reason)
            else:
                self.message_user(
                    request,
                    _("Legal hold %(reference)s placed on %(scope)s.")
                    % {"reference": hold.reference, "scope": hold.scope()},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:audit_legalhold_change", args=[hold.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Place a legal hold"),
            "opts": self.model._meta,
            "form": form,
            "cancel_url": reverse("admin:audit_legalhold_changelist"),
        }
        return TemplateResponse(request, "admin/audit/legalhold/place.html", context)

    # -- releasing: an action over a selection, or the button on one hold's page -------

    @admin.action(description=_("Release selected legal holds…"), permissions=["release"])
    def release_holds(
        self, request: HttpRequest, queryset: QuerySet[LegalHold]
    ) -> HttpResponse | None:
        """First call shows the reason page; its submit (``apply``) calls the service."""
        form = ReleaseForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for hold in queryset:
                self._release(request, hold, form.cleaned_data["reason"])
            return None
        holds = list(queryset)
        return self._release_page(
            request,
            holds,
            form,
            cancel_url=reverse("admin:audit_legalhold_changelist"),
            action={
                "name": "release_holds",
                "selected_ids": [h.pk for h in holds],
                "checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "select_across": request.POST.get("select_across", "0"),
            },
        )

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<path:object_id>/release/",
                self.admin_site.admin_view(self.release_view),
                name="audit_legalhold_release",
            )
        ]
        return custom + super().get_urls()

    def release_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_release_permission(request):
            raise PermissionDenied
        hold = get_object_or_404(LegalHold, pk=object_id)
        change_url = reverse("admin:audit_legalhold_change", args=[hold.pk])
        form = ReleaseForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            self._release(request, hold, form.cleaned_data["reason"])
            return HttpResponseRedirect(change_url)
        return self._release_page(request, [hold], form, cancel_url=change_url, original=hold)

    def _release_page(
        self,
        request: HttpRequest,
        holds: list[LegalHold],
        form: ReleaseForm,
        *,
        cancel_url: str,
        original: LegalHold | None = None,
        action: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": ngettext("Release legal hold", "Release legal holds", len(holds)),
            "opts": self.model._meta,
            "original": original,
            "holds": holds,
            "released": [h for h in holds if not h.active],
            "form": form,
            "action": action,
            "cancel_url": cancel_url,
        }
        return TemplateResponse(request, "admin/audit/legalhold/release.html", context)

    def _release(self, request: HttpRequest, hold: LegalHold, reason: str) -> bool:
        """Call the service; its refusal (already released) becomes an error message."""
        try:
            legal_hold_release(actor=Actor.of(request.user), hold=hold, reason=reason)
        except FedgovError as exc:
            logger.info("admin release of legal hold %s refused: %s", hold.pk, exc)
            self.message_user(
                request,
                _("%(reference)s: refused — %(reason)s")
                % {"reference": hold.reference, "reason": exc},
                messages.ERROR,
            )
            return False
        self.message_user(
            request,
            _("Legal hold %(reference)s released.") % {"reference": hold.reference},
            messages.SUCCESS,
        )
        return True

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        hold = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if hold is not None and hold.active and self.has_release_permission(request):
            extra["release_url"] = reverse("admin:audit_legalhold_release", args=[hold.pk])
        return super().change_view(request, object_id, form_url, extra_context=extra)
