"""Choices of the ledger app's models."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class KeyRole(models.TextChoices):
    """What a trusted key may sign."""

    LOG = "log", _("ledger checkpoints (fedgov's own key)")
    WITNESS = "witness", _("cosignatures of a witness")
