"""Purposes of processing."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.services import ledger_append
from fedgov.actors import Actor
from fedgov.validation import (
    Errors,
    check_text,
    lazy_number,
)
from sites.models import (
    Purpose,
)
from sites.services._kit import (
    sha256_text,
    unique_or_invalid,
)


def purpose_validate(values: dict[str, Any], *, instance: Purpose | None = None) -> None:
    errors = Errors()
    code = values.get("code")
    try:
        validate_slug(code or "")
    except ValidationError:
        errors.add("code", _("must be letters, digits, hyphens or underscores"))
    else:
        clash = Purpose.objects.filter(code=code)
        if instance is not None:
            clash = clash.exclude(pk=instance.pk)
        if len(code or "") > 64:
            errors.add(
                "code", format_lazy(_("must be at most {count} characters"), count=lazy_number(64))
            )
        elif clash.exists():
            errors.add("code", format_lazy(_("a purpose {code!r} already exists"), code=code))
    check_text(errors, "name", values.get("name"), max_length=200)
    if not isinstance(values.get("description", ""), str):
        errors.add("description", _("must be text"))
    errors.raise_if_any()


def purpose_create(*, actor: Actor, code: str, name: str, description: str = "") -> Purpose:
    """Name a processing purpose (Art. 5(1)(b)). Ledger: ``purpose.created``.

    Raises ``InvalidInput`` (bad or taken code, empty name).
    """
    with transaction.atomic(durable=True):
        purpose_validate({"code": code, "name": name, "description": description})
        with unique_or_invalid(
            "code", format_lazy(_("a purpose {code!r} already exists"), code=code)
        ):
            purpose = Purpose.objects.create(code=code, name=name.strip(), description=description)
        ledger_append(
            event_type="purpose.created",
            actor=actor,
            subject_type="purpose",
            subject_id=purpose.pk,
            payload={"purpose_id": purpose.pk, "code": code, "name_sha256": sha256_text(name)},
        )
    return purpose


# -------------------------------------------------------------------------- datasets
