"""fedgov's error types and the API handler that turns them into clear 400s."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response


class FedgovError(Exception):
    """Base of every error fedgov raises on purpose."""


class InvalidInput(FedgovError):
    """A user or site sent something fedgov refuses; nothing was written.

    ``errors`` maps a field name (or ``non_field_errors``) to a list of reasons, the same
    shape DRF uses, so the API returns it unchanged as a 400.
    """

    def __init__(self, errors: dict[str, Any] | str, field: str = "non_field_errors") -> None:
        if isinstance(errors, str):
            errors = {field: [errors]}
        self.errors = errors
        super().__init__(self.message)

    def __str__(self) -> str:
        # Recomputed on each read: a reason marked with gettext_lazy reads in the language
        # active where it is shown (the admin's reader), not where it was raised.
        return self.message

    @property
    def message(self) -> str:
        parts = []
        for key, reasons in self.errors.items():
            text = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else str(reasons)
            parts.append(f"{key}: {text}")
        return ", ".join(parts)


class TransitionNotAllowed(FedgovError):
    """A state change was asked for from a state that does not allow it (409)."""


class SecondFactorRequired(FedgovError):
    """A binding act by a person whose session has not passed a second factor (403)."""


class TemporaryError(FedgovError):
    """An outside system failed in a way that may pass; Celery tasks retry only these."""


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: rest_framework.views resolves DEFAULT_PARSER_CLASSES when it loads,
    # and fedgov's parser raises InvalidInput from this module.
    from rest_framework.views import exception_handler

    if isinstance(exc, InvalidInput):
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SecondFactorRequired):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, TransitionNotAllowed):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return exception_handler(exc, context)
