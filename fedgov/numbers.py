"""Numbers as a person reads them: the active language's decimal sign and digit grouping.

One helper for the PDF report, the Art. 30 record, the dashboard and the admin, so "0,74"
and "12.345" (de), "12 345" (pl, fr: a no-break space) read the same everywhere. It wraps
Django's ``formats.number_format`` (the formats of ``fedgov.formats`` and Django's own per
language) with grouping forced, because ``USE_THOUSAND_SEPARATOR`` only governs templates
and admin cells. Machine formats (CSV, JSON, API, ledger, evidence bundle) never call it:
they keep Python's language-neutral ``str``.
"""

from __future__ import annotations

from decimal import Decimal

from django.utils import formats


def number(value: int | float | Decimal, digits: int | None = None, *, significant: int = 0) -> str:
    """``value`` in the active language: ``digits`` decimals, or ``significant`` digits.

    ``significant`` is what ``f"{value:.4g}"`` showed before, without the exponent form
    ("0.00001", not "1e-05"): a reader of a report is not assumed to read floats.
    """
    if isinstance(value, bool):  # a bool is an int to Python, never a number to a reader
        raise TypeError("a bool is not a number")
    if significant:
        value = Decimal(f"{value:.{significant}g}")
    elif digits is not None:
        # Rounded as f"{value:.4f}" rounds: Django's number_format cuts the digits off
        # (3.18895 would read "3.1889" where every other page says "3.1890").
        value = Decimal(f"{value:.{digits}f}")
    elif isinstance(value, float):
        value = Decimal(repr(value))  # 0.1 stays "0,1", not 0.1000000000000000055...
    return formats.number_format(value, decimal_pos=digits, use_l10n=True, force_grouping=True)
