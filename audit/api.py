"""Read-only REST API of the ledger for auditors, DPOs and legal teams.

Nothing here writes. Query parameters are checked strictly: an unknown, malformed or
out-of-range parameter is a 400 naming it, never silently ignored (a typo in a filter
must not return the whole ledger as if it were the answer).
"""

from __future__ import annotations

import base64
import json

import django_filters
from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import keys, note, selectors
from audit.models import LedgerEntry
from fedgov import roles
from fedgov.errors import InvalidInput
from fedgov.roles import RolePermission

LEDGER_READERS = (roles.AUDITOR, roles.DPO, roles.LEGAL)
# Sequence numbers and sizes are 64-bit in the database; larger numbers are bad input.
MAX_INT = 2**63 - 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class _LedgerView:
    permission_classes = [RolePermission]
    read_roles = LEDGER_READERS
    write_roles: tuple[str, ...] = ()
    allowed_params: frozenset[str] = frozenset()

    def check_params(self, request: Request) -> None:
        unknown = sorted(set(request.query_params) - self.allowed_params - {"format"})
        if unknown:
            raise InvalidInput({name: ["unknown query parameter"] for name in unknown})


def int_param(request: Request, name: str, *, minimum: int, required: bool = True) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidInput({name: ["this parameter is required"]})
        return None
    if not raw.isdigit():
        raise InvalidInput({name: [f"must be a whole number, got {raw!r}"]})
    value = int(raw)
    if value < minimum:
        raise InvalidInput({name: [f"must be at least {minimum}"]})
    if value > MAX_INT:
        raise InvalidInput({name: [f"must be at most {MAX_INT}"]})
    return value


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000

    def get_limit(self, request):
        if self.limit_query_param in request.query_params:
            limit = int_param(request, self.limit_query_param, minimum=1)
            if limit > self.max_limit:
                raise InvalidInput({self.limit_query_param: [f"at most {self.max_limit}"]})
            return limit
        return self.default_limit

    def get_offset(self, request):
        return int_param(request, self.offset_query_param, minimum=0, required=False) or 0


class EntryFilter(django_filters.FilterSet):
    event_type = django_filters.CharFilter()
    subject_type = django_filters.CharFilter()
    subject_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LedgerEntry
        fields = ["event_type", "subject_type", "subject_id", "since", "until"]


class EntrySerializer(serializers.ModelSerializer):
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
        ]

    def get_payload(self, entry: LedgerEntry) -> dict:
        return json.loads(entry.payload)

    def get_leaf_hash(self, entry: LedgerEntry) -> str:
        return bytes(entry.leaf_hash).hex()


class EntryList(_LedgerView, generics.ListAPIView):
    """Ledger entries, oldest first, filterable by type, subject and time."""

    serializer_class = EntrySerializer
    filterset_class = EntryFilter
    pagination_class = StrictLimitOffsetPagination
    queryset = LedgerEntry.objects.order_by("seq")
    allowed_params = frozenset(
        {"event_type", "subject_type", "subject_id", "since", "until", "limit", "offset"}
    )

    def list(self, request, *args, **kwargs):
        self.check_params(request)
        return super().list(request, *args, **kwargs)


def _checkpoint_body(view: selectors.CheckpointView) -> dict:
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

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        self.check_params(request)
        view = selectors.latest_checkpoint()
        if view is None:
            raise Http404("no checkpoint has been signed yet")
        return Response(_checkpoint_body(view))


class CheckpointAtSize(_LedgerView, APIView):
    """The signed checkpoint at one tree size."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, size: int) -> Response:
        self.check_params(request)
        if size > MAX_INT:
            raise InvalidInput({"size": [f"must be at most {MAX_INT}"]})
        view = selectors.checkpoint_at(size)
        if view is None:
            raise Http404(f"no checkpoint at size {size}")
        return Response(_checkpoint_body(view))


class InclusionProofView(_LedgerView, APIView):
    """RFC 9162 inclusion proof of entry ``seq`` in the tree of ``size`` leaves."""

    allowed_params = frozenset({"seq", "size"})

    @extend_schema(
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
            raise InvalidInput({"size": [f"the tree has {tree} entries"]})
        if seq >= size:
            raise InvalidInput({"seq": [f"must be below size ({size})"]})
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
            raise InvalidInput({"to": [f"the tree has {tree} entries"]})
        if size1 > size2:
            raise InvalidInput({"from": [f"must not exceed to ({size2})"]})
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

    @extend_schema(responses={200: {"type": "array", "items": {"type": "object"}}})
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
