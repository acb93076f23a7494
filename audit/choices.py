"""Choices of the ledger app's models."""

from __future__ import annotations

from django.db import models


class KeyRole(models.TextChoices):
    """What a trusted key may sign."""

    LOG = "log", "ledger checkpoints (fedgov's own key)"
    WITNESS = "witness", "cosignatures of a witness"
