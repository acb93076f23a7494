"""REST API of the ledger for auditors, DPOs and legal teams: entries, proofs, retention.

The ledger itself is read-only here. The one write is legal holds: Legal and the DPO
place and release them through ``audit.retention``, which validates and records each in
the ledger. Query parameters are checked strictly: an unknown, malformed or out-of-range
parameter is a 400 naming it, never silently ignored (a typo in a filter must not return
the whole ledger as if it were the answer).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Literal, TypedDict, overload

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import keys, note, selectors
from audit.models import LedgerEntry, LegalHold
from audit.retention import legal_hold_place, legal_hold_release, retention_apply
from fedgov import roles
from fedgov.actors import Actor
from fedgov.api import OutputSerializer
from fedgov.errors import InvalidInput
from fedgov.roles import RolePermission
from fedgov.validation import INT64_MAX, int_from_text

LEDGER_READERS = (roles.AUDITOR, roles.DPO, roles.LEGAL)
# Who may suspend retention: the people answerable for litigation and for Art. 17.
HOLD_KEEPERS = (roles.LEGAL, roles.DPO)
# Sequence numbers and sizes are 64-bit in the database; larger numbers are bad input.
MAX_INT = INT64_MAX


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class _LedgerView(APIView):
    permission_classes = [RolePermission]
    read_roles: tuple[str, ...] = LEDGER_READERS
    write_roles: tuple[str, ...] = ()
    allowed_params: frozenset[str] = frozenset()

    def check_params(self, request: Request) -> None:
        unknown = sorted(set(request.query_params) - self.allowed_params - {"format"})
        if unknown:
            raise InvalidInput({name: [_("unknown query parameter")] for name in unknown})


@overload
def int_param(
    request: Request, name: str, *, minimum: int, required: Literal[True] = ...
) -> int: ...
@overload
def int_param(request: Request, name: str, *, minimum: int, required: bool) -> int | None: ...
def int_param(request: Request, name: str, *, minimum: int, required: bool = True) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidInput({name: [_("this parameter is required")]})
        return None
    return int_from_text(raw, field=name, minimum=minimum, maximum=MAX_INT)


def _tree_has(size: int) -> Any:
    # A tree size is an identifier a verifier compares: written as Python writes it.
    return format_lazy(_("the tree has {size} entries"), size=str(size))


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000

    def get_limit(self, request: Request) -> int | None:
        if self.limit_query_param in request.query_params:
            limit = int_param(request, self.limit_query_param, minimum=1)
            if limit > self.max_limit:
                raise InvalidInput(
                    {
                        self.limit_query_param: [
                            format_lazy(_("must be at most {maximum}"), maximum=str(self.max_limit))
                        ]
                    }
                )
            return limit
        return self.default_limit

    def get_offset(self, request: Request) -> int:
        return int_param(request, self.offset_query_param, minimum=0, required=False) or 0


class EntryFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter has no types
    event_type = django_filters.CharFilter()
    subject_type = django_filters.CharFilter()
    subject_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LedgerEntry
        fields = ["event_type", "subject_type", "subject_id", "since", "until"]


class EntrySerializer(serializers.ModelSerializer[LedgerEntry]):
    payload = serializers.SerializerMethodField()
    leaf_hash = serializers.SerializerMethodField()
    actor = serializers.CharField(source="actor_repr")

    class Meta:
        model = LedgerEntry
        fields = [
            "seq",
            "event_type",
            "actor_id",
            "actor",
            "subject_type",
            "subject_id",
            "created_at",
            "payload",
            "leaf_hash",
            "redacted_at",
        ]

    def get_payload(self, entry: LedgerEntry) -> dict[str, Any]:
        # ledger_append stores only JSON objects (audit.events checks each payload's keys).
        payload: dict[str, Any] = json.loads(entry.payload)
        return payload

    def get_leaf_hash(self, entry: LedgerEntry) -> str:
        return bytes(entry.leaf_hash).hex()


@extend_schema_view(
    get=extend_schema(
        description=_("Ledger entries, oldest first, filterable by event type, subject and time.")
    )
)
class EntryList(_LedgerView, generics.ListAPIView[LedgerEntry]):
    """Ledger entries, oldest first, filterable by type, subject and time."""

    serializer_class = EntrySerializer
    filterset_class = EntryFilter
    pagination_class = StrictLimitOffsetPagination
    queryset = LedgerEntry.objects.order_by("seq")
    allowed_params = frozenset(
        {"event_type", "subject_type", "subject_id", "since", "until", "limit", "offset"}
    )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.check_params(request)
        return super().list(request, *args, **kwargs)


class CheckpointBody(TypedDict):
    """A signed checkpoint as the API returns it."""

    size: int
    root: str
    root_hex: str
    created_at: datetime
    key_id: str
    note: str


def _checkpoint_body(view: selectors.CheckpointView) -> CheckpointBody:
    return {
        "size": view.size,
        "root": _b64(view.root),
        "root_hex": view.root.hex(),
        "created_at": view.created_at,
        "key_id": view.key_id,
        "note": view.note,
    }


class LatestCheckpoint(_LedgerView, APIView):
    """The most recent signed checkpoint (C2SP signed note in ``note``)."""

    @extend_schema(
        description=_(
            "The most recent signed checkpoint of the ledger (a C2SP signed note in `note`)."
        ),
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        self.check_params(request)
        view = selectors.latest_checkpoint()
        if view is None:
            raise Http404(_("no checkpoint has been signed yet"))
        return Response(_checkpoint_body(view))


class CheckpointAtSize(_LedgerView, APIView):
    """The signed checkpoint at one tree size."""

    @extend_schema(
        description=_("The ledger's signed checkpoint at one tree size."), responses={200: dict}
    )
    def get(self, request: Request, size: int) -> Response:
        self.check_params(request)
        if size > MAX_INT:
            raise InvalidInput(
                {"size": [format_lazy(_("must be at most {maximum}"), maximum=str(MAX_INT))]}
            )
        view = selectors.checkpoint_at(size)
        if view is None:
            raise Http404(format_lazy(_("no checkpoint at size {size}"), size=str(size)))
        return Response(_checkpoint_body(view))


class InclusionProofView(_LedgerView, APIView):
    """RFC 9162 inclusion proof of entry ``seq`` in the tree of ``size`` leaves."""

    allowed_params = frozenset({"seq", "size"})

    @extend_schema(
        description=_(
            "RFC 9162 inclusion proof of ledger entry `seq` in the tree of `size` entries."
        ),
        parameters=[
            OpenApiParameter("seq", int, required=True),
            OpenApiParameter("size", int, required=True),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        self.check_params(request)
        seq = int_param(request, "seq", minimum=0)
        size = int_param(request, "size", minimum=1)
        tree = selectors.tree_size()
        if size > tree:
            raise InvalidInput({"size": [_tree_has(tree)]})
        if seq >= size:
            raise InvalidInput(
                {"seq": [format_lazy(_("must be below size ({size})"), size=str(size))]}
            )
        proof = selectors.inclusion(seq=seq, size=size)
        return Response(
            {
                "seq": proof.seq,
                "size": proof.size,
                "leaf_hash": _b64(proof.leaf_hash),
                "root": _b64(proof.root),
                "proof": [_b64(p) for p in proof.path],
            }
        )


class ConsistencyProofView(_LedgerView, APIView):
    """RFC 9162 consistency proof between tree sizes ``from`` and ``to``."""

    allowed_params = frozenset({"from", "to"})

    @extend_schema(
        description=_(
            "RFC 9162 consistency proof between the ledger's tree sizes `from` and `to`."
        ),
        parameters=[
            OpenApiParameter("from", int, required=True),
            OpenApiParameter("to", int, required=True),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        self.check_params(request)
        size1 = int_param(request, "from", minimum=1)
        size2 = int_param(request, "to", minimum=1)
        tree = selectors.tree_size()
        if size2 > tree:
            raise InvalidInput({"to": [_tree_has(tree)]})
        if size1 > size2:
            raise InvalidInput(
                {"from": [format_lazy(_("must not exceed to ({size})"), size=str(size2))]}
            )
        proof = selectors.consistency(size1=size1, size2=size2)
        return Response(
            {
                "from": size1,
                "to": size2,
                "root1": _b64(proof.root1),
                "root2": _b64(proof.root2),
                "proof": [_b64(p) for p in proof.path],
            }
        )


class PublicKeys(_LedgerView, APIView):
    """Every public key fedgov has signed with; ``active`` marks the one that signs now."""

    @extend_schema(
        description=_(
            "Every public key fedgov has signed the ledger with; `active` marks the one that "
            "signs now."
        ),
        responses={200: {"type": "array", "items": {"type": "object"}}},
    )
    def get(self, request: Request) -> Response:
        self.check_params(request)
        origin = settings.FEDGOV_LEDGER_ORIGIN
        return Response(
            [
                {
                    "key_id": info.key_id,
                    "active": info.active,
                    "name": origin,
                    "key_hash": note.key_hash(origin, info.public_key).hex(),
                    "public_key": _b64(note.raw_public(info.public_key)),
                    "public_key_pem": keys.public_pem(info.public_key),
                    "vkey": note.verifier_key(origin, info.public_key),
                }
                for info in keys.key_infos()
            ]
        )


# --------------------------------------------------------------------- legal holds


class LegalHoldSerializer(serializers.ModelSerializer[LegalHold]):
    active = serializers.BooleanField(read_only=True)
    scope = serializers.CharField(read_only=True)

    class Meta:
        model = LegalHold
        fields = [
            "id",
            "reference",
            "reason",
            "subject_type",
            "subject_id",
            "held_from",
            "held_until",
            "scope",
            "active",
            "placed_by",
            "placed_at",
            "released_by",
            "released_at",
            "release_reason",
        ]
        read_only_fields = fields


class LegalHoldPlaceSerializer(serializers.Serializer[None]):
    """A hold to place: a subject takes both its type and id; a period may be open-ended."""

    # Only the body's shape is checked here; legal_hold_place says what the values must be.
    reference = serializers.CharField(max_length=64, allow_blank=True)
    reason = serializers.CharField(allow_blank=True)
    subject_type = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )
    subject_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    held_from = serializers.DateTimeField(required=False, allow_null=True, default=None)
    held_until = serializers.DateTimeField(required=False, allow_null=True, default=None)


class LegalHoldReleaseSerializer(serializers.Serializer[None]):
    reason = serializers.CharField(allow_blank=True)


def _body(serializer_class: type[serializers.Serializer[None]], request: Request) -> dict[str, Any]:
    """The validated body; a field the endpoint does not take is a 400, not ignored."""
    body = serializer_class(data=request.data)
    if hasattr(request.data, "keys"):
        unknown = sorted(set(request.data.keys()) - set(body.fields))
        if unknown:
            raise InvalidInput({name: [_("not a field this endpoint takes")] for name in unknown})
    if not body.is_valid():
        raise InvalidInput(body.errors)
    return dict(body.validated_data)


def _flag(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise InvalidInput({name: [format_lazy(_("must be true or false, got {raw!r}"), raw=raw)]})
    return raw.lower() == "true"


class _HoldView(_LedgerView):
    write_roles: tuple[str, ...] = HOLD_KEEPERS


class HoldList(_HoldView, generics.ListAPIView[LegalHold]):
    """Legal holds, newest first; ``active=true|false`` keeps only held or released ones.

    Retention skips every entry an active hold covers.
    """

    serializer_class = LegalHoldSerializer
    pagination_class = StrictLimitOffsetPagination
    allowed_params = frozenset({"active", "limit", "offset"})

    def get_queryset(self) -> QuerySet[LegalHold]:
        holds = LegalHold.objects.order_by("-placed_at", "-pk")
        active = _flag(self.request, "active")
        if active is not None:
            holds = holds.filter(released_at__isnull=active)
        return holds

    @extend_schema(
        description=_(
            "Legal holds, newest first; `active=true` or `active=false` keeps only held or "
            "released ones. Retention skips every ledger entry an active hold covers."
        ),
        parameters=[OpenApiParameter("active", bool)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.check_params(request)
        return self.list(request, *args, **kwargs)

    @extend_schema(
        description=_(
            "Place a legal hold (Legal, DPO). Without a subject and a period it covers the "
            "whole ledger. A 400 names each field it refuses; nothing is written."
        ),
        request=LegalHoldPlaceSerializer,
        responses={201: LegalHoldSerializer},
    )
    def post(self, request: Request) -> Response:
        self.check_params(request)
        fields = _body(LegalHoldPlaceSerializer, request)
        hold = legal_hold_place(actor=Actor.of(request.user), **fields)
        return Response(LegalHoldSerializer(hold).data, status=status.HTTP_201_CREATED)


class HoldDetail(_HoldView, APIView):
    """One legal hold, active or released."""

    write_roles = ()

    @extend_schema(
        description=_("One legal hold, active or released."), responses={200: LegalHoldSerializer}
    )
    def get(self, request: Request, pk: int) -> Response:
        self.check_params(request)
        return Response(LegalHoldSerializer(get_object_or_404(LegalHold, pk=pk)).data)


class HoldRelease(_HoldView, APIView):
    """Release an active hold, saying why (409 if it was already released)."""

    read_roles = ()

    @extend_schema(
        description=_("Release an active legal hold, saying why (409 if it was already released)."),
        request=LegalHoldReleaseSerializer,
        responses={200: LegalHoldSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        self.check_params(request)
        hold = get_object_or_404(LegalHold, pk=pk)
        reason = _body(LegalHoldReleaseSerializer, request)["reason"]
        released = legal_hold_release(actor=Actor.of(request.user), hold=hold, reason=reason)
        return Response(LegalHoldSerializer(released).data)


class RetentionPreviewSerializer(OutputSerializer):
    would_redact = serializers.IntegerField()
    first_seq = serializers.IntegerField(allow_null=True)
    last_seq = serializers.IntegerField(allow_null=True)
    held = serializers.IntegerField()
    awaiting_checkpoint = serializers.IntegerField()


class RetentionSerializer(OutputSerializer):
    retention_days = serializers.IntegerField()
    minimum_days = serializers.IntegerField()
    cutoff = serializers.DateTimeField()
    active_holds = serializers.IntegerField()
    redacted_entries = serializers.IntegerField()
    preview = RetentionPreviewSerializer()


class RetentionStatus(_LedgerView, APIView):
    """The retention period, what it has removed so far and what a run now would remove.

    The preview is a dry run of the retention service: it counts, and writes nothing.
    """

    @extend_schema(
        description=_(
            "The retention period, what retention has removed so far and what it would "
            "remove now: a dry run that counts and writes nothing."
        ),
        responses={200: RetentionSerializer},
    )
    def get(self, request: Request) -> Response:
        self.check_params(request)
        outcome = retention_apply(actor=Actor.of(request.user), dry_run=True)
        body = {
            "retention_days": outcome.retention_days,
            "minimum_days": settings.FEDGOV_LEDGER_RETENTION_MIN_DAYS,
            "cutoff": outcome.cutoff,
            "active_holds": outcome.active_holds,
            "redacted_entries": LedgerEntry.objects.filter(redacted_at__isnull=False).count(),
            "preview": {
                "would_redact": outcome.redacted,
                "first_seq": outcome.first_seq,
                "last_seq": outcome.last_seq,
                "held": outcome.held,
                "awaiting_checkpoint": outcome.awaiting_checkpoint,
            },
        }
        return Response(RetentionSerializer(body).data)
