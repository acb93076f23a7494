"""REST API for sites, purposes, datasets, residency policies and consents.

Views check roles, scope querysets (a site steward sees only its own site) and hand
validated shapes to ``sites.services``; they never write rows themselves.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from fedgov.parsers import BoundedJSONParser
from sites import services
from sites.filters import ConsentEventFilter, ConsentFilter, DatasetFilter, PolicyFilter, SiteFilter
from sites.models import Consent, ConsentEvent, Dataset, Purpose, ResidencyPolicy, Site
from sites.permissions import ActionRolePermission, scope_to_site
from sites.serializers import (
    ConsentBatchResultSerializer,
    ConsentCSVParser,
    ConsentCsvRows,
    ConsentEventInSerializer,
    ConsentEventSerializer,
    ConsentSerializer,
    DatasetSerializer,
    DatasetUpdateSerializer,
    DatasetWriteSerializer,
    PolicyChangesSerializer,
    PolicyCreateSerializer,
    PolicySerializer,
    PurposeSerializer,
    RecordReasonSerializer,
    SiteSerializer,
    SiteUpdateSerializer,
    SiteWriteSerializer,
)

RECORD_READERS = (roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR)


def validated(serializer_class: type[Serializer], request: Request, partial: bool = False) -> dict:
    """Check the body's shape; a field the endpoint does not take is a 400, not ignored.

    Silently dropping e.g. ``{"slug": ...}`` on a PATCH would tell the caller it worked.
    """
    serializer = serializer_class(data=request.data, partial=partial)
    if hasattr(request.data, "keys"):
        unknown = sorted(set(request.data.keys()) - set(serializer.fields))
        if unknown:
            raise InvalidInput({name: [_("not a field this endpoint takes")] for name in unknown})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class _RecordViewSet(viewsets.GenericViewSet):
    """Shared wiring: role permission, no DELETE (records are evidence), actor helper."""

    permission_classes = [ActionRolePermission]
    http_method_names = ["get", "post", "patch", "head", "options"]
    write_serializers: dict[str, type[Serializer]] = {}

    def get_serializer_class(self):
        return self.write_serializers.get(self.action, self.serializer_class)

    def actor(self) -> Actor:
        return Actor.of(self.request.user)

    def read(self, instance: Any, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.serializer_class(instance).data, status=code)


@extend_schema_view(
    list=extend_schema(
        description=_("The federation's sites; a site steward sees only its own site.")
    ),
    retrieve=extend_schema(description=_("One site of the federation.")),
)
class SiteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _RecordViewSet):
    """Federation participants. DPO writes; Legal, Auditor, Operator read; a steward its own."""

    queryset = Site.objects.all()
    serializer_class = SiteSerializer
    filterset_class = SiteFilter
    read_roles = (*RECORD_READERS, roles.SITE_STEWARD)
    write_roles = (roles.DPO,)
    write_serializers = {
        "create": SiteWriteSerializer,
        "partial_update": SiteUpdateSerializer,
        "suspend": RecordReasonSerializer,
        "activate": RecordReasonSerializer,
    }

    def get_queryset(self):
        return scope_to_site(super().get_queryset(), self.request.user, "pk")

    @extend_schema(description=_("Register a site (DPO)."), responses={201: SiteSerializer})
    def create(self, request: Request) -> Response:
        site = services.site_register(actor=self.actor(), **validated(SiteWriteSerializer, request))
        return self.read(site, status.HTTP_201_CREATED)

    @extend_schema(description=_("Change a site's details (DPO)."), responses={200: SiteSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        fields = validated(SiteUpdateSerializer, request, partial=True)
        site = services.site_update(actor=self.actor(), site=self.get_object(), **fields)
        return self.read(site)

    @extend_schema(
        description=_("Suspend a site, saying why (DPO)."), responses={200: SiteSerializer}
    )
    @action(detail=True, methods=["post"])
    def suspend(self, request: Request, pk: str | None = None) -> Response:
        reason = validated(RecordReasonSerializer, request)["reason"]
        site = services.site_suspend(actor=self.actor(), site=self.get_object(), reason=reason)
        return self.read(site)

    @extend_schema(
        description=_("Activate a suspended site again, saying why (DPO)."),
        responses={200: SiteSerializer},
    )
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        reason = validated(RecordReasonSerializer, request)["reason"]
        site = services.site_activate(actor=self.actor(), site=self.get_object(), reason=reason)
        return self.read(site)


@extend_schema_view(
    list=extend_schema(
        description=_(
            "The named processing purposes; every person role reads them (site stewards "
            "need their codes)."
        )
    ),
    retrieve=extend_schema(description=_("One processing purpose.")),
)
class PurposeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _RecordViewSet):
    """Named processing purposes. DPO creates; every person role reads (stewards need codes)."""

    queryset = Purpose.objects.all()
    serializer_class = PurposeSerializer
    filterset_fields = ["code"]
    read_roles = (*RECORD_READERS, roles.SITE_STEWARD)
    write_roles = (roles.DPO,)

    @extend_schema(
        description=_("Create a processing purpose (DPO)."), responses={201: PurposeSerializer}
    )
    def create(self, request: Request) -> Response:
        data = validated(PurposeSerializer, request)
        purpose = services.purpose_create(actor=self.actor(), **data)
        return self.read(purpose, status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        description=_("Datasets with their legal facts; a site steward sees only its own site's.")
    ),
    retrieve=extend_schema(description=_("One dataset with its legal facts.")),
)
class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _RecordViewSet):
    """Datasets with their legal facts; the consent upload lives here too."""

    queryset = Dataset.objects.select_related("site").prefetch_related("purposes")
    serializer_class = DatasetSerializer
    filterset_class = DatasetFilter
    read_roles = (*RECORD_READERS, roles.SITE_STEWARD)
    write_roles = (roles.DPO,)
    # A steward uploads its own site's consent events (the queryset keeps it to them).
    action_roles = {"consent_events": (roles.DPO, roles.SITE_STEWARD)}
    write_serializers = {
        "create": DatasetWriteSerializer,
        "partial_update": DatasetUpdateSerializer,
        "withdraw": RecordReasonSerializer,
        "consent_events": ConsentEventInSerializer,
    }

    def get_queryset(self):
        return scope_to_site(super().get_queryset(), self.request.user, "site")

    @extend_schema(
        description=_("Register a dataset with its legal facts (DPO)."),
        responses={201: DatasetSerializer},
    )
    def create(self, request: Request) -> Response:
        data = validated(DatasetWriteSerializer, request)
        dataset = services.dataset_register(actor=self.actor(), **data)
        return self.read(dataset, status.HTTP_201_CREATED)

    @extend_schema(
        description=_("Change a dataset's legal facts (DPO)."), responses={200: DatasetSerializer}
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        fields = validated(DatasetUpdateSerializer, request, partial=True)
        dataset = services.dataset_update(actor=self.actor(), dataset=self.get_object(), **fields)
        return self.read(dataset)

    @extend_schema(
        description=_("Withdraw a dataset from the federation, saying why (DPO)."),
        responses={200: DatasetSerializer},
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        reason = validated(RecordReasonSerializer, request)["reason"]
        dataset = services.dataset_withdraw(
            actor=self.actor(), dataset=self.get_object(), reason=reason
        )
        return self.read(dataset)

    @extend_schema(
        summary=_("Upload consent grants and withdrawals (JSON list or text/csv)"),
        description=_(
            "All or nothing: one bad event refuses the whole batch. The 400 keys each bad "
            "event under `events`: a JSON list by its index in the list (0-based, named "
            "`events[2]` in the messages), a CSV file by its line in the file (the header "
            "`subject_pseudonym,purpose,kind,occurred_at,expires_at` is line 1, named "
            "`line 4` in the messages)."
        ),
        request={
            "application/json": ConsentEventInSerializer(many=True),
            "text/csv": OpenApiTypes.STR,
        },
        responses={201: ConsentBatchResultSerializer},
        examples=[
            OpenApiExample(
                "CSV",
                media_type="text/csv",
                request_only=True,
                value=(
                    "subject_pseudonym,purpose,kind,occurred_at,expires_at\n"
                    "de-legal-s0001,topic-classification,grant,2026-01-05T09:00:00Z,\n"
                ),
            )
        ],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="consent-events",
        parser_classes=[BoundedJSONParser, ConsentCSVParser],
    )
    def consent_events(self, request: Request, pk: str | None = None) -> Response:
        dataset = self.get_object()
        events = request.data
        if not isinstance(events, list):
            raise InvalidInput(
                {"events": [_("the body must be a JSON list of events (or text/csv)")]}
            )
        # A CSV upload's refusals name its file lines; a JSON list's, its indexes.
        lines = events.lines if isinstance(events, ConsentCsvRows) else None
        result = services.consent_record_batch(
            actor=self.actor(), dataset=dataset, events=events, lines=lines
        )
        return Response(asdict(result), status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        description=_(
            "Residency policy versions: a draft can change, a published version never does."
        )
    ),
    retrieve=extend_schema(description=_("One residency policy version.")),
)
class PolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _RecordViewSet):
    """Residency policy versions: drafts change, published versions never do."""

    queryset = ResidencyPolicy.objects.all()
    serializer_class = PolicySerializer
    filterset_class = PolicyFilter
    read_roles = RECORD_READERS
    write_roles = (roles.DPO,)
    write_serializers = {
        "create": PolicyCreateSerializer,
        "partial_update": PolicyChangesSerializer,
        "new_version": PolicyChangesSerializer,
    }

    def get_serializer_class(self):
        if self.action == "publish":
            return PolicySerializer
        return super().get_serializer_class()

    @extend_schema(
        description=_("Create a residency policy as a draft (DPO)."),
        responses={201: PolicySerializer},
    )
    def create(self, request: Request) -> Response:
        data = validated(PolicyCreateSerializer, request)
        policy = services.policy_create_draft(actor=self.actor(), **data)
        return self.read(policy, status.HTTP_201_CREATED)

    @extend_schema(
        description=_("Change a draft residency policy (DPO); a published version cannot change."),
        responses={200: PolicySerializer},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        fields = validated(PolicyChangesSerializer, request, partial=True)
        policy = services.policy_update_draft(
            actor=self.actor(), policy=self.get_object(), **fields
        )
        return self.read(policy)

    @extend_schema(
        description=_("Publish a draft residency policy (DPO); from then on it never changes."),
        request=None,
        responses={200: PolicySerializer},
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        policy = services.policy_publish(actor=self.actor(), policy=self.get_object())
        return self.read(policy)

    @extend_schema(
        description=_(
            "Start a new draft version of a policy with the changes given (DPO); the "
            "published version stays as it is."
        ),
        responses={201: PolicySerializer},
    )
    @action(detail=True, methods=["post"], url_path="new-version")
    def new_version(self, request: Request, pk: str | None = None) -> Response:
        changes = validated(PolicyChangesSerializer, request, partial=True)
        policy = services.policy_new_version(
            actor=self.actor(), policy=self.get_object(), **changes
        )
        return self.read(policy, status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        description=_(
            "Current consent per data subject, dataset and purpose; read only: consent "
            "uploads change it."
        )
    ),
    retrieve=extend_schema(
        description=_("The current consent of one data subject for one dataset and purpose.")
    ),
)
class ConsentViewSet(viewsets.ReadOnlyModelViewSet):
    """Current consent per subject, dataset and purpose (read only; uploads change it)."""

    queryset = Consent.objects.select_related("purpose", "dataset")
    serializer_class = ConsentSerializer
    filterset_class = ConsentFilter
    permission_classes = [ActionRolePermission]
    # Operators run training, they do not need subject-level consent (data minimisation).
    read_roles = (roles.DPO, roles.LEGAL, roles.AUDITOR, roles.SITE_STEWARD)

    def get_queryset(self):
        return scope_to_site(super().get_queryset(), self.request.user, "dataset__site")


@extend_schema_view(
    list=extend_schema(
        description=_("The history behind each consent: every grant and withdrawal as uploaded.")
    ),
    retrieve=extend_schema(description=_("One consent grant or withdrawal as uploaded.")),
)
class ConsentEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The history behind each consent: every grant and withdrawal as uploaded."""

    queryset = ConsentEvent.objects.select_related("purpose")
    serializer_class = ConsentEventSerializer
    filterset_class = ConsentEventFilter
    permission_classes = [ActionRolePermission]
    read_roles = (roles.DPO, roles.LEGAL, roles.AUDITOR, roles.SITE_STEWARD)

    def get_queryset(self):
        return scope_to_site(super().get_queryset(), self.request.user, "dataset__site")
