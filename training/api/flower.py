"""REST endpoints the governed Flower strategy and the sites' client mods call."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.keys import active_key, public_pem
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.roles import RolePermission
from sites.models import Site, SiteSteward
from training.api import flower_schema as shapes
from training.choices import RoundState
from training.flower.admission import configured_admin
from training.models import GateResult, Round, TrainingRun
from training.services import flower as flower_services

_SITE = OpenApiParameter("site", str, required=True, description="the site's slug")


def _round_of(run_id: int, number: int) -> Round:
    return get_object_or_404(Round.objects.select_related("run"), run_id=run_id, number=number)


def _refusal(round_: Round, reason: str) -> Response:
    decision = flower_services.latest_decision(round_)
    failed = []
    if decision is not None:
        failed = [
            {
                "site": r.site_slug or None,
                "rule_id": r.rule_id,
                "article": r.article,
                "reason": r.reason,
            }
            for r in GateResult.objects.filter(decision=decision, ok=False).order_by(
                "site_slug", "position"
            )
        ]
    return Response(
        {
            "allowed": False,
            "run_id": round_.run_id,
            "round": round_.number,
            "state": round_.state,
            "reason": reason,
            "on_refusal": round_.run.on_refusal,
            "decision_hash": decision.snapshot_hash if decision else None,
            "failed_rules": failed,
        },
        status=status.HTTP_200_OK,
    )


def _gate(actor: Actor, run: TrainingRun, number: int) -> Round:
    """Gate the round (creating it if the run has no such round yet) and route it."""
    from training.services import gate as gate_services
    from training.services.rounds import round_route_after_gate

    round_ = Round.objects.filter(run=run, number=number).first()
    if round_ is None or round_.state == RoundState.PLANNED:
        gate_services.round_gate(actor=actor, run=run, round_no=number)
        round_ = _round_of(run.pk, number)
    if round_.state == RoundState.GATED:
        round_ = round_route_after_gate(actor=actor, round=round_)
    return round_


class RoundTicketView(APIView):
    """POST: gate round n of the run and return a signed ticket, or the refusal and why."""

    permission_classes = [RolePermission]
    read_roles = ()
    write_roles = (roles.SERVICE,)

    @extend_schema(
        request=None, responses={201: shapes.TicketIssuedSerializer, 200: shapes.RefusalSerializer}
    )
    def post(self, request: Request, run_id: int, number: int) -> Response:
        run = get_object_or_404(TrainingRun, pk=run_id)
        if number < 1 or number > run.num_rounds:
            raise InvalidInput({"round": [f"run {run.pk} has rounds 1..{run.num_rounds}"]})
        actor = Actor.of(request.user)
        # A site that can no longer train loses its SuperNode binding before the gate runs.
        flower_services.supernodes_reconcile(
            actor=actor, run=run, superlink=configured_admin(settings.VAR_DIR / "flower")
        )
        round_ = _gate(actor, run, number)
        if round_.state not in flower_services.TICKET_STATES:
            return _refusal(round_, round_.state_reason or f"round is {round_.state}")
        try:
            ticket = flower_services.round_ticket_issue(actor=actor, round=round_)
        except TransitionNotAllowed as exc:
            return _refusal(round_, str(exc))
        if round_.state == RoundState.PLACEMENT_VERIFIED:
            # An orchestrated round (issue 6) runs from the moment its ticket exists.
            from training.services.orchestrate import round_mark_running

            round_mark_running(actor=actor, round=round_, ticket_id=ticket.pk)
        return Response(
            {
                "allowed": True,
                "run_id": run.pk,
                "round": number,
                "on_refusal": run.on_refusal,
                "ticket": {
                    "id": ticket.pk,
                    "body": ticket.body,
                    "signature": ticket.signature,
                    "key_id": ticket.key_id,
                    "expires_at": ticket.expires_at.isoformat(),
                },
            },
            status=status.HTTP_201_CREATED,
        )


class RoundUpdatesView(APIView):
    """POST: record the round's site update hashes and its aggregate hash."""

    permission_classes = [RolePermission]
    read_roles = (roles.DPO, roles.AUDITOR, roles.SERVICE)
    write_roles = (roles.SERVICE,)

    @extend_schema(responses={200: shapes.ModelUpdateSerializer(many=True)})
    def get(self, request: Request, run_id: int, number: int) -> Response:
        round_ = _round_of(run_id, number)
        return Response(
            [
                {
                    "kind": u.kind,
                    "site_id": u.site_id,
                    "node_id": u.node_id,
                    "update_hash": u.update_hash,
                    "num_examples": u.num_examples,
                    "records_used": u.records_used,
                    "records_excluded": u.records_excluded,
                    "metrics": u.metrics,
                    "accepted": u.accepted,
                    "rejection_reason": u.rejection_reason,
                }
                for u in round_.updates.order_by("pk")
            ]
        )

    @extend_schema(
        request=shapes.UpdatesReportSerializer,
        responses={201: shapes.RecordedUpdateSerializer(many=True)},
    )
    def post(self, request: Request, run_id: int, number: int) -> Response:
        round_ = _round_of(run_id, number)
        data = request.data if isinstance(request.data, dict) else {}
        aggregate = data.get("aggregate_hash")
        if aggregate is not None and not isinstance(aggregate, str):
            raise InvalidInput({"aggregate_hash": ["must be 64 lowercase hex digits"]})
        rows = flower_services.model_updates_record(
            actor=Actor.of(request.user),
            round=round_,
            updates=flower_services.parse_update_reports(data.get("updates")),
            rejected=flower_services.parse_update_reports(data.get("rejected", [])),
            aggregate_hash=aggregate,
            dp=data.get("dp"),
            site_refusals=data.get("site_refusals"),
        )
        return Response(
            [
                {
                    "id": r.pk,
                    "kind": r.kind,
                    "node_id": r.node_id,
                    "site_id": r.site_id,
                    "accepted": r.accepted,
                    "rejection_reason": r.rejection_reason,
                }
                for r in rows
            ],
            status=status.HTTP_201_CREATED,
        )


class RoundExclusionsView(APIView):
    """GET ?site=<slug>: the subjects that site must leave out of round n."""

    permission_classes = [RolePermission]
    read_roles = (roles.SERVICE, roles.SITE_STEWARD, roles.DPO)
    write_roles = ()

    @extend_schema(parameters=[_SITE], responses={200: shapes.SubjectListSerializer})
    def get(self, request: Request, run_id: int, number: int) -> Response:
        slug = request.query_params.get("site", "")
        if not slug:
            raise InvalidInput({"site": ["name the site by its slug"]})
        site = Site.objects.filter(slug=slug).first()
        if site is None:
            raise InvalidInput({"site": [f"no site {slug!r}"]})
        if not roles.has_role(request.user, roles.SERVICE, roles.DPO):
            # A steward sees only its own site's list.
            own = SiteSteward.objects.filter(user=request.user).values_list("site_id", flat=True)
            if site.pk not in set(own):
                raise PermissionDenied("a site steward reads only its own site's exclusions")
        listing = flower_services.round_exclusions(round=_round_of(run_id, number), site=site)
        return Response(
            {
                "site": listing.site_slug,
                "round": number,
                "digest": listing.digest,
                "count": len(listing.pseudonyms),
                "pseudonyms": listing.pseudonyms,
            }
        )


class RoundAllowedView(RoundExclusionsView):
    """GET ?site=<slug>: the only subjects that site may train on in round n."""

    @extend_schema(parameters=[_SITE], responses={200: shapes.SubjectListSerializer})
    def get(self, request: Request, run_id: int, number: int) -> Response:
        slug = request.query_params.get("site", "")
        if not slug:
            raise InvalidInput({"site": ["name the site by its slug"]})
        site = Site.objects.filter(slug=slug).first()
        if site is None:
            raise InvalidInput({"site": [f"no site {slug!r}"]})
        if not roles.has_role(request.user, roles.SERVICE, roles.DPO):
            own = SiteSteward.objects.filter(user=request.user).values_list("site_id", flat=True)
            if site.pk not in set(own):
                raise PermissionDenied("a site steward reads only its own site's allow-list")
        listing = flower_services.round_allowed(round=_round_of(run_id, number), site=site)
        return Response(
            {
                "site": listing.site_slug,
                "round": number,
                "digest": listing.digest,
                "count": len(listing.pseudonyms),
                "pseudonyms": listing.pseudonyms,
            }
        )


class SupernodeView(APIView):
    """POST: bind a site to its Flower node id; DELETE: unbind it (with a reason)."""

    permission_classes = [RolePermission]
    read_roles = ()
    write_roles = (roles.SERVICE, roles.OPERATOR)

    @extend_schema(
        request=shapes.SupernodeBindSerializer, responses={201: shapes.SupernodeBoundSerializer}
    )
    def post(self, request: Request, slug: str) -> Response:
        site = get_object_or_404(Site, slug=slug)
        data = request.data if isinstance(request.data, dict) else {}
        site = flower_services.supernode_register(
            actor=Actor.of(request.user),
            site=site,
            node_id=str(data.get("node_id", "")),
            public_key=str(data.get("public_key", "")),
        )
        return Response({"site": site.slug, "node_id": site.flower_node_id}, status=201)

    @extend_schema(request=shapes.SupernodeUnbindSerializer, responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        site = get_object_or_404(Site, slug=slug)
        data = request.data if isinstance(request.data, dict) else {}
        flower_services.supernode_unregister(
            actor=Actor.of(request.user), site=site, reason=str(data.get("reason", ""))
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class PublicKeyView(APIView):
    """GET: fedgov's active ticket-signing public key (PEM) and its key id."""

    permission_classes = [RolePermission]
    read_roles = roles.ALL_ROLES
    write_roles = ()

    @extend_schema(responses={200: shapes.PublicKeySerializer})
    def get(self, request: Request) -> Response:
        key = active_key()
        return Response({"key_id": key.key_id, "public_key_pem": public_pem(key.public_key)})
