"""The append-only ledger: one row per event, hashed as an RFC 9162 Merkle leaf."""

from __future__ import annotations

from django.db import models


class LedgerEntry(models.Model):
    """One event in the ledger. Never updated or deleted (triggers refuse both).

    ``payload`` is RFC 8785 canonical JSON and ``leaf_hash`` = SHA-256(0x00 || payload).
    The actor is kept as an id and a text copy, not a foreign key: evidence must outlive
    the account it names.
    """

    seq = models.BigIntegerField(primary_key=True)
    event_type = models.CharField(max_length=64, db_index=True)
    actor_id = models.BigIntegerField(null=True)
    actor_repr = models.CharField(max_length=150)
    subject_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_index=True)
    payload = models.TextField()
    leaf_hash = models.BinaryField(max_length=32)

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event_type}"
