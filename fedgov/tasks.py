"""The house Celery task decorator: a name, late acks, time limits, retries of temporary errors.

Tasks take ids, load rows and call one service; they must be safe to run twice, which is
what makes ``acks_late`` (redelivery after a worker dies) correct.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from fedgov.celery import app
from fedgov.errors import TemporaryError

DEFAULTS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": 60,
    "time_limit": 90,
    # Only errors an outside system marks as passing are retried, never bare Exception.
    "autoretry_for": (TemporaryError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


def fedgov_task(*, name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register ``func`` as the Celery task ``name`` with the house defaults.

    ``options`` override the defaults (e.g. longer ``time_limit``); ``autoretry_for`` may
    only name subclasses of ``TemporaryError``.
    """
    if not name or "." not in name:
        raise ValueError(f"task names are dotted '<app>.<action>', got {name!r}")
    settings = {**DEFAULTS, **options, "name": name}
    for error in settings["autoretry_for"]:
        if not (isinstance(error, type) and issubclass(error, TemporaryError)):
            raise TypeError(f"{name}: autoretry_for may only name TemporaryError subclasses")
    if settings["soft_time_limit"] >= settings["time_limit"]:
        raise ValueError(f"{name}: soft_time_limit must be below time_limit")

    def decorate(func: Callable[..., Any]) -> Any:
        return app.task(**settings)(func)

    return decorate


def enqueue(task: str, *args: Any, inline: bool = False) -> bool:
    """Hand task ``task`` (dotted path of a task object) to a worker, or run it here.

    With ``CELERY_BROKER_URL`` set the task is queued and True returned. Without one (the
    embedded default runs no worker) it runs in this process when ``inline`` is set, and
    is skipped otherwise; False is returned either way. Services name their task by path
    and import it only when called, so a service module and the tasks module that calls
    it never import each other.
    """
    if django_settings.CELERY_BROKER_URL:
        import_string(task).delay(*args)
        return True
    if inline:
        import_string(task)(*args)
    return False
