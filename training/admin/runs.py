"""Admin for runs and DPIAs (rounds: ``training.admin.rounds``).

Runs are created and DPIAs recorded through ``training.services.runs``; a run has no
update service, so it is read-only once created. Nothing is deleted here.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import Prefetch, QuerySet, prefetch_related_objects
from django.utils.translation import gettext_lazy as _

from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites.admin import ServiceAdmin
from sites.choices import PolicyStatus
from sites.models import Dataset
from sites.services import HEX64
from training.choices import DpiaStatus
from training.models import Dpia, TrainingRun
from training.services import runs as services
from training.services.handoff import run_next_round_start

RUN_FIELDS = (
    "name",
    "purpose",
    "datasets",
    "policy",
    "aggregator_country",
    "num_rounds",
    "dp_mechanism",
    "dp_clipping_norm",
    "dp_noise_multiplier",
    "dp_target_epsilon",
    "on_refusal",
)
DPIA_DEFAULT_VALIDITY = dt.timedelta(days=365)


@admin.register(TrainingRun)
class TrainingRunAdmin(ServiceAdmin):
    list_display = [
        "name",
        "purpose",
        "policy",
        "aggregator_country",
        "num_rounds",
        "status",
        "requested_by_name",
        "created_at",
    ]
    list_filter = ["status", "purpose", "aggregator_country", "on_refusal"]
    search_fields = ["name", "requested_by_name"]
    list_select_related = ["purpose", "policy"]
    filter_horizontal = ["datasets"]
    fields = [*RUN_FIELDS, "status", "requested_by_name", "created_at"]
    readonly_fields = ["status", "requested_by_name", "created_at"]

    actions = ["start_next_rounds"]

    def get_object(self, request, object_id, from_field=None):
        run = super().get_object(request, object_id, from_field)
        if run is not None:
            # The page names each dataset "site/name": their sites in one query, not one
            # per dataset (a run of a federation spans hundreds of sites).
            datasets = Prefetch("datasets", queryset=Dataset.objects.select_related("site"))
            prefetch_related_objects([run], datasets)
        return run

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_start_permission(self, request) -> bool:
        # Those who may request a run may start its rounds (operators, the DPO).
        return request.user.has_perm("training.add_trainingrun")

    @admin.action(description=_("Start the next round of selected runs"), permissions=["start"])
    def start_next_rounds(self, request, queryset: QuerySet[TrainingRun]) -> None:
        actor = Actor.of(request.user)
        for run in queryset:
            self.run_service(
                request,
                _("start the next round of %(run)s") % {"run": run.name},
                lambda run=run: run_next_round_start(actor=actor, run=run),
            )

    def validate(self, cleaned, obj):
        # The service checks the rest in its own transaction; catch the common slip early.
        policy = cleaned.get("policy")
        if policy is not None and policy.status != PolicyStatus.PUBLISHED:
            raise InvalidInput({"policy": [_("a run needs a published policy version")]})

    def save_with_service(self, actor, cleaned, changed, obj):
        values = {n: cleaned[n] for n in RUN_FIELDS if n in cleaned}
        values["datasets"] = list(
            Dataset.objects.filter(pk__in=[d.pk for d in cleaned["datasets"]])
        )
        return services.run_create(actor=actor, **values)


class DpiaActionForm(ActionForm):
    """The approve action's date: blank means one year from today; a past date records a
    DPIA that already expired (flagged ``recorded_late`` in the ledger)."""

    valid_until = forms.DateField(
        required=False,
        label=_("Valid until"),
        help_text=_("Last day the DPIA covers (YYYY-MM-DD); blank: one year"),
    )


@admin.register(Dpia)
class DpiaAdmin(ServiceAdmin):
    list_display = ["reference", "run", "status", "approved_by_name", "approved_at", "valid_until"]
    list_filter = ["status"]
    search_fields = ["reference", "run__name", "document_hash"]
    list_select_related = ["run"]
    fields = [
        "run",
        "reference",
        "document_hash",
        "status",
        "approved_by_name",
        "approved_at",
        "valid_until",
    ]
    readonly_fields = ["status", "approved_by_name", "approved_at", "valid_until"]
    actions = ["approve_dpias"]
    action_form = DpiaActionForm

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return ["run", *fields] if obj is not None else fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status == DpiaStatus.APPROVED:
            return False
        return super().has_change_permission(request, obj)

    def validate(self, cleaned, obj):
        if not HEX64.match(cleaned.get("document_hash") or ""):
            raise InvalidInput(
                {"document_hash": [_("must be a SHA-256 digest: 64 hexadecimal characters")]}
            )
        run = obj.run if obj is not None else cleaned.get("run")
        if obj is None and run is not None and Dpia.objects.filter(run=run).exists():
            raise InvalidInput({"run": [_("this run already has a DPIA; open it to revise it")]})

    def save_with_service(self, actor, cleaned, changed, obj):
        run = obj.run if obj is not None else cleaned["run"]
        return services.dpia_record(
            actor=actor,
            run=run,
            reference=cleaned["reference"],
            document_hash=cleaned["document_hash"],
        )

    @admin.action(
        description=_("Approve selected DPIAs until the date given (blank: one year)"),
        permissions=["change"],
    )
    def approve_dpias(self, request, queryset: QuerySet[Dpia]) -> None:
        actor = Actor.of(request.user)
        # The date alone: the action form's own choice field is filled in by the admin.
        field = DpiaActionForm.base_fields["valid_until"]
        try:
            given = field.clean(request.POST.get("valid_until", ""))
        except forms.ValidationError:
            self.message_user(request, _("valid_until: enter a date (YYYY-MM-DD)"), messages.ERROR)
            return
        until = given or clock.now().date() + DPIA_DEFAULT_VALIDITY
        for dpia in queryset:
            self.run_service(
                request,
                _("approve DPIA %(reference)s") % {"reference": dpia.reference},
                lambda dpia=dpia: services.dpia_approve(actor=actor, dpia=dpia, valid_until=until),
            )
