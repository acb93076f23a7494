"""Choices for reports."""

from django.db import models


class ReportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ReportFile(models.TextChoices):
    PDF = "pdf", "Signed PDF"
    BUNDLE = "bundle", "Evidence bundle (zip)"
