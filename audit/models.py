"""The append-only ledger: events as RFC 9162 Merkle leaves, subtree hashes and checkpoints."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from audit.choices import KeyRole
from audit.expressions import LeafDocument


class LedgerEntry(models.Model):
    """One event in the ledger. Never updated or deleted (triggers refuse both).

    ``payload`` is RFC 8785 canonical JSON. ``leaf_hash`` = SHA-256(0x00 || leaf), where
    the leaf is the canonical document of this row (``audit.leaf``): seq, event type,
    actor pseudonym, subject, time and payload. ``leaf`` stores that document, generated
    by the database from the columns, so it can never disagree with them. The actor is
    kept as an id and a text copy, not a foreign key: evidence must outlive the account
    it names.
    """

    seq = models.BigIntegerField(primary_key=True, verbose_name=_("seq"))
    event_type = models.CharField(max_length=64, db_index=True, verbose_name=_("event type"))
    actor_id = models.BigIntegerField(null=True, verbose_name=_("actor id"))
    actor_repr = models.CharField(max_length=150, verbose_name=_("actor repr"))
    subject_type = models.CharField(max_length=64, verbose_name=_("subject type"))
    subject_id = models.CharField(max_length=64, verbose_name=_("subject id"))
    created_at = models.DateTimeField(db_index=True, verbose_name=_("created at"))
    payload = models.TextField(verbose_name=_("payload"))
    leaf_hash = models.BinaryField(max_length=32, verbose_name=_("leaf hash"))
    # The canonical leaf bytes, derived by the database from the columns above
    # (audit.expressions); what verification hashes. No verbose_name: on SQLite, any
    # change to a generated field's definition rebuilds the table, which drops the
    # ledger's append-only triggers (the admin never shows this column).
    leaf = models.GeneratedField(
        expression=LeafDocument(),
        output_field=models.TextField(),
        db_persist=True,
    )
    # Set when retention removed the contents (payload, actor); the leaf hash stays in the
    # tree, so proofs and checkpoints still hold. The only UPDATE the triggers allow.
    redacted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("redacted at"))

    class Meta:
        verbose_name = _("ledger entry")
        ordering = ["seq"]
        verbose_name_plural = _("ledger entries")
        indexes = [
            models.Index(fields=["subject_type", "subject_id"]),
            # Few entries are redacted, and verification asks only about those.
            models.Index(
                fields=["redacted_at"],
                condition=models.Q(redacted_at__isnull=False),
                name="ledger_redacted_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=0), name="ledger_seq_not_negative")
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event_type}"


class SubtreeHash(models.Model):
    """The hash of one complete (perfect) subtree of two or more leaves.

    Node ``(level, idx)`` covers leaves ``idx * 2**level`` to ``(idx + 1) * 2**level - 1``
    and is stored once, by the append that completes it; leaves (level 0) are the
    entries' own ``leaf_hash``. Any root or proof is a fold of O(log n) of these rows.
    """

    pk = models.CompositePrimaryKey("level", "idx")
    level = models.PositiveSmallIntegerField(verbose_name=_("level"))
    idx = models.BigIntegerField(verbose_name=_("idx"))
    hash = models.BinaryField(max_length=32, verbose_name=_("hash"))

    class Meta:
        verbose_name = _("subtree hash")
        verbose_name_plural = _("subtree hashes")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(level__gte=1, level__lte=62, idx__gte=0),
                name="subtree_level_and_index_in_range",
            )
        ]

    def __str__(self) -> str:
        return f"subtree L{self.level}#{self.idx}"


class TreeHead(models.Model):
    """The single row whose lock serialises appends; it holds the current tree size.

    ``frontier`` is the concatenated hashes of the perfect subtrees that make up the
    tree, largest first (one per set bit of ``size``), so an append needs no read of
    earlier nodes and the current root needs no query beyond this row.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, verbose_name=_("id"))
    size = models.BigIntegerField(default=0, verbose_name=_("size"))
    frontier = models.BinaryField(default=b"", verbose_name=_("frontier"))

    class Meta:
        verbose_name = _("tree head")
        verbose_name_plural = _("tree heads")
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="tree_head_single_row"),
            models.CheckConstraint(condition=models.Q(size__gte=0), name="tree_head_size"),
        ]

    def __str__(self) -> str:
        return f"tree head at size {self.size}"


class Checkpoint(models.Model):
    """A signed statement of the tree at one size: C2SP checkpoint text in ``note``.

    ``root``, ``created_at`` and ``key_id`` repeat what the signed note says, for queries;
    the verifier trusts only the note and its signature.
    """

    size = models.BigIntegerField(primary_key=True, verbose_name=_("size"))
    root = models.BinaryField(max_length=32, verbose_name=_("root"))
    created_at = models.DateTimeField(db_index=True, verbose_name=_("created at"))
    key_id = models.CharField(max_length=16, verbose_name=_("key id"))
    note = models.TextField(verbose_name=_("note"))
    created_by = models.CharField(max_length=150, verbose_name=_("created by"))

    class Meta:
        verbose_name = _("checkpoint")
        verbose_name_plural = _("checkpoints")
        ordering = ["size"]
        get_latest_by = "size"
        constraints = [
            models.CheckConstraint(condition=models.Q(size__gte=1), name="checkpoint_not_empty")
        ]

    def __str__(self) -> str:
        return f"checkpoint at size {self.size}"


class LegalHold(models.Model):
    """Suspends retention for the entries it covers until it is released.

    A hold covers every entry when it names no subject and no period; otherwise the
    entries about its subject (type and id), created within its period. Placing and
    releasing are ledger events; the row is never deleted.
    """

    reference = models.CharField(
        max_length=64, help_text=_("case or matter reference"), verbose_name=_("reference")
    )
    reason = models.TextField(verbose_name=_("reason"))
    subject_type = models.CharField(max_length=64, blank=True, verbose_name=_("subject type"))
    subject_id = models.CharField(max_length=64, blank=True, verbose_name=_("subject id"))
    held_from = models.DateTimeField(null=True, blank=True, verbose_name=_("held from"))
    held_until = models.DateTimeField(null=True, blank=True, verbose_name=_("held until"))
    placed_by = models.CharField(max_length=150, verbose_name=_("placed by"))
    placed_at = models.DateTimeField(verbose_name=_("placed at"))
    released_by = models.CharField(max_length=150, blank=True, verbose_name=_("released by"))
    released_at = models.DateTimeField(null=True, blank=True, verbose_name=_("released at"))
    release_reason = models.TextField(blank=True, verbose_name=_("release reason"))

    class Meta:
        verbose_name = _("legal hold")
        verbose_name_plural = _("legal holds")
        ordering = ["-placed_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(subject_type="", subject_id="")
                | (~models.Q(subject_type="") & ~models.Q(subject_id="")),
                name="legal_hold_subject_whole",
            ),
            models.CheckConstraint(
                condition=models.Q(held_from__isnull=True)
                | models.Q(held_until__isnull=True)
                | models.Q(held_from__lte=models.F("held_until")),
                name="legal_hold_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"legal hold {self.reference}"

    @property
    def active(self) -> bool:
        return self.released_at is None

    def scope(self) -> str:
        parts = [f"{self.subject_type} {self.subject_id}" if self.subject_type else "all entries"]
        if self.held_from or self.held_until:
            start = self.held_from.date().isoformat() if self.held_from else "the start"
            end = self.held_until.date().isoformat() if self.held_until else "now"
            parts.append(f"from {start} to {end}")
        return ", ".join(parts)


class TrustedKey(models.Model):
    """A public key fedgov trusts for one role, between ``valid_from`` and ``valid_to``.

    The explicit trust list: a key file appearing in ``FEDGOV_KEY_DIR`` trusts nothing.
    Rows change only through ``audit.trust`` (trust, rotate, retire, revoke), each change
    a ledger event (``audit.key_*``), so ``ledger_verify`` can replay the events and find
    a row written behind the service's back. ``name`` is the signed-note key name: the
    log's origin for the log key, the witness's name for a witness key.
    """

    key_id = models.CharField(max_length=16, primary_key=True, verbose_name=_("key id"))
    role = models.CharField(max_length=16, choices=KeyRole.choices, verbose_name=_("role"))
    name = models.CharField(max_length=255, verbose_name=_("name"))
    public_key = models.BinaryField(max_length=32, verbose_name=_("public key"))
    valid_from = models.DateTimeField(verbose_name=_("valid from"))
    valid_to = models.DateTimeField(null=True, blank=True, verbose_name=_("valid to"))
    reason = models.TextField(verbose_name=_("reason"))
    end_reason = models.TextField(blank=True, verbose_name=_("end reason"))
    added_by = models.CharField(max_length=150, verbose_name=_("added by"))

    class Meta:
        verbose_name = _("trusted key")
        verbose_name_plural = _("trusted keys")
        ordering = ["role", "valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(valid_to__isnull=True)
                | models.Q(valid_to__gte=models.F("valid_from")),
                name="trusted_key_window_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=[c.value for c in KeyRole]),
                name="trusted_key_role_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} key {self.key_id}"


class Cosignature(models.Model):
    """A witness's C2SP ``cosignature/v1`` over one checkpoint, as returned by the witness.

    ``line`` is the note signature line; the checkpoint with its cosignature lines
    appended is a signed note any C2SP client can check against the witness's vkey.
    ``timestamp`` repeats the POSIX time inside the cosignature, for queries.
    """

    checkpoint = models.ForeignKey(
        Checkpoint,
        on_delete=models.PROTECT,
        related_name="cosignatures",
        verbose_name=_("checkpoint"),
    )
    witness = models.CharField(max_length=255, verbose_name=_("witness"))
    key_id = models.CharField(max_length=16, verbose_name=_("key id"))
    timestamp = models.BigIntegerField(verbose_name=_("timestamp"))
    line = models.TextField(verbose_name=_("line"))
    received_at = models.DateTimeField(verbose_name=_("received at"))

    class Meta:
        verbose_name = _("cosignature")
        verbose_name_plural = _("cosignatures")
        ordering = ["checkpoint", "witness"]
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "key_id"], name="one_cosignature_per_key")
        ]

    def __str__(self) -> str:
        return f"cosignature by {self.witness} on size {self.checkpoint_id}"


class CheckpointTimestamp(models.Model):
    """An RFC 3161 timestamp token from the configured TSA over one signed checkpoint note.

    ``token`` is the DER ``TimeStampToken`` whose message imprint is SHA-256 of the
    checkpoint's ``note`` (UTF-8); it proves the note existed at ``gen_time`` to anyone
    who pins the TSA's certificate, independently of fedgov's own clock. ``gen_time``
    repeats the time inside the token, for queries.
    """

    checkpoint = models.OneToOneField(
        Checkpoint,
        on_delete=models.PROTECT,
        primary_key=True,
        related_name="timestamp",
        verbose_name=_("checkpoint"),
    )
    token = models.BinaryField(verbose_name=_("token"))
    gen_time = models.DateTimeField(verbose_name=_("gen time"))
    tsa_url = models.CharField(max_length=255, verbose_name=_("tsa url"))
    received_at = models.DateTimeField(verbose_name=_("received at"))

    class Meta:
        verbose_name = _("checkpoint timestamp")
        verbose_name_plural = _("checkpoint timestamps")

    def __str__(self) -> str:
        return f"RFC 3161 timestamp of size {self.checkpoint_id} at {self.gen_time}"
