"""The validation kit shared by the services, the loaders and the API.

Services collect every field error first (``Errors``) so one 400 names all of them,
with the typed checks below; ``unknown_fields`` refuses fields a service does not take;
``unique_or_invalid`` turns a unique-index race into the same 400. Nothing here knows
an app: checks that need one (countries and regions) live with it (``sites.services``).

Integers that arrive as text (paths, query strings) are read here so every endpoint
refuses the same things the same way: ``str.isdigit()`` accepts "²" (which ``int()``
then refuses with a ValueError, a 500) and "٣" (which ``int()`` reads as 3), and an
unbounded integer overflows the database column (SQLite refuses beyond 64 bits, a 500).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from fedgov.errors import InvalidInput
from fedgov.numbers import number

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise

# PostgreSQL's integer column, Django's IntegerField and PositiveIntegerField.
INT32_MAX = 2**31 - 1
# PostgreSQL's bigint, Django's BigAutoField: every primary key fits.
INT64_MAX = 2**63 - 1

# Reasons are lazy (issue 19): a reason raised while one language is active reads in the
# language of whoever is shown it (the admin's or the API's reader); numbers likewise.
lazy_number = lazy(number, str)


def one_of(values: Iterable[str]) -> Any:
    """The refusal naming the values a field or parameter takes: "must be one of a, b",
    the values being codes, written the same in every language."""
    return format_lazy(_("must be one of {allowed}"), allowed=", ".join(values))


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty run of the ASCII digits 0-9 and nothing else."""
    return text.isascii() and text.isdigit()


def int_from_text(text: str, *, field: str, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """``text`` as an integer in ``[minimum, maximum]``, else ``InvalidInput`` naming ``field``."""
    if not is_ascii_digits(text):
        raise InvalidInput(
            {
                field: [
                    format_lazy(
                        _("must be a whole number written with 0-9, got {text!r}"), text=text
                    )
                ]
            }
        )
    # Compare lengths before converting: a million digits would cost int() real time.
    if len(text.lstrip("0")) > len(str(maximum)) or int(text) > maximum:
        # The bound is a column's width, an identifier: written as Python writes it.
        raise InvalidInput(
            {field: [format_lazy(_("must be at most {maximum}"), maximum=str(maximum))]}
        )
    value = int(text)
    if value < minimum:
        raise InvalidInput(
            {field: [format_lazy(_("must be at least {minimum}"), minimum=str(minimum))]}
        )
    return value


HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def sha256_text(text: str) -> str:
    """SHA-256 hex of ``text`` in UTF-8: how free text (a reason) enters a ledger payload."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Errors:
    """Collects every field error first, so one 400 names all of them."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str | StrPromise]] = {}

    def add(self, field: str, reason: str | StrPromise) -> None:
        self.errors.setdefault(field, []).append(reason)

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidInput(self.errors)


def as_date(value: Any) -> dt.date | None:
    """A date (or ISO 8601 date text) as a date; None for anything else, a datetime too."""
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


def as_aware_datetime(value: Any) -> tuple[dt.datetime | None, str | StrPromise]:
    """Parse an aware datetime or an ISO 8601 string with an offset; else a reason."""
    parsed: dt.datetime | None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            return None, format_lazy(_("{value!r} is not an ISO 8601 date-time"), value=value)
    else:
        return None, _("must be an ISO 8601 date-time")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None, _("needs a time zone offset (e.g. 2026-01-31T09:00:00Z)")
    return parsed.astimezone(dt.UTC), ""


def check_text(errors: Errors, field: str, value: Any, *, max_length: int) -> None:
    if not isinstance(value, str) or not value.strip():
        errors.add(field, _("must not be empty"))
    elif len(value) > max_length:
        errors.add(
            field,
            format_lazy(_("must be at most {count} characters"), count=lazy_number(max_length)),
        )


def check_hash(errors: Errors, field: str, value: Any) -> None:
    if not isinstance(value, str) or not HEX64.match(value):
        errors.add(field, _("must be a SHA-256 digest: 64 hexadecimal characters"))


def check_choice(errors: Errors, field: str, value: Any, choices: Any) -> None:
    """``value`` must be one of a ``TextChoices``' values."""
    if value not in choices.values:
        allowed = ", ".join(repr(v) for v in choices.values if v)
        errors.add(
            field, format_lazy(_("{value!r} is not one of {allowed}"), value=value, allowed=allowed)
        )


def check_int(errors: Errors, field: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(field, _("must be a whole number"))
    elif value < minimum:
        errors.add(
            field, format_lazy(_("must be at least {minimum}"), minimum=lazy_number(minimum))
        )


def check_bool(errors: Errors, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        errors.add(field, _("must be true or false"))


def unknown_fields(fields: Iterable[str], allowed: Iterable[str]) -> None:
    """Refuse, all at once, the fields a service does not take."""
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise InvalidInput({name: [_("cannot be set here")] for name in unknown})


@contextmanager
def unique_or_invalid(field: str, message: str | StrPromise) -> Iterator[None]:
    """Turn a unique-constraint race (two writers, one name) into a clear 400.

    The validation read cannot see a row another transaction has not committed yet; the
    database's unique index can. The savepoint keeps the outer transaction usable.
    """
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise InvalidInput({field: [message]}) from exc


def json_value(value: Any) -> Any:
    """A value as it goes into a ledger payload or a content hash."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value
