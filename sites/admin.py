"""Admin for sites, stewards, purposes, datasets, policies and consents.

Writes go through ``sites.services`` (so each change has its ledger event); a service's
``InvalidInput`` shows next to the form field. Published policies, consents and consent
events are read-only here; nothing is deleted from the admin (records are evidence).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.db import models
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from fedgov import clock
from fedgov.actors import Actor
from fedgov.admin_identifiers import IdentifierColumns
from fedgov.admin_titles import InflectedTitles
from fedgov.errors import FedgovError, InvalidInput
from sites import services
from sites.adequacy import parse_adequacy
from sites.admin_steward import ConsentUploadMixin, SiteScopedAdmin
from sites.choices import PolicyStatus
from sites.models import (
    AdequacyListVersion,
    Consent,
    ConsentEvent,
    Dataset,
    Purpose,
    ResidencyPolicy,
    Site,
    SiteSteward,
)


def _add_errors(form: Any, exc: InvalidInput) -> None:
    for field, reasons in exc.errors.items():
        reasons = reasons if isinstance(reasons, list) else [reasons]
        if field in form.fields and field in form.cleaned_data:
            form.add_error(field, [str(r) for r in reasons])
        else:
            form.add_error(None, [f"{field}: {r}" for r in reasons])


class ServiceAdmin(admin.ModelAdmin):
    """A ModelAdmin whose form is checked by, and saved through, a service.

    Subclasses implement ``validate(cleaned, obj)`` (raise ``InvalidInput``) and
    ``save_with_service(request, cleaned, changed, obj)`` (return the saved row).
    """

    def validate(self, cleaned: dict[str, Any], obj: Model | None) -> None:
        raise NotImplementedError

    def save_with_service(
        self, actor: Actor, cleaned: dict[str, Any], changed: list[str], obj: Model | None
    ) -> Model:
        raise NotImplementedError

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = super().get_form(request, obj, change=change, **kwargs)
        admin_self = self

        class ServiceForm(base):
            def clean(self):
                cleaned = super().clean()
                if not self.errors:
                    try:
                        admin_self.validate(dict(cleaned), obj)
                    except InvalidInput as exc:
                        _add_errors(self, exc)
                return cleaned

        return ServiceForm

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The services open their own durable transaction; Django's default wrapping of
        # this view in transaction.atomic would make every service call fail.
        return self._changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        saved = self.save_with_service(
            Actor.of(request.user),
            form.cleaned_data,
            list(form.changed_data),
            obj if change else None,
        )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        # Many-to-many fields were set by the service with the rest of the change.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_delete_permission(self, request, obj=None):
        return False

    def run_service(self, request: HttpRequest, label: str, call) -> None:
        """Run one service for an admin action and report the outcome as a message."""
        try:
            call()
        except FedgovError as exc:
            self.message_user(
                request,
                _("%(action)s: %(reason)s") % {"action": label, "reason": exc},
                messages.ERROR,
            )
        else:
            self.message_user(request, _("%(action)s: done") % {"action": label}, messages.SUCCESS)


@admin.register(Site)
class SiteAdmin(SiteScopedAdmin, ServiceAdmin):
    site_field = "pk"
    list_display = [
        "slug",
        "organisation",
        "country",
        "compute_country",
        "agreement_type",
        "agreement_valid_until",
        "status",
    ]
    list_filter = ["status", "country", "compute_country", "agreement_type"]
    search_fields = ["slug", "organisation"]
    readonly_fields = ["status", "status_reason", "status_changed_at", "created_at"]
    actions = ["suspend_sites", "activate_sites"]
    # OpenNebula's oned speaks plain http on 2633 by default; do not guess https.
    formfield_overrides = {models.URLField: {"assume_scheme": "http"}}

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return ["slug", *fields] if obj is not None else fields

    def validate(self, cleaned, obj):
        current = (
            {n: getattr(obj, n) for n in (*services.SITE_FIELDS, "flower_node_id")} if obj else {}
        )
        services.site_validate({**current, **cleaned}, instance=obj)

    def save_with_service(self, actor, cleaned, changed, obj):
        if obj is None:
            fields = {n: cleaned[n] for n in services.SITE_FIELDS if n in cleaned}
            return services.site_register(actor=actor, **fields)
        fields = {n: cleaned[n] for n in changed if n in services.SITE_UPDATABLE}
        return services.site_update(actor=actor, site=obj, **fields)

    @admin.action(description=_("Suspend selected sites"), permissions=["change"])
    def suspend_sites(self, request, queryset: QuerySet[Site]) -> None:
        actor = Actor.of(request.user)
        for site in queryset:
            self.run_service(
                request,
                _("suspend %(site)s") % {"site": site.slug},
                lambda site=site: services.site_suspend(
                    actor=actor, site=site, reason=f"suspended in admin by {actor.label}"
                ),
            )

    @admin.action(description=_("Re-activate selected sites"), permissions=["change"])
    def activate_sites(self, request, queryset: QuerySet[Site]) -> None:
        actor = Actor.of(request.user)
        for site in queryset:
            self.run_service(
                request,
                _("activate %(site)s") % {"site": site.slug},
                lambda site=site: services.site_activate(
                    actor=actor, site=site, reason=f"re-activated in admin by {actor.label}"
                ),
            )


@admin.register(SiteSteward)
class SiteStewardAdmin(InflectedTitles, admin.ModelAdmin):
    list_display = ["user", "site"]
    list_filter = ["site"]
    search_fields = ["user__username", "site__slug"]
    autocomplete_fields = ["user"]


@admin.register(Purpose)
class PurposeAdmin(ServiceAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name", "description"]

    def has_change_permission(self, request, obj=None):
        # There is no purpose_update service: a purpose's meaning is fixed once used.
        return obj is None and super().has_change_permission(request, obj)

    def validate(self, cleaned, obj):
        services.purpose_validate(cleaned)

    def save_with_service(self, actor, cleaned, changed, obj):
        return services.purpose_create(
            actor=actor,
            code=cleaned["code"],
            name=cleaned["name"],
            description=cleaned.get("description", ""),
        )


DATASET_FORM_FIELDS = ("site", *services.DATASET_UPDATABLE)


@admin.register(Dataset)
class DatasetAdmin(SiteScopedAdmin, ServiceAdmin):
    list_display = [
        "name",
        "site",
        "lawful_basis",
        "special_category",
        "retention_until",
        "record_count",
        "withdrawn_at",
    ]
    list_filter = ["lawful_basis", "special_category", "site", "purposes", "withdrawn_at"]
    search_fields = ["name", "site__slug", "description"]
    filter_horizontal = ["purposes"]
    fields = [*DATASET_FORM_FIELDS, "withdrawn_at", "withdrawal_reason", "created_at"]
    readonly_fields = ["withdrawn_at", "withdrawal_reason", "created_at"]
    actions = ["withdraw_datasets"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return ["site", *fields] if obj is not None else fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.withdrawn_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def validate(self, cleaned, obj):
        values = {n: cleaned.get(n) for n in services.DATASET_UPDATABLE}
        values["purposes"] = list(cleaned.get("purposes") or [])
        site = obj.site if obj is not None else cleaned["site"]
        services.dataset_validate(values, site=site, instance=obj)

    def save_with_service(self, actor, cleaned, changed, obj):
        values = {n: cleaned[n] for n in services.DATASET_UPDATABLE if n in cleaned}
        values["purposes"] = list(values.get("purposes") or [])
        if obj is None:
            return services.dataset_register(actor=actor, site=cleaned["site"], **values)
        fields = {n: values[n] for n in changed if n in services.DATASET_UPDATABLE}
        return services.dataset_update(actor=actor, dataset=obj, **fields)

    @admin.action(
        description=_("Withdraw selected datasets from federation"), permissions=["change"]
    )
    def withdraw_datasets(self, request, queryset: QuerySet[Dataset]) -> None:
        actor = Actor.of(request.user)
        for dataset in queryset:
            self.run_service(
                request,
                _("withdraw %(dataset)s") % {"dataset": dataset},
                lambda dataset=dataset: services.dataset_withdraw(
                    actor=actor, dataset=dataset, reason=f"withdrawn in admin by {actor.label}"
                ),
            )


@admin.register(ResidencyPolicy)
class ResidencyPolicyAdmin(InflectedTitles, IdentifierColumns, ServiceAdmin):
    identifier_fields = ("version",)
    list_display = [
        "name",
        "version",
        "status",
        "min_eligible_sites",
        "requires_approval",
        "requires_dpia",
        "privacy_budget_epsilon",
        "published_at",
    ]
    list_filter = ["status", "name", "requires_approval", "requires_dpia"]
    search_fields = ["name", "content_hash"]
    fields = [
        "name",
        "version",
        "status",
        *services.POLICY_FIELDS,
        "content_hash",
        "created_by_name",
        "published_at",
        "published_by_name",
    ]
    readonly_fields = [
        "version",
        "status",
        "content_hash",
        "created_by_name",
        "published_at",
        "published_by_name",
    ]
    actions = ["publish_policies", "new_versions"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return ["name", *fields] if obj is not None else fields

    def has_change_permission(self, request, obj=None):
        # A published version is immutable: its page is a read-only view.
        if obj is not None and obj.status == PolicyStatus.PUBLISHED:
            return False
        return super().has_change_permission(request, obj)

    def validate(self, cleaned, obj):
        current = {n: getattr(obj, n) for n in services.POLICY_FIELDS} if obj else {}
        values = {**services.POLICY_DEFAULTS, **current}
        values.update({n: cleaned[n] for n in services.POLICY_FIELDS if n in cleaned})
        services.policy_validate(values)

    def save_with_service(self, actor, cleaned, changed, obj):
        fields = {n: cleaned[n] for n in services.POLICY_FIELDS if n in cleaned}
        if obj is None:
            return services.policy_create_draft(actor=actor, name=cleaned["name"], **fields)
        changes = {n: fields[n] for n in changed if n in fields}
        return services.policy_update_draft(actor=actor, policy=obj, **changes)

    @admin.action(description=_("Publish selected drafts"), permissions=["change"])
    def publish_policies(self, request, queryset: QuerySet[ResidencyPolicy]) -> None:
        actor = Actor.of(request.user)
        for policy in queryset:
            self.run_service(
                request,
                _("publish %(policy)s v%(version)s")
                % {"policy": policy.name, "version": policy.version},
                lambda policy=policy: services.policy_publish(actor=actor, policy=policy),
            )

    @admin.action(
        description=_("Start a new draft version from each selected policy"), permissions=["change"]
    )
    def new_versions(self, request, queryset: QuerySet[ResidencyPolicy]) -> None:
        actor = Actor.of(request.user)
        for policy in queryset:
            self.run_service(
                request,
                _("new version of %(policy)s v%(version)s")
                % {"policy": policy.name, "version": policy.version},
                lambda policy=policy: services.policy_new_version(actor=actor, policy=policy),
            )


class ReadOnlyAdmin(SiteScopedAdmin):
    """Rows that change only through the API's services: view, never add/change/delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ConsentStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("withdrawn", "Withdrawn"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = clock.now()
        if self.value() == "withdrawn":
            return queryset.filter(withdrawn_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(withdrawn_at__isnull=True, expires_at__lte=now)
        if self.value() == "active":
            return queryset.filter(withdrawn_at__isnull=True).exclude(expires_at__lte=now)
        return queryset


@admin.register(Consent)
class ConsentAdmin(InflectedTitles, ReadOnlyAdmin):
    site_field = "dataset__site"
    list_display = [
        "subject_pseudonym",
        "dataset",
        "purpose",
        "granted_at",
        "expires_at",
        "withdrawn_at",
    ]
    list_filter = [ConsentStateFilter, "purpose", "dataset__site"]
    search_fields = ["subject_pseudonym", "dataset__name"]
    list_select_related = ["dataset__site", "purpose"]
    show_full_result_count = False


@admin.register(ConsentEvent)
class ConsentEventAdmin(ConsentUploadMixin, ReadOnlyAdmin):
    site_field = "dataset__site"
    list_display = [
        "subject_pseudonym",
        "kind",
        "dataset",
        "purpose",
        "occurred_at",
        "batch_id",
        "recorded_by_name",
    ]
    list_filter = ["kind", "purpose", "dataset__site"]
    search_fields = ["subject_pseudonym", "batch_id"]
    list_select_related = ["dataset__site", "purpose"]
    show_full_result_count = False


@admin.register(AdequacyListVersion)
class AdequacyListVersionAdmin(InflectedTitles, ServiceAdmin):
    """A DPO records a new version of the adequacy list (Art. 45); versions never change."""

    list_display = ["version", "sha256", "recorded_at", "recorded_by_name"]
    search_fields = ["version", "sha256"]
    fields = ["content", "version", "sha256", "recorded_at", "recorded_by_name"]
    readonly_fields = ["version", "sha256", "recorded_at", "recorded_by_name"]

    def has_change_permission(self, request, obj=None):
        # A recorded version is evidence cited by gate snapshots: view only.
        return obj is None and super().has_change_permission(request, obj)

    def validate(self, cleaned, obj):
        try:
            parse_adequacy(cleaned.get("content") or "")
        except ValueError as exc:
            raise InvalidInput({"content": [str(exc)]}) from None

    def save_with_service(self, actor, cleaned, changed, obj):
        return services.adequacy_list_record(actor=actor, content=cleaned["content"])
