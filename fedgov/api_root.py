"""``/api/v1/``: the API root, listing every resource collection the API serves.

The list is read from the URL configuration itself, so a route an app adds appears here
without anyone remembering to. Routes that need an id (``/runs/{id}``) are reached from
their collection and are not listed; neither are DRF's ``.json`` format suffixes.
"""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

_REGEX_LITERAL = re.compile(r"^\^?(?P<path>[A-Za-z0-9/_-]*)\$?$")


def _literal(pattern) -> str | None:
    """The fixed path of a pattern, or None when it captures anything."""
    text = str(pattern.pattern)
    if "<" in text or "(" in text:
        return None
    match = _REGEX_LITERAL.match(text)
    return match.group("path") if match else None


def collection_paths(patterns=None, prefix: str = "") -> list[str]:
    """Every parameter-free path under /api/v1/, in URL configuration order."""
    if patterns is None:
        # From the root URLconf: it registers the `id` converter the API routes use.
        api = "api/v1/"
        return [
            p[len(api) :]
            for p in collection_paths(get_resolver().url_patterns)
            if p.startswith(api) and p != api
        ]
    found: list[str] = []
    for entry in patterns:
        literal = _literal(entry)
        if literal is None:
            continue
        if isinstance(entry, URLResolver):
            found += collection_paths(entry.url_patterns, prefix + literal)
        elif isinstance(entry, URLPattern) and prefix + literal:
            path = prefix + literal
            if path not in found:
                found.append(path)
    return found


class ApiRoot(APIView):
    """Every resource of the fedgov API, by path, with the OpenAPI schema and its docs."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        summary=_("Every resource of the API"),
        description=_(
            "Every resource collection of the API by its path, with links to the OpenAPI "
            "schema and its documentation."
        ),
    )
    def get(self, request: Request) -> Response:
        base = request.build_absolute_uri("/api/v1/")
        resources = {path: base + path for path in collection_paths()}
        return Response(
            {
                "resources": resources,
                "schema": reverse("schema", request=request),
                "docs": reverse("api-docs", request=request),
                "redoc": reverse("api-redoc", request=request),
            }
        )
