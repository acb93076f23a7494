"""REST API for training runs, their DPIAs and (read-only) rounds."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fedgov import roles
from fedgov.actors import Actor
from fedgov.api import IdFilter
from fedgov.validation import INT32_MAX
from sites.api import validated
from sites.models import Dataset, Purpose, ResidencyPolicy
from sites.permissions import ActionRolePermission
from training.api.gate import requested_language
from training.choices import DpiaStatus, RefusalAction, RoundState, RunStatus
from training.models import Dpia, Round, TrainingRun
from training.reasons import round_reason_in
from training.services import runs as services

RECORD_READERS = (roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR)


# ----------------------------------------------------------------------- serializers


class DpiaSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dpia
        fields = [
            "id",
            "run",
            "reference",
            "status",
            "document_hash",
            "approved_by_name",
            "approved_at",
            "valid_until",
        ]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    purpose: serializers.SlugRelatedField[Purpose] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    policy_version = serializers.IntegerField(source="policy.version", read_only=True)
    dpia = DpiaSerializer(read_only=True, allow_null=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "name",
            "purpose",
            "datasets",
            "policy",
            "policy_version",
            "aggregator_country",
            "num_rounds",
            "dp_mechanism",
            "dp_clipping_norm",
            "dp_noise_multiplier",
            "dp_target_epsilon",
            "on_refusal",
            "status",
            "requested_by_name",
            "created_at",
            "dpia",
        ]
        read_only_fields = fields


class RunCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    purpose = serializers.SlugRelatedField(slug_field="code", queryset=Purpose.objects.all())
    datasets = serializers.PrimaryKeyRelatedField(many=True, queryset=Dataset.objects.all())
    policy = serializers.PrimaryKeyRelatedField(queryset=ResidencyPolicy.objects.all())
    aggregator_country = serializers.CharField(max_length=2, min_length=2)
    num_rounds = serializers.IntegerField(required=False, default=3, max_value=INT32_MAX)
    # Validated by ``run_create`` (a 400 names the field and the reason).
    dp_mechanism = serializers.CharField(max_length=20, required=False, default="none")
    dp_clipping_norm = serializers.FloatField(required=False, allow_null=True, default=None)
    dp_noise_multiplier = serializers.FloatField(required=False, allow_null=True, default=None)
    dp_target_epsilon = serializers.FloatField(required=False, allow_null=True, default=None)
    on_refusal = serializers.ChoiceField(
        choices=RefusalAction.choices, required=False, default=RefusalAction.SKIP
    )


class DpiaRecordSerializer(serializers.Serializer):
    run = serializers.PrimaryKeyRelatedField(queryset=TrainingRun.objects.all())
    reference = serializers.CharField(max_length=200)
    document_hash = serializers.CharField(max_length=64)


class DpiaApproveSerializer(serializers.Serializer):
    valid_until = serializers.DateField()


class RoundSerializer(serializers.ModelSerializer):
    # The stored form is neutral (English text, code, params); the rendering only when a
    # client asks for a language (?lang= or Accept-Language), as for the gate's reasons.
    state_reason_rendered = serializers.SerializerMethodField(
        help_text=_("the state reason in the requested language; null unless one was asked for")
    )

    class Meta:
        model = Round
        fields = [
            "id",
            "run",
            "number",
            "state",
            "state_reason",
            "state_reason_code",
            "state_reason_params",
            "state_reason_rendered",
            "requested_by_name",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_state_reason_rendered(self, obj: Round) -> str | None:
        language = self.context.get("language")
        return round_reason_in(language, obj) if language else None


# --------------------------------------------------------------------------- filters


class RunFilter(django_filters.FilterSet):
    purpose = django_filters.CharFilter(field_name="purpose__code")
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    dataset = IdFilter(field_name="datasets", distinct=True)

    class Meta:
        model = TrainingRun
        fields = ["name", "purpose", "status", "policy", "dataset", "aggregator_country"]


class DpiaFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DpiaStatus.choices)

    class Meta:
        model = Dpia
        fields = ["run", "status"]


class RoundFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=RoundState.choices)

    class Meta:
        model = Round
        fields = ["run", "number", "state"]


# ------------------------------------------------------------------------------ views


@extend_schema_view(
    list=extend_schema(
        description=_("Training runs with their purpose, datasets, residency policy and DPIA.")
    ),
    retrieve=extend_schema(
        description=_("One training run with its purpose, datasets, residency policy and DPIA.")
    ),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training runs: Operators and the DPO create them; the Service role reads them."""

    queryset = TrainingRun.objects.select_related("purpose", "policy", "dpia").prefetch_related(
        "datasets"
    )
    serializer_class = RunSerializer
    filterset_class = RunFilter
    permission_classes = [ActionRolePermission]
    read_roles = (*RECORD_READERS, roles.SERVICE)
    write_roles = (roles.OPERATOR, roles.DPO)

    def get_serializer_class(self):
        return RunCreateSerializer if self.action == "create" else RunSerializer

    @extend_schema(
        description=_("Create a training run (Operator, DPO)."), responses={201: RunSerializer}
    )
    def create(self, request: Request) -> Response:
        data = validated(RunCreateSerializer, request)
        run = services.run_create(actor=Actor.of(request.user), **data)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        description=_("The data protection impact assessments (Art. 35) of the training runs.")
    ),
    retrieve=extend_schema(description=_("One data protection impact assessment (Art. 35).")),
)
class DpiaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """DPIAs (Art. 35): the DPO records and approves; the other person roles read."""

    queryset = Dpia.objects.select_related("run")
    serializer_class = DpiaSerializer
    filterset_class = DpiaFilter
    permission_classes = [ActionRolePermission]
    read_roles = RECORD_READERS
    write_roles = (roles.DPO,)

    def get_serializer_class(self):
        return {"create": DpiaRecordSerializer, "approve": DpiaApproveSerializer}.get(
            self.action, DpiaSerializer
        )

    @extend_schema(
        description=_("Record the data protection impact assessment (Art. 35) of a run (DPO)."),
        responses={201: DpiaSerializer},
    )
    def create(self, request: Request) -> Response:
        data = validated(DpiaRecordSerializer, request)
        dpia = services.dpia_record(actor=Actor.of(request.user), **data)
        return Response(DpiaSerializer(dpia).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        description=_("Approve a data protection impact assessment until a given day (DPO)."),
        responses={200: DpiaSerializer},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        data = validated(DpiaApproveSerializer, request)
        dpia = services.dpia_approve(actor=Actor.of(request.user), dpia=self.get_object(), **data)
        return Response(DpiaSerializer(dpia).data)


@extend_schema_view(
    list=extend_schema(
        description=_("Rounds, read only: the gate and the round's state machine move them.")
    ),
    retrieve=extend_schema(description=_("One round with its state and the reason for it.")),
)
class RoundViewSet(viewsets.ReadOnlyModelViewSet):
    """Rounds, read only: the gate and the round state machine move them."""

    queryset = Round.objects.all()
    serializer_class = RoundSerializer
    filterset_class = RoundFilter
    permission_classes = [ActionRolePermission]
    read_roles = (*RECORD_READERS, roles.SERVICE)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "language": requested_language(self.request)}
