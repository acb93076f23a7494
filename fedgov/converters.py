"""URL converters: ids are bounded so an absurd number is a 404, not a database error."""

from __future__ import annotations


class BoundedIdConverter:
    """A non-negative integer of at most 18 digits: always fits a 64-bit column.

    Django's ``int`` converter accepts any length, and SQLite refuses integers beyond
    64 bits with an OverflowError (a 500) instead of finding nothing.
    """

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
