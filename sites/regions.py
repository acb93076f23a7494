"""Country codes and named regions (EEA, EU, adequacy list), kept as data in the repo.

The lists live in ``sites/data/regions.json`` with their source and date, so a DPO can
check and update them without reading code.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pycountry

REGIONS_FILE = Path(__file__).with_name("data") / "regions.json"


@cache
def _regions() -> dict[str, dict]:
    return json.loads(REGIONS_FILE.read_text())


def region_names() -> tuple[str, ...]:
    return tuple(_regions())


def region_countries(name: str) -> frozenset[str]:
    return frozenset(_regions()[name]["countries"])


def region_source(name: str) -> tuple[str, str]:
    entry = _regions()[name]
    return entry["source"], entry["as_of"]


def is_country(code: str) -> bool:
    """True for an ISO 3166-1 alpha-2 code (upper case)."""
    return (
        isinstance(code, str)
        and len(code) == 2
        and code.isupper()
        and pycountry.countries.get(alpha_2=code) is not None
    )


def expand(areas: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Expand a list of country codes and region names into country codes."""
    result: set[str] = set()
    for area in areas:
        if area in _regions():
            result |= region_countries(area)
        else:
            result.add(area)
    return frozenset(result)


def invalid_areas(areas: list[str]) -> list[str]:
    """The entries of ``areas`` that are neither an ISO country code nor a known region."""
    return [a for a in areas if a not in _regions() and not is_country(a)]
