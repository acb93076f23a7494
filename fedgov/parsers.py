"""Request body parsers that refuse hostile bodies before they cost memory or a 500.

Two limits apply to every API body:
- size, checked against ``Content-Length`` before a byte is read, and again while
  reading (a chunked body has no length to trust): ``FEDGOV_API_MAX_BODY_BYTES``;
- JSON nesting depth. CPython's decoder recurses once per level and raises
  ``RecursionError`` near 1,000 levels, which DRF does not catch (a 500), and anything
  deeper than a few levels would later meet recursive code too (serializers, RFC 8785
  canonicalisation). No fedgov endpoint takes more than four levels.

Both refusals are a 400 naming the ``body`` and the limit; nothing is parsed or written.
"""

from __future__ import annotations

import codecs
import json
from typing import IO, Any

from django.conf import settings
from django.utils.translation import gettext
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from fedgov.errors import InvalidInput
from fedgov.numbers import number

MAX_JSON_DEPTH = 32


def read_body(stream: IO[bytes] | None, parser_context: dict[str, Any] | None) -> bytes:
    """The whole body, or ``InvalidInput`` if it is larger than the configured limit.

    Reads at most one byte past the limit, whatever the client declared.
    """
    limit = settings.FEDGOV_API_MAX_BODY_BYTES
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise InvalidInput({"body": [_too_large(int(declared), limit)]})
    if stream is None:
        return b""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(
            {
                "body": [
                    gettext("is more than {limit} bytes; at most {limit} are accepted").format(
                        limit=number(limit)
                    )
                ]
            }
        )
    return data


def _too_large(size: int, limit: int) -> str:
    # Parsers run inside the request, so the reader's language is the active one.
    return gettext("is {size} bytes; at most {limit} are accepted").format(
        size=number(size), limit=number(limit)
    )


def _too_deep() -> str:
    return gettext("JSON nests more than {limit} levels deep").format(limit=number(MAX_JSON_DEPTH))


def nesting_exceeds(value: Any, limit: int) -> bool:
    """True if ``value`` nests lists or objects more than ``limit`` levels deep.

    Iterative, so the check itself cannot hit the recursion limit it guards against.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _refuse_constant(name: str) -> None:
    # RFC 8259 has no NaN or Infinity; DRF's strict JSON mode refuses them the same way.
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a size limit before reading and a nesting-depth limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = read_body(stream, parser_context)
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise InvalidInput({"body": [_too_deep()]}) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if nesting_exceeds(data, MAX_JSON_DEPTH):
            raise InvalidInput({"body": [_too_deep()]})
        return data
