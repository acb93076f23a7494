"""Recorded results of full ledger verifications started from the dashboard."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class LedgerVerification(models.Model):
    """One full recomputation of the ledger: who asked, when, and what it found.

    A failed verification is evidence too, so it is kept like a passed one; the row is
    never updated after it is written.
    """

    started_at = models.DateTimeField(verbose_name=_("started at"))
    finished_at = models.DateTimeField(verbose_name=_("finished at"))
    ok = models.BooleanField(verbose_name=_("ok"))
    size = models.BigIntegerField(
        help_text=_("Entries the verification covered"), verbose_name=_("size")
    )
    checkpoints = models.PositiveIntegerField(default=0, verbose_name=_("checkpoints"))
    trusted_keys = models.PositiveIntegerField(default=0, verbose_name=_("trusted keys"))
    first_bad_seq = models.BigIntegerField(null=True, blank=True, verbose_name=_("first bad seq"))
    problems = models.JSONField(
        default=list, help_text=_("The first problems found, as text"), verbose_name=_("problems")
    )
    ledger_seq = models.BigIntegerField(
        null=True,
        blank=True,
        help_text=_("The ledger.verified event, when one could be appended"),
        verbose_name=_("ledger seq"),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_by_name = models.CharField(max_length=150, verbose_name=_("requested by name"))

    class Meta:
        verbose_name = _("ledger verification")
        verbose_name_plural = _("ledger verifications")
        ordering = ["-finished_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ok=True, first_bad_seq__isnull=True) | Q(ok=False),
                name="verification_ok_has_no_bad_seq",
            ),
            models.CheckConstraint(
                condition=Q(finished_at__gte=models.F("started_at")),
                name="verification_finishes_after_start",
            ),
        ]

    def __str__(self) -> str:
        verdict = "ok" if self.ok else f"FAILED at seq {self.first_bad_seq}"
        return f"verification of {self.size} entries: {verdict}"
