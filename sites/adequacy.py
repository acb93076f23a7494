"""The Commission's adequacy decisions (GDPR Art. 45) as versioned data, not code.

The shipped list is ``sites/data/adequacy.json``. Each decision names its country, its
reference and adoption date, its scope (``country``: the whole country; ``dpf``: only
recipients certified under the EU-US Data Privacy Framework, decision C(2023) 4745 of
10 July 2023; ``pipeda``: only recipients subject to Canada's PIPEDA, decision
2002/2/EC), the date of its next review (Art. 45(3)) and, for decisions with a sunset
clause, the day it stops applying. The gate records the list's version and hash in every
snapshot, so a later update never changes the replay of an old decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

ADEQUACY_FILE = Path(__file__).with_name("data") / "adequacy.json"
SCOPES = ("country", "dpf", "pipeda")
_DECISION_KEYS = {"country", "reference", "adopted_on", "scope", "review_due"}
# ``source``: where the entry was checked (a DPO reads it; the gate does not).
_OPTIONAL_KEYS = {"expires_on", "scope_note", "source"}


@dataclass(frozen=True)
class AdequacyDecision:
    country: str
    reference: str
    adopted_on: str
    scope: str
    review_due: str
    expires_on: str | None = None


@dataclass(frozen=True)
class AdequacyList:
    version: str
    sha256: str
    decisions: tuple[AdequacyDecision, ...]


def _refusal(where: str, reason: Any) -> ValueError:
    """A ValueError for ``where`` (a JSON path, the same in every language) and a lazy
    ``reason``, which the admin form shows in its reader's language."""
    return ValueError(format_lazy("{}: {}", where, reason))


def _date(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _refusal(where, _("must be a date (YYYY-MM-DD)"))
    not_a_date = format_lazy(_("{value} is not a date (YYYY-MM-DD)"), value=repr(value))
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise _refusal(where, not_a_date) from None
    if len(value) != 10:
        raise _refusal(where, not_a_date)
    return value


def parse_adequacy(text: str | bytes) -> AdequacyList:
    """Validate an adequacy list's JSON text. Raises ``ValueError`` naming the bad entry."""
    from sites.regions import is_country

    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        # json's own message has no translation of its own.
        raise ValueError(format_lazy(_("not JSON: {error}"), error=exc)) from None
    if not isinstance(data, dict):
        raise ValueError(_("must be a JSON object with version and decisions"))
    version = data.get("version")
    if not isinstance(version, str) or not version.strip() or len(version) > 64:
        raise _refusal("version", _("must be a non-empty text of at most 64 characters"))
    raw = data.get("decisions")
    if not isinstance(raw, list) or not raw:
        raise _refusal("decisions", _("must be a non-empty list"))
    decisions: list[AdequacyDecision] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"decisions[{i}]"
        if not isinstance(entry, dict):
            raise _refusal(where, _("must be an object"))
        missing = _DECISION_KEYS - entry.keys()
        if missing:
            raise _refusal(
                where, format_lazy(_("missing {fields}"), fields=", ".join(sorted(missing)))
            )
        unknown = entry.keys() - _DECISION_KEYS - _OPTIONAL_KEYS
        if unknown:
            fields = ", ".join(sorted(unknown))
            raise _refusal(where, format_lazy(_("unknown field(s) {fields}"), fields=fields))
        country = entry["country"]
        if not is_country(country):
            raise _refusal(
                f"{where}.country",
                format_lazy(
                    _("{country} is not an ISO 3166-1 alpha-2 code"), country=repr(country)
                ),
            )
        if country in seen:
            # One decision per country keeps the gate's reading unambiguous.
            raise _refusal(
                f"{where}.country", format_lazy(_("{country} is listed twice"), country=country)
            )
        seen.add(country)
        reference = entry["reference"]
        if not isinstance(reference, str) or not reference.strip():
            raise _refusal(f"{where}.reference", _("must name the decision"))
        if entry["scope"] not in SCOPES:
            raise _refusal(
                f"{where}.scope",
                format_lazy(_("must be one of {choices}"), choices=", ".join(SCOPES)),
            )
        expires = entry.get("expires_on")
        decisions.append(
            AdequacyDecision(
                country=country,
                reference=reference.strip(),
                adopted_on=_date(f"{where}.adopted_on", entry["adopted_on"]),
                scope=entry["scope"],
                review_due=_date(f"{where}.review_due", entry["review_due"]),
                expires_on=_date(f"{where}.expires_on", expires) if expires is not None else None,
            )
        )
    raw_bytes = text.encode("utf-8") if isinstance(text, str) else text
    return AdequacyList(
        version=version.strip(),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        decisions=tuple(sorted(decisions, key=lambda d: d.country)),
    )


@cache
def shipped_adequacy() -> AdequacyList:
    """The list shipped with this release."""
    return parse_adequacy(ADEQUACY_FILE.read_bytes())


def current_adequacy() -> AdequacyList:
    """The list in force: the DPO's latest recorded version, else the shipped file."""
    from sites.models import AdequacyListVersion

    latest = AdequacyListVersion.objects.order_by("-id").only("content").first()
    if latest is None:
        return shipped_adequacy()
    return parse_adequacy(latest.content)
