"""Recorded results of full ledger verifications started from the dashboard."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class LedgerVerification(models.Model):
    """One full recomputation of the ledger: who asked, when, and what it found.

    A failed verification is evidence too, so it is kept like a passed one; the row is
    never updated after it is written.
    """

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    size = models.BigIntegerField(help_text="Entries the verification covered")
    checkpoints = models.PositiveIntegerField(default=0)
    trusted_keys = models.PositiveIntegerField(default=0)
    first_bad_seq = models.BigIntegerField(null=True, blank=True)
    problems = models.JSONField(default=list, help_text="The first problems found, as text")
    ledger_seq = models.BigIntegerField(
        null=True, blank=True, help_text="The ledger.verified event, when one could be appended"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150)

    class Meta:
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
