"""Choices for OpenNebula workloads."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class WorkloadState(models.TextChoices):
    RUNNING = "running", _("Running, placement verified")
    BLOCKED = "blocked", _("Blocked: placement broke residency, VM terminated")
    FAILED = "failed", _("Failed to reach RUNNING")
    TERMINATED = "terminated", _("Terminated")
