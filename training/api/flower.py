"""REST endpoints the governed Flower strategy and the sites' client mods call."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
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
from training.services import orchestrate

_SITE = OpenApiParameter("site", str, required=True, description=_("the site's slug"))


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
        description=_(
            "Gate a round of the run and return a signed ticket, or the refusal and why."
        ),
        request=None,
        responses={201: shapes.TicketIssuedSerializer, 200: shapes.RefusalSerializer},
    )
    def post(self, request: Request, run_id: int, number: int) -> Response:
        run = get_object_or_404(TrainingRun, pk=run_id)
        if number < 1 or number > run.num_rounds:
            raise InvalidInput({"round": [f"run {run.pk} has rounds 1..{run.num_rounds}"]})
        data = request.data if isinstance(request.data, dict) else {}
        message_type = data.get("message_type", "train")
        flower_run_id = data.get("flower_run_id", "")
        if message_type not in ("train", "evaluate"):
            raise InvalidInput({"message_type": ["must be train or evaluate"]})
        if not isinstance(flower_run_id, str | int) or isinstance(flower_run_id, bool):
            raise InvalidInput({"flower_run_id": ["must be a Flower run id (ASCII digits)"]})
        actor = Actor.of(request.user)
        if message_type == "evaluate":
            # Evaluation follows the round's training: no new gate, the same sites.
            round_ = Round.objects.filter(run=run, number=number).first()
            if round_ is None:
                return Response(
                    {"allowed": False, "run_id": run.pk, "round": number, "state": "",
                     "reason": "the round has not trained: nothing to evaluate",
                     "on_refusal": run.on_refusal, "failed_rules": []},
                    status=status.HTTP_200_OK,
                )  # fmt: skip
            try:
                ticket = flower_services.round_ticket_issue(
                    actor=actor,
                    round=round_,
                    message_type="evaluate",
                    flower_run_id=str(flower_run_id),
                )
            except TransitionNotAllowed as exc:
                return _refusal(round_, str(exc))
            return _granted(run, number, ticket)
        # A site that can no longer train loses its SuperNode binding before the gate runs.
        flower_services.supernodes_reconcile(
            actor=actor, run=run, superlink=configured_admin(settings.VAR_DIR / "flower")
        )
        round_ = _gate(actor, run, number)
        if round_.state == RoundState.APPROVED and orchestrate.local_host_sites():
            # The local deployment: its SuperNodes run on this host, whose configured
            # country is checked here as a VM's would be at provisioning.
            orchestrate.round_place_on_host(actor=actor, round=round_)
            round_ = _round_of(run.pk, number)
        if round_.state in (RoundState.APPROVED, RoundState.PROVISIONING):
            # Cleared by the gate but not placed: no ticket, and nothing is written.
            return Response(
                {
                    "allowed": False,
                    "run_id": run.pk,
                    "round": number,
                    "state": round_.state,
                    "reason": (
                        f"round {number} is {round_.state}: a ticket is issued only once "
                        "the SuperNodes' placement is verified"
                    ),
                },
                status=status.HTTP_409_CONFLICT,
            )
        if round_.state not in flower_services.TICKET_STATES:
            return _refusal(round_, round_.state_reason or f"round is {round_.state}")
        try:
            ticket = flower_services.round_ticket_issue(
                actor=actor, round=round_, flower_run_id=str(flower_run_id)
            )
        except TransitionNotAllowed as exc:
            return _refusal(round_, str(exc))
        if round_.state == RoundState.PLACEMENT_VERIFIED:
            # A round runs from the moment its ticket exists (placement verified first: a
            # VM's, or this host's for the local deployment and `flwr run` alone). Running,
            # the sweep waits for its updates instead of provisioning it.
            orchestrate.round_mark_running(actor=actor, round=round_, ticket_id=ticket.pk)
        return _granted(run, number, ticket)


def _granted(run: TrainingRun, number: int, ticket) -> Response:
    return Response(
        {
            "allowed": True,
            "run_id": run.pk,
            "round": number,
            "on_refusal": run.on_refusal,
            "ticket": {
                "id": ticket.pk,
                "message_type": ticket.message_type,
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

    @extend_schema(
        description=_(
            "The model updates recorded for the round: each site's update hash, and the aggregate."
        ),
        responses={200: shapes.ModelUpdateSerializer(many=True)},
    )
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
        description=_("Record the round's site update hashes and its aggregate hash."),
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


def _own_site_only(kind: str) -> Any:
    # One whole sentence per list, so each language can inflect it.
    if kind == "exclusions":
        return _("a site steward reads only its own site's exclusions")
    return _("a site steward reads only its own site's allow-list")


def _site_listing(request: Request, run_id: int, number: int, *, kind: str, read: Any) -> Response:
    """One site's subject list for round n (``kind`` names it in the steward's refusal).

    ``?site=<slug>`` names the site; a steward reads only its own site's list.
    """
    slug = request.query_params.get("site", "")
    if not slug:
        raise InvalidInput({"site": [_("name the site by its slug")]})
    site = Site.objects.filter(slug=slug).first()
    if site is None:
        raise InvalidInput({"site": [format_lazy(_("no site {slug!r}"), slug=slug)]})
    if not roles.has_role(request.user, roles.SERVICE, roles.DPO):
        own = SiteSteward.objects.filter(user=request.user).values_list("site_id", flat=True)
        if site.pk not in set(own):
            raise PermissionDenied(_own_site_only(kind))
    listing = read(round=_round_of(run_id, number), site=site)
    return Response(
        {
            "site": listing.site_slug,
            "round": number,
            "digest": listing.digest,
            "count": len(listing.pseudonyms),
            "pseudonyms": listing.pseudonyms,
        }
    )


class RoundEvaluationsView(APIView):
    """POST: record the sites' federated-evaluation replies under the round's evaluate ticket."""

    permission_classes = [RolePermission]
    read_roles = ()
    write_roles = (roles.SERVICE,)

    @extend_schema(
        description=_(
            "Record the sites' federated evaluation replies under the round's evaluation ticket."
        ),
        request=shapes.EvaluationsReportSerializer,
        responses={201: shapes.EvaluationsRecordedSerializer},
    )
    def post(self, request: Request, run_id: int, number: int) -> Response:
        round_ = _round_of(run_id, number)
        data = request.data if isinstance(request.data, dict) else {}
        recorded = flower_services.round_evaluations_record(
            actor=Actor.of(request.user),
            round=round_,
            evaluations=flower_services.parse_update_reports(data.get("evaluations")),
            rejected=flower_services.parse_update_reports(data.get("rejected", [])),
            site_refusals=data.get("site_refusals"),
        )
        return Response({"recorded": recorded}, status=status.HTTP_201_CREATED)


class RoundCloseView(APIView):
    """POST: close a round a Flower run drove by itself (``flwr run``, no ``federate``).

    Moves a running round whose aggregate is recorded to aggregated, then closed with a
    signed checkpoint; answers the round's state (409 when it cannot close yet).
    """

    permission_classes = [RolePermission]
    read_roles = ()
    write_roles = (roles.SERVICE, roles.OPERATOR)

    @extend_schema(
        description=_(
            "Close a round a Flower run drove by itself (`flwr run`): its recorded aggregate "
            "is closed with a signed checkpoint. Answers the round's state; 409 while it "
            "cannot close yet."
        ),
        request=None,
        responses={200: shapes.RoundClosedSerializer, 409: shapes.RoundClosedSerializer},
    )
    def post(self, request: Request, run_id: int, number: int) -> Response:
        from training.services.orchestrate import round_close, round_finish

        actor = Actor.of(request.user)
        round_ = _round_of(run_id, number)
        if round_.state == RoundState.RUNNING:
            round_finish(actor=actor, round=round_)
            round_.refresh_from_db()
        if round_.state in (RoundState.AGGREGATED, RoundState.CLOSED):
            round_close(actor=actor, round=round_)
            round_.refresh_from_db()
        code = status.HTTP_200_OK if round_.state == RoundState.CLOSED else status.HTTP_409_CONFLICT
        return Response(
            {"run_id": run_id, "round": number, "state": round_.state,
             "reason": round_.state_reason},
            status=code,
        )  # fmt: skip


class RoundExclusionsView(APIView):
    """GET ?site=<slug>: the subjects that site must leave out of round n."""

    permission_classes = [RolePermission]
    read_roles = (roles.SERVICE, roles.SITE_STEWARD, roles.DPO)
    write_roles = ()

    @extend_schema(
        description=_("The data subjects the site named by `site` must leave out of the round."),
        parameters=[_SITE],
        responses={200: shapes.SubjectListSerializer},
    )
    def get(self, request: Request, run_id: int, number: int) -> Response:
        return _site_listing(
            request, run_id, number, kind="exclusions", read=flower_services.round_exclusions
        )


class RoundAllowedView(RoundExclusionsView):
    """GET ?site=<slug>: the only subjects that site may train on in round n."""

    @extend_schema(
        description=_("The only data subjects the site named by `site` may train on in the round."),
        parameters=[_SITE],
        responses={200: shapes.SubjectListSerializer},
    )
    def get(self, request: Request, run_id: int, number: int) -> Response:
        return _site_listing(
            request, run_id, number, kind="allow-list", read=flower_services.round_allowed
        )


class SupernodeView(APIView):
    """POST: bind a site to its Flower node id; DELETE: unbind it (with a reason)."""

    permission_classes = [RolePermission]
    read_roles = ()
    write_roles = (roles.SERVICE, roles.OPERATOR)

    @extend_schema(
        description=_("Bind a site to the node id of its Flower SuperNode."),
        request=shapes.SupernodeBindSerializer,
        responses={201: shapes.SupernodeBoundSerializer},
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

    @extend_schema(
        description=_("Unbind a site from its Flower SuperNode, saying why."),
        request=shapes.SupernodeUnbindSerializer,
        responses={204: None},
    )
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

    @extend_schema(
        description=_("fedgov's active ticket-signing public key (PEM) and its key id."),
        responses={200: shapes.PublicKeySerializer},
    )
    def get(self, request: Request) -> Response:
        key = active_key()
        return Response({"key_id": key.key_id, "public_key_pem": public_pem(key.public_key)})
