"""The one place fedgov reads the time, so tests and replays can pin it."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
