"""Template tags that print a gate reason or a rule's article in the reader's language
(``training.reasons``)."""

from __future__ import annotations

from typing import Any

from django import template

from training.reasons import article_text, reason_text

register = template.Library()


@register.simple_tag
def reason(code: str, params: Any, fallback: str = "") -> str:
    """``{% reason row.code row.params row.reason %}``: autoescaped like any simple tag."""
    return reason_text(code or "", params if isinstance(params, dict) else None, fallback or "")


@register.simple_tag
def article(stored: str) -> str:
    """``{% article row.article %}``: "Art. 44 + Richtlinie" for a German reader."""
    return article_text(stored or "")
