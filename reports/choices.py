"""Choices for reports."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ReportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ReportFile(models.TextChoices):
    PDF = "pdf", _("Signed PDF")
    BUNDLE = "bundle", _("Evidence bundle (zip)")
