"""One update helper for services: diff the validated values, set what changed, save.

After HackSoft's Django-Styleguide ``model_update``: the services validate first (the
validation kit), then hand the values here, so every update writes and reports its
changed fields the same way. Returns the changed field names, sorted, for the ledger
event's ``changed`` key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from django.db import models


def model_update(
    *,
    instance: models.Model,
    fields: Iterable[str],
    current: Mapping[str, Any],
    values: Mapping[str, Any],
    not_attributes: Collection[str] = (),
) -> list[str]:
    """Set each of ``fields`` whose validated value differs from ``current``; save.

    ``not_attributes`` are compared but not set (a many-to-many the caller sets after the
    save). The row is saved whole even when nothing changed, as the services always did,
    so ``auto_now`` columns move with every update call.
    """
    changed = sorted(name for name in fields if values[name] != current[name])
    for name in changed:
        if name not in not_attributes:
            setattr(instance, name, values[name])
    instance.save()
    return changed
