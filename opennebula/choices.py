"""Choices for OpenNebula workloads."""

from django.db import models


class WorkloadState(models.TextChoices):
    RUNNING = "running", "Running, placement verified"
    BLOCKED = "blocked", "Blocked: placement broke residency, VM terminated"
    FAILED = "failed", "Failed to reach RUNNING"
    TERMINATED = "terminated", "Terminated"
