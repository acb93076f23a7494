"""Training runs, their rounds, and the evidence of every gate decision and update."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from sites.models import Dataset, Purpose, ResidencyPolicy, Site
from training.choices import (
    ApprovalDecision,
    DpiaStatus,
    DpMechanism,
    GateOutcome,
    RefusalAction,
    RoundState,
    RunStatus,
    UpdateKind,
)


class TrainingRun(models.Model):
    """A federated training run: one purpose, a set of datasets, one policy version.

    ``dp_mechanism`` is the differential-privacy mechanism every round applies, with its
    clipping norm C and noise multiplier z; z is given or derived from
    ``dp_target_epsilon`` over ``num_rounds`` with Flower's accountant. ε is never
    declared: the gate and the ledger compute it from the releases actually applied.
    """

    name = models.CharField(max_length=200, unique=True)
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="runs")
    datasets = models.ManyToManyField(Dataset, related_name="runs")
    policy = models.ForeignKey(ResidencyPolicy, on_delete=models.PROTECT, related_name="runs")
    aggregator_country = models.CharField(max_length=2)
    num_rounds = models.PositiveIntegerField(default=3)
    dp_mechanism = models.CharField(
        max_length=20, choices=DpMechanism.choices, default=DpMechanism.NONE
    )
    dp_clipping_norm = models.FloatField(null=True, blank=True)
    dp_noise_multiplier = models.FloatField(null=True, blank=True)
    dp_target_epsilon = models.FloatField(null=True, blank=True)
    on_refusal = models.CharField(
        max_length=8, choices=RefusalAction.choices, default=RefusalAction.SKIP
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.ACTIVE)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(num_rounds__gte=1), name="run_has_rounds"),
            models.CheckConstraint(
                condition=Q(dp_mechanism="none")
                | (Q(dp_clipping_norm__gt=0) & Q(dp_noise_multiplier__gt=0)),
                name="run_dp_mechanism_has_parameters",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Dpia(models.Model):
    """The data protection impact assessment (Art. 35) that covers one training run."""

    run = models.OneToOneField(TrainingRun, on_delete=models.PROTECT, related_name="dpia")
    reference = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=DpiaStatus.choices, default=DpiaStatus.DRAFT)
    document_hash = models.CharField(max_length=64)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_by_name = models.CharField(max_length=150, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name = "DPIA"
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="approved")
                | (Q(approved_at__isnull=False) & Q(valid_until__isnull=False)),
                name="dpia_approved_is_dated",
            ),
        ]

    def __str__(self) -> str:
        return f"DPIA {self.reference} ({self.status})"


class Round(models.Model):
    """One federated round of a run, as a persistent state machine."""

    run = models.ForeignKey(TrainingRun, on_delete=models.PROTECT, related_name="rounds")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=24, choices=RoundState.choices, default=RoundState.PLANNED)
    state_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="round_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="round_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.run.name} round {self.number} ({self.state})"


class GateDecision(models.Model):
    """The gate's verdict for one round, with the canonical snapshot of every input.

    ``snapshot`` is RFC 8785 canonical JSON of the frozen context the rules ran over and
    ``snapshot_hash`` its SHA-256, so anyone can re-run the rules and get this verdict.
    """

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="gate_decisions")
    evaluated_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=GateOutcome.choices)
    reason = models.TextField(blank=True)
    # ``reason`` as data (training.gate.messages), rendered in each reader's language; the
    # English ``reason`` stays the stored text of record.
    reason_code = models.CharField(max_length=64, blank=True, default="")
    reason_params = models.JSONField(default=dict, blank=True)
    snapshot = models.TextField()
    snapshot_hash = models.CharField(max_length=64)
    eligible_sites = models.JSONField(default=list)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    ledger_seq = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-evaluated_at"]
        get_latest_by = "evaluated_at"

    def __str__(self) -> str:
        return f"gate {self.round} → {self.outcome}"


class GateResult(models.Model):
    """One rule's verdict for one site (or for the round, where ``site`` is empty)."""

    decision = models.ForeignKey(GateDecision, on_delete=models.PROTECT, related_name="results")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, null=True, related_name="+")
    site_slug = models.CharField(max_length=64, blank=True)
    position = models.PositiveIntegerField()
    rule_id = models.CharField(max_length=64)
    article = models.CharField(max_length=64)
    ok = models.BooleanField()
    reason = models.TextField()
    # The reason as data: a stable code and JSON-safe params (training.gate.messages).
    code = models.CharField(max_length=64, blank=True, default="")
    params = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["decision_id", "site_slug", "position"]

    def __str__(self) -> str:
        verdict = "pass" if self.ok else "fail"
        return f"{self.site_slug or 'round'} {self.rule_id}: {verdict}"


class SiteEligibility(models.Model):
    """Per site: may it train this round, on how many records, excluding which subjects.

    ``excluded_pseudonyms`` are the subjects whose consent was withdrawn or had expired at
    the round's instant; ``exclusion_digest`` is the SHA-256 a round ticket carries.
    """

    decision = models.ForeignKey(
        GateDecision, on_delete=models.PROTECT, related_name="eligibilities"
    )
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+")
    eligible = models.BooleanField()
    eligible_records = models.PositiveIntegerField(default=0)
    excluded_pseudonyms = models.JSONField(default=list)
    exclusion_digest = models.CharField(max_length=64)
    # The allow-list (Art. 6(1)(a), 7): the digest its ticket carries and the number of
    # subjects in it. Blank digest: no consent-based dataset, no list. The list itself is
    # built from the consent rows at the decision's instant when the site fetches it
    # (training.services.flower.round_allowed), and must hash to this digest.
    allowed_count = models.PositiveIntegerField(default=0)
    allowed_digest = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["decision", "site"], name="eligibility_unique_site"),
        ]

    def __str__(self) -> str:
        return f"{self.site_id} eligible={self.eligible}"


class Approval(models.Model):
    """An operator's (or DPO's) approval or rejection of one round; it expires."""

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="approvals")
    decision = models.CharField(max_length=16, choices=ApprovalDecision.choices)
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    approver_name = models.CharField(max_length=150)
    reason = models.TextField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["round", "approver"], name="approval_once_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.approver_name}"


class RoundTicket(models.Model):
    """The Ed25519-signed ticket that lets named sites train one round."""

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="tickets")
    body = models.TextField(help_text="Canonical JSON of the signed ticket fields")
    signature = models.CharField(max_length=128, help_text="Base64 Ed25519 signature")
    key_id = models.CharField(max_length=64)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # The one Flower message type the ticket allows (its body signs it, with the run).
    message_type = models.CharField(
        max_length=16, choices=[("train", "Train"), ("evaluate", "Evaluate")], default="train"
    )

    def __str__(self) -> str:
        return f"{self.message_type} ticket for round {self.round_id} ({self.key_id})"


class ModelUpdate(models.Model):
    """The canonical hash of one site's model update (or the round's aggregate)."""

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="updates")
    kind = models.CharField(max_length=16, choices=UpdateKind.choices)
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    node_id = models.CharField(max_length=64, blank=True)
    update_hash = models.CharField(max_length=64)
    num_examples = models.PositiveIntegerField(default=0)
    records_used = models.PositiveIntegerField(default=0)
    records_excluded = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict)
    accepted = models.BooleanField(default=True)
    rejection_reason = models.TextField(blank=True)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["round_id", "kind", "site_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["round", "site"],
                condition=Q(kind="site", accepted=True),
                name="update_once_per_site_round",
            ),
            models.UniqueConstraint(
                fields=["round"], condition=Q(kind="aggregate"), name="aggregate_once_per_round"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.update_hash[:12]}"


class RoundPrivacy(models.Model):
    """What one round released, as differential privacy: the mechanism actually applied and
    the cumulative ε Flower's RDP accountant gives at δ after it.

    ``private`` says the run's cumulative ε is bounded after this round. It is False when
    this round, or an earlier one, released an aggregate without noise: then no ε exists
    (``epsilon`` is null) and every later figure of the run is unbounded.
    """

    round = models.OneToOneField(Round, on_delete=models.PROTECT, related_name="privacy")
    private = models.BooleanField()
    mechanism = models.CharField(max_length=20, choices=DpMechanism.choices)
    clipping_norm = models.FloatField(null=True)
    noise_multiplier = models.FloatField(null=True)
    sampled_clients = models.PositiveIntegerField()
    total_clients = models.PositiveIntegerField()
    noise_std = models.FloatField(null=True)
    aggregate_hash_before_noise = models.CharField(max_length=64, blank=True)
    aggregate_hash = models.CharField(max_length=64, blank=True)
    epsilon = models.FloatField(null=True)
    delta = models.FloatField(null=True)
    epsilon_limit = models.FloatField(null=True)
    accounting = models.JSONField(default=dict)
    recorded_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "round privacy"
        constraints = [
            models.CheckConstraint(
                condition=Q(private=False, epsilon__isnull=True)
                | Q(private=True, epsilon__gte=0, noise_multiplier__gt=0),
                name="round_privacy_epsilon_only_when_private",
            ),
        ]

    def __str__(self) -> str:
        return f"privacy of round {self.round_id}"
