"""Small checks shared by the API, the services and the loaders.

Integers that arrive as text (paths, query strings) are read here so every endpoint
refuses the same things the same way: ``str.isdigit()`` accepts "²" (which ``int()``
then refuses with a ValueError, a 500) and "٣" (which ``int()`` reads as 3), and an
unbounded integer overflows the database column (SQLite refuses beyond 64 bits, a 500).
"""

from __future__ import annotations

from fedgov.errors import InvalidInput

# PostgreSQL's integer column, Django's IntegerField and PositiveIntegerField.
INT32_MAX = 2**31 - 1
# PostgreSQL's bigint, Django's BigAutoField: every primary key fits.
INT64_MAX = 2**63 - 1


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty run of the ASCII digits 0-9 and nothing else."""
    return text.isascii() and text.isdigit()


def int_from_text(text: str, *, field: str, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """``text`` as an integer in ``[minimum, maximum]``, else ``InvalidInput`` naming ``field``."""
    if not is_ascii_digits(text):
        raise InvalidInput({field: [f"must be a whole number written with 0-9, got {text!r}"]})
    # Compare lengths before converting: a million digits would cost int() real time.
    if len(text.lstrip("0")) > len(str(maximum)) or int(text) > maximum:
        raise InvalidInput({field: [f"must be at most {maximum}"]})
    value = int(text)
    if value < minimum:
        raise InvalidInput({field: [f"must be at least {minimum}"]})
    return value
