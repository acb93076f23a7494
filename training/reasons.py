"""The gate's reasons in the reader's language: one function for admin, dashboard, API and reports.

The gate stores each reason as a code with JSON-safe params (``training.gate.messages``)
plus its English text. ``reason_text`` renders the code in the active language through
gettext; a code or params it cannot render (a row written before codes existed, a code a
later version dropped) falls back to the stored English text, never to an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.utils import translation
from django.utils.translation import gettext

from fedgov.numbers import number
from training.gate.messages import render


def reader_number(value: int | float, conversion: str) -> str:
    """A reason's number in the active language, to the precision its template asks for:
    ``%(spent).4g`` of 3.18901 reads "3.189" in English and "3,189" in German; ``%g``
    of 1e-05 reads "0.00001" (a reader is not assumed to read Python's exponent form)."""
    if conversion[-1] in "sd":
        return number(value)
    return number(Decimal(("%" + conversion) % value))


def reason_text(code: str, params: Mapping[str, Any] | None, fallback: str = "") -> str:
    """``(code, params)`` rendered in the active language, else ``fallback`` (English)."""
    if not code:
        return fallback
    try:
        return render(
            {"code": code, "params": dict(params or {})},
            translation.gettext,
            reader_number,
            translation.ngettext,
        )
    except (KeyError, TypeError, ValueError):
        return fallback


def reason_in(
    language: str, code: str, params: Mapping[str, Any] | None, fallback: str = ""
) -> str:
    """``reason_text`` in ``language``, whatever the active one."""
    with translation.override(language):
        return reason_text(code, params, fallback)


# The one word of a rule's article that is not a citation (training.gate.rules: "policy",
# "Art. 44 + policy"): the run's residency policy. Articles are cited alike in every
# language; this word is the reader's.
_POLICY_WORD = re.compile(r"\bpolicy\b")


def article_text(article: str) -> str:
    """A rule's stored article in the active language: "Art. 44 + Richtlinie" for a German
    reader. The stored form stays as the rule wrote it (ledger, evidence, snapshot)."""
    return _POLICY_WORD.sub(lambda _m: gettext("policy"), article or "")


def article_in(language: str, article: str) -> str:
    """``article_text`` in ``language``, whatever the active one (the API, on request)."""
    with translation.override(language):
        return article_text(article)


def round_reason_text(round_: Any) -> str:
    """A round's stored state reason in the active language (its English text for a row
    written before codes, or a reason fedgov stores as text: Flower's, OpenNebula's)."""
    return reason_text(
        getattr(round_, "state_reason_code", ""),
        getattr(round_, "state_reason_params", None),
        round_.state_reason,
    )


def round_reason_in(language: str, round_: Any) -> str:
    """``round_reason_text`` in ``language``, whatever the active one (the API, on request)."""
    with translation.override(language):
        return round_reason_text(round_)


def result_text(row: Any) -> str:
    """A stored gate result (``code``, ``params``, ``reason``) in the active language."""
    return reason_text(getattr(row, "code", ""), getattr(row, "params", None), row.reason)


def decision_text(decision: Any) -> str:
    """A stored gate decision's overall reason in the active language."""
    return reason_text(
        getattr(decision, "reason_code", ""),
        getattr(decision, "reason_params", None),
        decision.reason,
    )
