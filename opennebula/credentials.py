"""Resolve a zone credentials reference (``env:NAME`` or ``file:/path``) at call time.

The secret is read when a call needs it and kept only in memory: never in the database,
a log line, an error message or a ledger payload.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from opennebula.errors import OpenNebulaError


@dataclass(frozen=True)
class Credentials:
    """``user:password`` for one zone. ``repr`` shows only the user name."""

    user: str
    password: str = field(repr=False)

    @property
    def session(self) -> str:
        return f"{self.user}:{self.password}"


def _invalid(reason: str) -> OpenNebulaError:
    return OpenNebulaError(reason, code=None, permanent=True)


def check_ref(ref: str) -> None:
    """Raise unless ``ref`` has the shape ``env:NAME`` or ``file:/absolute/path``."""
    scheme, _, target = (ref or "").partition(":")
    if scheme == "env" and target and target.replace("_", "").isalnum():
        return
    if scheme == "file" and target.startswith("/"):
        return
    raise _invalid("credentials reference must be env:VAR_NAME or file:/absolute/path")


def resolve(ref: str) -> Credentials:
    """Read the credentials ``ref`` points to. Errors name the reference, never its content."""
    check_ref(ref)
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        raw = os.environ.get(target)
        if raw is None:
            raise _invalid(f"credentials variable {target} is not set")
    else:
        try:
            raw = Path(target).read_text()
        except OSError as exc:
            raise _invalid(f"credentials file {target} cannot be read ({exc.strerror})") from None
    user, sep, password = raw.strip().partition(":")
    if not sep or not user or not password:
        raise _invalid(f"credentials in {ref} must have the form user:password")
    return Credentials(user=user, password=password)
