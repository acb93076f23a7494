"""Structured logs: a JSON-lines formatter, a credential scrubber, and the LOGGING dict.

Standard library only. ``LOG_FORMAT=json`` selects one JSON object per line (for Loki,
Elasticsearch, journald); plain text stays the default. Log calls add context through
``extra``: ``logger.info("round approved", extra={"round_id": r.pk, "run_id": r.run_id})``
puts ``round_id`` and ``run_id`` at the top level of the JSON line.

Logs leave the evidence boundary (they are shipped, kept and searched elsewhere), so no
credential and no subject pseudonym may reach them: such ``extra`` keys are redacted,
and ``password=…``, ``token: …`` and ``Bearer …`` inside messages are masked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

REDACTED = "[redacted]"
LOG_FORMATS = ("plain", "json")

# Context fields first in every JSON line when a log call passes them.
CONTEXT_KEYS = (
    "run_id",
    "round_id",
    "round_number",
    "site",
    "site_id",
    "decision_id",
    "event_type",
    "seq",
    "task_id",
    "vm_id",
    "zone_id",
)

# Extra keys whose values never reach a log line (Art. 5(1)(c) and plain hygiene).
SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api_?key|private|credential|authori[sz]ation|cookie"
    r"|session|signature|pseudonym|email|e_mail",
    re.IGNORECASE,
)
SENSITIVE_TEXT = (
    (re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|authorization)"
            r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # URLs with credentials: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
)

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


def scrub(text: str) -> str:
    """Mask credentials that a message may carry."""
    for pattern, replacement in SENSITIVE_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _plain(value: Any) -> Any:
    """A JSON-safe copy of an ``extra`` value, with sensitive nested keys redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            str(k): REDACTED if SENSITIVE_KEY.search(str(k)) else _plain(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return scrub(str(value))


def extras_of(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of a record, known context keys first, sensitive ones redacted."""
    found = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}
    ordered = [k for k in CONTEXT_KEYS if k in found] + sorted(
        k for k in found if k not in CONTEXT_KEYS and not k.startswith("_")
    )
    return {k: REDACTED if SENSITIVE_KEY.search(k) else _plain(found[k]) for k in ordered}


class ScrubFilter(logging.Filter):
    """Masks credentials in the rendered message, for every handler and format."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
        cleaned = scrub(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        doc.update(extras_of(record))
        doc["where"] = f"{record.module}:{record.lineno}"
        doc["process"] = record.process
        if record.exc_info and record.exc_info[0] is not None:
            doc["exc_type"] = record.exc_info[0].__name__
            doc["exc"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """The default text format, with ``key=value`` for each ``extra`` field at the end."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = extras_of(record)
        if not extras:
            return line
        pairs = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in extras.items())
        first, sep, rest = line.partition("\n")
        return f"{first} {pairs}{sep}{rest}"


def logging_config(log_format: str = "plain", level: str = "WARNING") -> dict[str, Any]:
    """The ``LOGGING`` dict for settings. Raises ``ValueError`` for an unknown format."""
    log_format = (log_format or "plain").strip().lower()
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    level = (level or "WARNING").strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ValueError(f"LOG_LEVEL must be a logging level name, got {level!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"scrub": {"()": "fedgov.logging.ScrubFilter"}},
        "formatters": {
            "plain": {
                "()": "fedgov.logging.PlainFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            },
            "json": {"()": "fedgov.logging.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["scrub"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }
