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


def _date(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be a date (YYYY-MM-DD)")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None
    if len(value) != 10:
        raise ValueError(f"{where}: {value!r} is not a date (YYYY-MM-DD)")
    return value


def parse_adequacy(text: str | bytes) -> AdequacyList:
    """Validate an adequacy list's JSON text. Raises ``ValueError`` naming the bad entry."""
    from sites.regions import is_country

    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object with version and decisions")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip() or len(version) > 64:
        raise ValueError("version: must be a non-empty text of at most 64 characters")
    raw = data.get("decisions")
    if not isinstance(raw, list) or not raw:
        raise ValueError("decisions: must be a non-empty list")
    decisions: list[AdequacyDecision] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"decisions[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be an object")
        missing = _DECISION_KEYS - entry.keys()
        if missing:
            raise ValueError(f"{where}: missing {', '.join(sorted(missing))}")
        unknown = entry.keys() - _DECISION_KEYS - _OPTIONAL_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        country = entry["country"]
        if not is_country(country):
            raise ValueError(f"{where}.country: {country!r} is not an ISO 3166-1 alpha-2 code")
        if country in seen:
            # One decision per country keeps the gate's reading unambiguous.
            raise ValueError(f"{where}.country: {country} is listed twice")
        seen.add(country)
        reference = entry["reference"]
        if not isinstance(reference, str) or not reference.strip():
            raise ValueError(f"{where}.reference: must name the decision")
        if entry["scope"] not in SCOPES:
            raise ValueError(f"{where}.scope: must be one of {', '.join(SCOPES)}")
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
