"""The gate endpoints: run the gate for a round, read a round's latest decision."""

from __future__ import annotations

from dataclasses import asdict

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from fedgov import roles
from fedgov.actors import Actor
from fedgov.api import OutputSerializer
from fedgov.roles import RolePermission
from fedgov.validation import INT32_MAX, int_from_text
from training import selectors
from training.models import TrainingRun
from training.services.gate import round_gate


class RuleResultSerializer(serializers.Serializer):
    rule_id = serializers.CharField()
    article = serializers.CharField()
    ok = serializers.BooleanField()
    reason = serializers.CharField()


class SiteDecisionSerializer(OutputSerializer):
    site_id = serializers.IntegerField()
    slug = serializers.CharField()
    eligible = serializers.BooleanField()
    eligible_records = serializers.IntegerField()
    excluded_subjects = serializers.IntegerField()
    exclusion_digest = serializers.CharField()
    results = RuleResultSerializer(many=True)


class EligibleSiteSerializer(OutputSerializer):
    site_id = serializers.IntegerField()
    slug = serializers.CharField()


class GateDecisionSerializer(OutputSerializer):
    id = serializers.IntegerField()
    run_id = serializers.IntegerField()
    round_id = serializers.IntegerField()
    round_no = serializers.IntegerField()
    evaluated_at = serializers.DateTimeField()
    outcome = serializers.CharField()
    reason = serializers.CharField()
    snapshot_hash = serializers.CharField()
    ledger_seq = serializers.IntegerField(allow_null=True)
    eligible_sites = EligibleSiteSerializer(many=True)
    sites = SiteDecisionSerializer(many=True)
    round_results = RuleResultSerializer(many=True)


def decision_body(view: selectors.GateDecisionView) -> dict:
    """The API shape of a decision: per site, its rules in order; round rules apart."""
    results_by_site: dict[int | None, list[dict]] = {}
    for r in view.results:
        results_by_site.setdefault(r.site_id, []).append(
            {"rule_id": r.rule_id, "article": r.article, "ok": r.ok, "reason": r.reason}
        )
    data = asdict(view)
    return {
        **{k: data[k] for k in ("id", "run_id", "round_id", "round_no", "evaluated_at")},
        **{k: data[k] for k in ("outcome", "reason", "snapshot_hash", "ledger_seq")},
        "eligible_sites": [
            {"site_id": e.site_id, "slug": e.site_slug} for e in view.eligibilities if e.eligible
        ],
        "sites": [
            {
                "site_id": e.site_id,
                "slug": e.site_slug,
                "eligible": e.eligible,
                "eligible_records": e.eligible_records,
                "excluded_subjects": len(e.excluded_pseudonyms),
                "exclusion_digest": e.exclusion_digest,
                "results": results_by_site.get(e.site_id, []),
            }
            for e in view.eligibilities
        ],
        "round_results": results_by_site.get(None, []),
    }


def _round_no(raw: str) -> int:
    return int_from_text(raw, field="round_no", minimum=1, maximum=INT32_MAX)


class RoundGateView(APIView):
    """POST: run the GDPR gate for round ``n`` of run ``id`` (it must be planned)."""

    permission_classes = [RolePermission]
    read_roles = ()
    write_roles = (roles.OPERATOR, roles.SERVICE, roles.DPO)

    @extend_schema(
        request=None,
        responses={
            201: GateDecisionSerializer,
            400: OpenApiResponse(description="bad round number"),
            404: OpenApiResponse(description="unknown run"),
            409: OpenApiResponse(description="the round is not planned"),
        },
    )
    def post(self, request, run_id: int, round_no: str) -> Response:
        run = get_object_or_404(TrainingRun, pk=run_id)
        decision = round_gate(actor=Actor.of(request.user), run=run, round_no=_round_no(round_no))
        body = decision_body(selectors.gate_decision_view(decision))
        return Response(GateDecisionSerializer(body).data, status=status.HTTP_201_CREATED)


class RoundDecisionView(APIView):
    """GET: the latest gate decision of round ``n`` of run ``id``."""

    permission_classes = [RolePermission]
    read_roles = (roles.OPERATOR, roles.SERVICE, roles.DPO, roles.LEGAL, roles.AUDITOR)
    write_roles = ()

    @extend_schema(responses={200: GateDecisionSerializer, 404: OpenApiResponse()})
    def get(self, request, run_id: int, round_no: str) -> Response:
        run = get_object_or_404(TrainingRun, pk=run_id)
        view = selectors.gate_decision_latest(run_id=run.pk, round_no=_round_no(round_no))
        if view is None:
            return Response(
                {"detail": "this round has no gate decision yet"}, status=status.HTTP_404_NOT_FOUND
            )
        return Response(GateDecisionSerializer(decision_body(view)).data)
