"""The bytes a ledger leaf hashes: one entry as RFC 8785 canonical JSON; standard library only.

A leaf covers the entry's metadata as well as its payload, so changing the recorded event
type, subject, actor or time is as detectable as changing the payload. The document is

    {"actor":A,"event_type":E,"payload":P,"seq":N,"subject_id":S,"subject_type":T,"time":W}

with members in that (RFC 8785, code-point) order, no whitespace, ``P`` the payload's own
canonical JSON, ``W`` UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` and ``A`` the actor's
pseudonym (``user:<id>`` or ``system:<name>``), never a name: Art. 17 erasure of the
account's text copy must not break the hash.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Strings made only of these characters need no JSON escaping (RFC 8785 section 3.2.2.2).
_PLAIN = re.compile(r"[ !#-\[\]-~]*")


@lru_cache(maxsize=65536)
def json_string(value: str) -> str:
    """RFC 8785 encoding of a string: escape only '"', '\\' and control characters."""
    if _PLAIN.fullmatch(value):
        return f'"{value}"'
    # Python's encoder with ensure_ascii=False escapes exactly what RFC 8785 escapes, with
    # lower-case \\u00xx for the remaining control characters.
    return json.dumps(value, ensure_ascii=False)


def actor_pseudonym(actor_id: int | None, actor_label: str) -> str:
    return f"user:{actor_id}" if actor_id is not None else actor_label


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def leaf_document(
    *,
    seq: int,
    event_type: str,
    actor: str,
    subject_type: str,
    subject_id: str,
    time: str,
    payload: str,
) -> bytes:
    """The canonical leaf bytes; ``payload`` is already canonical JSON text."""
    return (
        f'{{"actor":{json_string(actor)},"event_type":{json_string(event_type)},'
        f'"payload":{payload},"seq":{seq},"subject_id":{json_string(subject_id)},'
        f'"subject_type":{json_string(subject_type)},"time":{json_string(time)}}}'
    ).encode()
