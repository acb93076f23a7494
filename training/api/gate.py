"""The gate endpoints: run the gate for a round, read a round's latest decision."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation.trans_real import parse_accept_lang_header
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from fedgov import roles
from fedgov.actors import Actor
from fedgov.api import OutputSerializer
from fedgov.errors import InvalidInput
from fedgov.roles import RolePermission
from fedgov.validation import INT32_MAX, int_from_text, one_of
from training import selectors
from training.models import TrainingRun
from training.reasons import article_text, reason_text
from training.services.gate import round_gate


class RuleResultSerializer(serializers.Serializer):
    rule_id = serializers.CharField()
    article = serializers.CharField(help_text=_("as stored, language-neutral"))
    article_rendered = serializers.CharField(
        required=False, help_text=_("only when asked: ?lang= or Accept-Language")
    )
    ok = serializers.BooleanField()
    reason = serializers.CharField(help_text=_("English text, as stored"))
    code = serializers.CharField(help_text=_("the reason's stable code"))
    params = serializers.DictField(help_text=_("the reason's parameters (JSON)"))
    reason_rendered = serializers.CharField(
        required=False, help_text=_("only when asked: ?lang= or Accept-Language")
    )


class SiteDecisionSerializer(OutputSerializer):
    site_id = serializers.IntegerField()
    slug = serializers.CharField()
    eligible = serializers.BooleanField()
    eligible_records = serializers.IntegerField(
        help_text=_("eligible_subjects plus declared_records, as stored (people and rows added)")
    )
    eligible_subjects = serializers.IntegerField(
        help_text=_("subjects with valid consent at the round's instant (consent-based datasets)")
    )
    declared_records = serializers.IntegerField(
        help_text=_("records declared for the site's datasets under other lawful bases")
    )
    role = serializers.CharField(help_text=_("the site's agreement type as the gate read it"))
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
    reason_code = serializers.CharField()
    reason_params = serializers.DictField()
    reason_rendered = serializers.CharField(required=False)
    language = serializers.CharField(
        required=False, help_text=_("the language of the *_rendered fields, when asked")
    )
    snapshot_hash = serializers.CharField()
    ledger_seq = serializers.IntegerField(allow_null=True)
    eligible_sites = EligibleSiteSerializer(many=True)
    sites = SiteDecisionSerializer(many=True)
    round_results = RuleResultSerializer(many=True)


def requested_language(request) -> str | None:
    """The language a client asked for: ``?lang=`` first, then an ``Accept-Language`` header.

    ``None`` when it asked for none: the API answers in its neutral form by default, whatever
    the user's profile says. Raises ``InvalidInput`` for a ``lang`` fedgov does not offer.
    """
    codes = [code for code, _name in settings.LANGUAGES]
    lang = request.query_params.get("lang")
    if lang is not None:
        if lang not in codes:
            raise InvalidInput({"lang": [one_of(codes)]})
        return lang
    header = request.META.get("HTTP_ACCEPT_LANGUAGE", "")
    for accepted, _q in parse_accept_lang_header(header):
        if accepted == "*":
            break
        try:
            return translation.get_supported_language_variant(accepted)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE if header else None


def decision_body(view: selectors.GateDecisionView, language: str | None = None) -> dict:
    """The API shape of a decision: per site, its rules in order; round rules apart.

    With ``language``, each reason also comes rendered in it (``reason_rendered``) next to
    its neutral code and params.
    """
    results_by_site: dict[int | None, list[dict]] = {}
    rendered: dict[str, str] = {}
    # One switch of language for the whole decision, not two per rule result (a decision
    # at 200 sites holds thousands).
    with translation.override(language) if language is not None else nullcontext():
        for r in view.results:
            row = {
                "rule_id": r.rule_id,
                "article": r.article,
                "ok": r.ok,
                "reason": r.reason,
                "code": r.code,
                "params": r.params,
            }
            if language is not None:
                row["article_rendered"] = article_text(r.article)
                row["reason_rendered"] = reason_text(r.code, r.params, r.reason)
            results_by_site.setdefault(r.site_id, []).append(row)
        if language is not None:
            rendered = {
                "language": language,
                "reason_rendered": reason_text(view.reason_code, view.reason_params, view.reason),
            }
    data = asdict(view)
    return {
        **{k: data[k] for k in ("id", "run_id", "round_id", "round_no", "evaluated_at")},
        **{k: data[k] for k in ("outcome", "reason", "reason_code", "reason_params")},
        **rendered,
        **{k: data[k] for k in ("snapshot_hash", "ledger_seq")},
        "eligible_sites": [
            {"site_id": e.site_id, "slug": e.site_slug} for e in view.eligibilities if e.eligible
        ],
        "sites": [
            {
                "site_id": e.site_id,
                "slug": e.site_slug,
                "eligible": e.eligible,
                "eligible_records": e.eligible_records,
                "eligible_subjects": e.eligible_subjects,
                "declared_records": e.declared_records,
                "role": e.role,
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
        description=_("Run the GDPR gate for a planned round of a run and record its decision."),
        request=None,
        responses={
            201: GateDecisionSerializer,
            400: OpenApiResponse(description=_("bad round number")),
            404: OpenApiResponse(description=_("unknown run")),
            409: OpenApiResponse(description=_("the round is not planned")),
        },
    )
    def post(self, request, run_id: int, round_no: str) -> Response:
        run = get_object_or_404(TrainingRun, pk=run_id)
        language = requested_language(request)  # a bad ?lang= is refused before the gate runs
        decision = round_gate(actor=Actor.of(request.user), run=run, round_no=_round_no(round_no))
        body = decision_body(selectors.gate_decision_view(decision), language)
        return Response(GateDecisionSerializer(body).data, status=status.HTTP_201_CREATED)


class RoundDecisionView(APIView):
    """GET: the latest gate decision of round ``n`` of run ``id``."""

    permission_classes = [RolePermission]
    read_roles = (roles.OPERATOR, roles.SERVICE, roles.DPO, roles.LEGAL, roles.AUDITOR)
    write_roles = ()

    @extend_schema(
        description=_("The latest gate decision of a round of a run."),
        responses={200: GateDecisionSerializer, 404: OpenApiResponse()},
    )
    def get(self, request, run_id: int, round_no: str) -> Response:
        run = get_object_or_404(TrainingRun, pk=run_id)
        view = selectors.gate_decision_latest(run_id=run.pk, round_no=_round_no(round_no))
        if view is None:
            return Response(
                {"detail": _("this round has no gate decision yet")},
                status=status.HTTP_404_NOT_FOUND,
            )
        body = decision_body(view, requested_language(request))
        return Response(GateDecisionSerializer(body).data)
