"""Choices for reports."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ReportStatus(models.TextChoices):
    # A report's status: the context keeps it apart from a round's "Running"/"Failed"
    # (a round is feminine in Spanish and Polish, a report is not).
    QUEUED = "queued", pgettext_lazy("report status", "Queued")
    RUNNING = "running", pgettext_lazy("report status", "Running")
    DONE = "done", pgettext_lazy("report status", "Done")
    FAILED = "failed", pgettext_lazy("report status", "Failed")


class ReportFile(models.TextChoices):
    PDF = "pdf", _("Signed PDF")
    BUNDLE = "bundle", _("Evidence bundle (zip)")
