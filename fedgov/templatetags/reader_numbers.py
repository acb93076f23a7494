"""``{{ value|reader_number }}``: a machine number in the reader's language (fedgov.numbers)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

from fedgov.numbers import number

register = template.Library()


@register.filter
def reader_number(value: object) -> object:
    """``"0.85"`` or ``0.85`` as the active language writes it ("0,85" in de, es, pl, fr).

    A string goes through ``Decimal`` as it is, so the text keeps exactly the digits of
    the machine value beside it (a chart's ``data-value``): nothing is rounded or added.
    Anything that is not a number is returned unchanged.
    """
    if isinstance(value, bool):
        return value
    try:
        return number(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return value
