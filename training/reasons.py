"""The gate's reasons in the reader's language: one function for admin, dashboard, API and reports.

The gate stores each reason as a code with JSON-safe params (``training.gate.messages``)
plus its English text. ``reason_text`` renders the code in the active language through
gettext; a code or params it cannot render (a row written before codes existed, a code a
later version dropped) falls back to the stored English text, never to an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import translation

from training.gate.messages import render


def reason_text(code: str, params: Mapping[str, Any] | None, fallback: str = "") -> str:
    """``(code, params)`` rendered in the active language, else ``fallback`` (English)."""
    if not code:
        return fallback
    try:
        return render({"code": code, "params": dict(params or {})}, translation.gettext)
    except (KeyError, TypeError, ValueError):
        return fallback


def reason_in(
    language: str, code: str, params: Mapping[str, Any] | None, fallback: str = ""
) -> str:
    """``reason_text`` in ``language``, whatever the active one."""
    with translation.override(language):
        return reason_text(code, params, fallback)


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
