"""The validation kit of the sites services: error collection, typed checks, shared patterns."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_date, parse_datetime

from fedgov.errors import InvalidInput
from sites.regions import invalid_areas, is_country

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
CREDENTIALS_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S+)$")
# Pseudonyms are the site's own opaque tokens; "@" or whitespace suggests a raw identity.
PSEUDONYM = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
MAX_CONSENT_BATCH = 50_000
MAX_REPORTED_ROW_ERRORS = 50
# A site's clock may run a little ahead of ours; beyond this an event is in the future.
CLOCK_SKEW = dt.timedelta(minutes=5)
# SQLite caps bound parameters per statement; stay well below it on every backend.
IN_CHUNK = 500


# --------------------------------------------------------------------------- helpers


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Errors:
    """Collects every field error first, so one 400 names all of them."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, reason: str) -> None:
        self.errors.setdefault(field, []).append(reason)

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidInput(self.errors)


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return parse_date(value)
        except ValueError:
            return None
    return None


def _as_aware_datetime(value: Any) -> tuple[dt.datetime | None, str]:
    """Parse an aware datetime or an ISO 8601 string with an offset; else a reason."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            return None, f"{value!r} is not an ISO 8601 date-time"
    else:
        return None, "must be an ISO 8601 date-time"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None, "needs a time zone offset (e.g. 2026-01-31T09:00:00Z)"
    return parsed.astimezone(dt.UTC), ""


def _check_text(errors: _Errors, field: str, value: Any, *, max_length: int) -> None:
    if not isinstance(value, str) or not value.strip():
        errors.add(field, "must not be empty")
    elif len(value) > max_length:
        errors.add(field, f"must be at most {max_length} characters")


def _check_hash(errors: _Errors, field: str, value: Any) -> None:
    if not isinstance(value, str) or not HEX64.match(value):
        errors.add(field, "must be a SHA-256 digest: 64 hexadecimal characters")


def _check_country(errors: _Errors, field: str, value: Any) -> None:
    if not is_country(value):
        errors.add(field, f"{value!r} is not an ISO 3166-1 alpha-2 country code")


def _check_areas(errors: _Errors, field: str, value: Any) -> None:
    if not isinstance(value, list | tuple) or not value:
        errors.add(field, "must be a non-empty list of ISO 3166 country codes or region names")
        return
    bad = invalid_areas([str(v) for v in value])
    if bad:
        errors.add(field, f"unknown country codes or regions: {', '.join(map(repr, bad))}")
    if len(set(value)) != len(value):
        errors.add(field, "lists an area twice")


def _check_choice(errors: _Errors, field: str, value: Any, choices: Any) -> None:
    if value not in choices.values:
        allowed = ", ".join(repr(v) for v in choices.values if v)
        errors.add(field, f"{value!r} is not one of {allowed}")


def _check_int(errors: _Errors, field: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(field, "must be a whole number")
    elif value < minimum:
        errors.add(field, f"must be at least {minimum}")


def _check_bool(errors: _Errors, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        errors.add(field, "must be true or false")


def _unknown_fields(fields: Iterable[str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise InvalidInput({name: ["cannot be set here"] for name in unknown})


@contextmanager
def unique_or_invalid(field: str, message: str) -> Iterator[None]:
    """Turn a unique-constraint race (two writers, one name) into a clear 400.

    The validation read cannot see a row another transaction has not committed yet; the
    database's unique index can. The savepoint keeps the outer transaction usable.
    """
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise InvalidInput({field: [message]}) from exc


def _json_value(value: Any) -> Any:
    """A value as it goes into a ledger payload or a content hash."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- sites
