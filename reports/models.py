"""Stored reports: one row per requested audit report, its progress and its files' hashes."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from reports.choices import ReportStatus


class Report(models.Model):
    """A signed audit report of one run or one period, and its evidence bundle.

    Files live under ``FEDGOV_REPORT_DIR`` by their names here; the SHA-256 of each is
    also in the ledger event ``report.generated``, so a swapped file is detectable.
    """

    public_id = models.UUIDField(_("public id"), default=uuid.uuid4, unique=True, editable=False)
    run = models.ForeignKey(
        "training.TrainingRun",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("run"),
    )
    run_name = models.CharField(_("run name"), max_length=200, blank=True)
    period_start = models.DateTimeField(_("period start"), null=True, blank=True)
    period_end = models.DateTimeField(_("period end"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=ReportStatus.choices, default=ReportStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(
        _("progress"), default=0, help_text=_("Percent of rounds laid out")
    )
    error = models.TextField(_("error"), blank=True)
    pdf_name = models.CharField(_("PDF file name"), max_length=255, blank=True)
    pdf_sha256 = models.CharField(_("PDF SHA-256"), max_length=64, blank=True)
    bundle_name = models.CharField(_("evidence bundle file name"), max_length=255, blank=True)
    bundle_sha256 = models.CharField(_("evidence bundle SHA-256"), max_length=64, blank=True)
    anchor_size = models.BigIntegerField(_("anchoring checkpoint size"), null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_by_name = models.CharField(_("requested by name"), max_length=150)
    # The language the PDF is written in (settings.LANGUAGES); the evidence bundle is
    # language-neutral whatever this says.
    language = models.CharField(
        _("language"), max_length=8, default="en", choices=settings.LANGUAGES
    )
    created_at = models.DateTimeField(_("created at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit report")
        verbose_name_plural = _("audit reports")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(run__isnull=False) | Q(period_start__isnull=False),
                name="report_has_scope",
            ),
            models.CheckConstraint(
                condition=Q(period_start__isnull=True) | Q(period_end__gt=models.F("period_start")),
                name="report_period_ordered",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="report_progress_pct"),
            models.CheckConstraint(
                condition=~Q(status="done") | ~Q(pdf_sha256=""), name="report_done_has_pdf"
            ),
        ]

    def __str__(self) -> str:
        return f"report {self.public_id} ({self.status})"
