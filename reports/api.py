"""REST API of reports: list, request and download (Legal, DPO, Auditor)."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from fedgov.roles import RolePermission
from fedgov.validation import INT64_MAX, int_from_text, one_of
from reports.choices import ReportFile
from reports.data import Period, run_ref
from reports.models import Report
from reports.services import report_file, report_generate, requester_language

REPORT_ROLES = (roles.LEGAL, roles.DPO, roles.AUDITOR)


class ReportSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    run = serializers.IntegerField(source="run_id", read_only=True, allow_null=True)
    downloads = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id",
            "run",
            "run_name",
            "period_start",
            "period_end",
            "status",
            "progress",
            "error",
            "pdf_sha256",
            "bundle_sha256",
            "anchor_size",
            "requested_by_name",
            "language",
            "created_at",
            "finished_at",
            "downloads",
        ]

    def get_downloads(self, obj: Report) -> dict[str, str]:
        if obj.status != "done":
            return {}
        base = f"/api/v1/reports/{obj.public_id}/download"
        return {kind: f"{base}?file={kind}" for kind in ReportFile.values}


class ReportRequest(serializers.Serializer):
    run = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=INT64_MAX
    )
    period_start = serializers.DateTimeField(required=False, allow_null=True)
    period_end = serializers.DateTimeField(required=False, allow_null=True)
    language = serializers.ChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        allow_null=True,
        help_text=_("the PDF's language; default: the requester's"),
    )


class ContributionSerializer(serializers.Serializer):
    """Documents ``reports.data.Contribution``: one round a dataset contributed to."""

    run_id = serializers.IntegerField(read_only=True)
    run_name = serializers.CharField()
    round_number = serializers.IntegerField(read_only=True)
    dataset_id = serializers.IntegerField(read_only=True)
    update_hash = serializers.CharField()
    aggregate_hash = serializers.CharField()


class ExclusionPointSerializer(serializers.Serializer):
    """Documents ``reports.data.ExclusionPoint``: where a withdrawal took effect."""

    dataset_id = serializers.IntegerField(read_only=True)
    withdrawn_at = serializers.DateTimeField()
    run_id = serializers.IntegerField(read_only=True, allow_null=True)
    run_name = serializers.CharField(allow_blank=True)
    round_number = serializers.IntegerField(read_only=True, allow_null=True)


class LineageSerializer(serializers.Serializer):
    """Documents ``reports.data.Lineage`` as ``dataclasses.asdict`` serialises it."""

    dataset_ids = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    contributions = ContributionSerializer(many=True)
    # (run id, run name, last aggregate hash): asdict keeps the tuple as a 3-item list.
    final_models = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=3, max_length=3)
    )
    exclusions = ExclusionPointSerializer(many=True)


# The files these views send are not JSON, so their responses are described by media
# type; an ``APIView`` without a serializer is otherwise left out of the schema (W002).
_BINARY = OpenApiResponse(response=OpenApiTypes.BINARY)
_NOT_FOUND = OpenApiResponse(description=_("no such report, or its file is missing"))


class _ReportView:
    permission_classes = [RolePermission]
    read_roles = REPORT_ROLES
    write_roles = REPORT_ROLES


@extend_schema_view(
    get=extend_schema(description=_("Reports, newest first.")),
    post=extend_schema(
        description=_(
            "Request a report on a run (`run`) or on a period (`period_start` and "
            "`period_end`); it is produced in the background (202)."
        )
    ),
)
class ReportList(_ReportView, generics.ListCreateAPIView):
    """Reports, newest first; POST {run} or {period_start, period_end} queues one."""

    serializer_class = ReportSerializer
    queryset = Report.objects.all()

    def create(self, request: Request, *args, **kwargs) -> Response:
        body = ReportRequest(data=request.data)
        if not body.is_valid():
            raise InvalidInput(body.errors)
        data = body.validated_data
        run = None
        if data.get("run") is not None:
            try:
                run = run_ref(run_id=data["run"])
            except LookupError as exc:
                raise InvalidInput({"run": [str(exc)]}) from exc
        start, end = data.get("period_start"), data.get("period_end")
        if (start is None) != (end is None):
            raise InvalidInput({"period": [_("give both period_start and period_end")]})
        period = Period(start, end) if start is not None else None
        report = report_generate(
            actor=Actor.of(request.user), run=run, period=period, language=data.get("language")
        )
        return Response(ReportSerializer(report).data, status=202)


@extend_schema_view(
    get=extend_schema(description=_("One report: its status, checksums and downloads."))
)
class ReportDetail(_ReportView, generics.RetrieveAPIView):
    serializer_class = ReportSerializer
    queryset = Report.objects.all()
    lookup_field = "public_id"


class ReportDownload(_ReportView, APIView):
    """The signed PDF (``?file=pdf``, default) or the evidence bundle (``?file=bundle``)."""

    @extend_schema(
        description=_(
            "A report's signed PDF (`file=pdf`, the default) or its evidence bundle "
            "(`file=bundle`)."
        ),
        parameters=[
            OpenApiParameter("file", str, enum=list(ReportFile.values), default=ReportFile.PDF)
        ],
        responses={
            (200, "application/pdf"): _BINARY,
            (200, "application/zip"): _BINARY,
            404: _NOT_FOUND,
        },
    )
    def get(self, request: Request, public_id) -> FileResponse:
        kind = request.query_params.get("file", ReportFile.PDF)
        if kind not in ReportFile.values:
            raise InvalidInput({"file": [one_of(ReportFile.values)]})
        report = Report.objects.filter(public_id=public_id).first()
        if report is None:
            raise Http404(_("no such report"))
        path = report_file(report=report, kind=kind)
        if not path.is_file():
            raise Http404(_("the report's file is missing from storage"))
        content_type = "application/pdf" if kind == ReportFile.PDF else "application/zip"
        return FileResponse(
            path.open("rb"), as_attachment=True, filename=path.name, content_type=content_type
        )


class LineageView(_ReportView, APIView):
    """Art. 17 support: ``?dataset=ID`` or ``?subject=PSEUDONYM`` (exactly one)."""

    write_roles = ()

    @extend_schema(
        description=_(
            "Art. 17 support: the rounds and models a dataset, or a data subject's records, "
            "went into; name exactly one, `dataset` or `subject`."
        ),
        parameters=[
            OpenApiParameter("dataset", int, description=_("a dataset id")),
            OpenApiParameter("subject", str, description=_("a subject's pseudonym")),
        ],
        responses={200: LineageSerializer, 404: OpenApiResponse(description=_("no such dataset"))},
    )
    def get(self, request: Request) -> Response:
        from dataclasses import asdict

        from reports.data import lineage

        params = request.query_params
        unknown = sorted(set(params) - {"dataset", "subject", "format"})
        if unknown:
            raise InvalidInput({name: [_("unknown query parameter")] for name in unknown})
        dataset, subject = params.get("dataset"), params.get("subject")
        if bool(dataset) == bool(subject):
            raise InvalidInput({"non_field_errors": [_("give exactly one of dataset or subject")]})
        dataset_id = int_from_text(dataset, field="dataset") if dataset else None
        try:
            found = lineage(dataset_id=dataset_id, subject_pseudonym=subject or None)
        except LookupError as exc:
            raise Http404(str(exc)) from exc
        return Response(asdict(found))


class Art30View(_ReportView, APIView):
    """GDPR Art. 30 record: ``?view=controller|processor&output=csv|json|pdf``."""

    write_roles = ()

    @extend_schema(
        description=_(
            "The records of processing activities (Art. 30), as controller or as processor, "
            "in CSV, JSON or PDF."
        ),
        parameters=[
            OpenApiParameter("view", str, enum=["controller", "processor"], default="controller"),
            OpenApiParameter("output", str, enum=["csv", "json", "pdf"], default="json"),
            OpenApiParameter(
                "lang",
                str,
                enum=[code for code, _name in settings.LANGUAGES],
                description=_("the record's language; default: the requester's"),
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(response=OpenApiTypes.OBJECT),
            (200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR),
            (200, "application/pdf"): _BINARY,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        from django.conf import settings

        from fedgov import clock
        from reports import art30
        from reports.data import processing_activities

        params = request.query_params
        unknown = sorted(set(params) - {"view", "output", "lang"})
        if unknown:
            raise InvalidInput({name: [_("unknown query parameter")] for name in unknown})
        view, output = params.get("view", "controller"), params.get("output", "json")
        errors = {}
        if view not in art30.VIEWS:
            errors["view"] = [one_of(art30.VIEWS)]
        if output not in art30.FORMATS:
            errors["output"] = [one_of(art30.FORMATS)]
        offered = [code for code, _name in settings.LANGUAGES]
        language = params.get("lang") or requester_language(Actor.of(request.user))
        if language not in offered:
            errors["lang"] = [one_of(offered)]
        if errors:
            raise InvalidInput(errors)
        body, content_type, name = art30.render(
            view,
            output,
            processing_activities(),
            generated_at=clock.now(),
            processor=settings.FEDGOV_REPORT_ORGANISATION,
            language=language,
        )
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
