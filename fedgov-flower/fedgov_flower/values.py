"""Numbers from Flower's records and configs, narrowed as ``int()`` and ``float()`` narrow.

A ``ConfigRecord`` or run-config value is any scalar or a list of them. ``int(value)``
refuses a list or None at run time with a ``TypeError``; these helpers do exactly that
(same exception, same message), so the type checker sees a scalar without a cast and the
callers' ``except TypeError`` keeps working.
"""

from __future__ import annotations


def as_int(value: object) -> int:
    """``int(value)`` for a record or config value."""
    if isinstance(value, int | float | str | bytes):
        return int(value)
    raise TypeError(
        "int() argument must be a string, a bytes-like object or a real number, "
        f"not {type(value).__name__!r}"
    )


def as_float(value: object) -> float:
    """``float(value)`` for a record or config value."""
    if isinstance(value, int | float | str | bytes):
        return float(value)
    raise TypeError(
        f"float() argument must be a string or a real number, not {type(value).__name__!r}"
    )
