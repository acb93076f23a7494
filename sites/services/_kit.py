"""The sites services' validation kit: fedgov's generic kit plus the checks that need
``sites`` (countries, regions) and the consent limits.

The generic kit lives in ``fedgov.validation`` (used by every app's services, the scenario
loader and the API); the sites modules import it from there.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from fedgov.validation import (
    HEX64,
    Errors,
    sha256_text,
    unique_or_invalid,
)
from sites.regions import invalid_areas, is_country

__all__ = [
    "CLOCK_SKEW",
    "CREDENTIALS_REF",
    "HEX64",
    "IN_CHUNK",
    "MAX_CONSENT_BATCH",
    "MAX_REPORTED_ROW_ERRORS",
    "PSEUDONYM",
    "sha256_text",
    "unique_or_invalid",
]

CREDENTIALS_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S+)$")
# Pseudonyms are the site's own opaque tokens; "@" or whitespace suggests a raw identity.
PSEUDONYM = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
MAX_CONSENT_BATCH = 50_000
MAX_REPORTED_ROW_ERRORS = 50
# A site's clock may run a little ahead of ours; beyond this an event is in the future.
CLOCK_SKEW = dt.timedelta(minutes=5)
# SQLite caps bound parameters per statement; stay well below it on every backend.
IN_CHUNK = 500


def _check_country(errors: Errors, field: str, value: Any) -> None:
    if not is_country(value):
        errors.add(
            field,
            format_lazy(_("{value!r} is not an ISO 3166-1 alpha-2 country code"), value=value),
        )


def _check_areas(errors: Errors, field: str, value: Any) -> None:
    if not isinstance(value, list | tuple) or not value:
        errors.add(field, _("must be a non-empty list of ISO 3166 country codes or region names"))
        return
    bad = invalid_areas([str(v) for v in value])
    if bad:
        errors.add(
            field,
            format_lazy(
                _("unknown country codes or regions: {areas}"), areas=", ".join(map(repr, bad))
            ),
        )
    if len(set(value)) != len(value):
        errors.add(field, _("lists an area twice"))
