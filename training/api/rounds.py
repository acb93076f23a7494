"""Round actions for people and automation: approve, reject, abort."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from fedgov import roles
from fedgov.actors import Actor
from fedgov.roles import RolePermission
from training.models import Round
from training.services.rounds import round_abort, round_approve, round_reject


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, allow_blank=False, trim_whitespace=True)


class RoundStateSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id", read_only=True)

    class Meta:
        model = Round
        fields = ["id", "run", "number", "state", "state_reason", "updated_at"]


class _RoundActionView(APIView):
    permission_classes = [RolePermission]
    read_roles = ()
    write_roles = (roles.OPERATOR, roles.DPO)

    def act(self, actor: Actor, round_: Round, reason: str) -> None:
        raise NotImplementedError

    @extend_schema(request=ReasonSerializer, responses={200: RoundStateSerializer})
    def post(self, request, run_id: int, number: int):
        round_ = get_object_or_404(Round, run_id=run_id, number=number)
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.act(Actor.of(request.user), round_, body.validated_data["reason"])
        round_.refresh_from_db()
        return Response(RoundStateSerializer(round_).data, status=status.HTTP_200_OK)


@extend_schema_view(
    post=extend_schema(
        description=_(
            "Approve a round awaiting approval (four-eyes approval: not by the person "
            "who requested it)."
        )
    )
)
class RoundApproveView(_RoundActionView):
    """Approve a round awaiting approval (four-eyes: not its requester)."""

    def act(self, actor, round_, reason):
        round_approve(actor=actor, round=round_, reason=reason)


@extend_schema_view(
    post=extend_schema(description=_("Reject a round awaiting approval; it ends as rejected."))
)
class RoundRejectView(_RoundActionView):
    """Reject a round awaiting approval; it ends in ``rejected``."""

    def act(self, actor, round_, reason):
        round_reject(actor=actor, round=round_, reason=reason)


@extend_schema_view(
    post=extend_schema(
        description=_("Abort a round that has not ended; its workloads are terminated.")
    )
)
class RoundAbortView(_RoundActionView):
    """Abort a round that has not ended; its workloads are terminated."""

    def act(self, actor, round_, reason):
        round_abort(actor=actor, round=round_, reason=reason)


__all__ = ["RoundAbortView", "RoundApproveView", "RoundRejectView"]
