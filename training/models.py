"""Training runs, their rounds, and the evidence of every gate decision and update."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

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

    name = models.CharField(max_length=200, unique=True, verbose_name=_("name"))
    purpose = models.ForeignKey(
        Purpose, on_delete=models.PROTECT, related_name="runs", verbose_name=_("purpose")
    )
    datasets = models.ManyToManyField(Dataset, related_name="runs", verbose_name=_("datasets"))
    policy = models.ForeignKey(
        ResidencyPolicy, on_delete=models.PROTECT, related_name="runs", verbose_name=_("policy")
    )
    aggregator_country = models.CharField(max_length=2, verbose_name=_("aggregator country"))
    num_rounds = models.PositiveIntegerField(default=3, verbose_name=_("num rounds"))
    dp_mechanism = models.CharField(
        max_length=20,
        choices=DpMechanism.choices,
        default=DpMechanism.NONE,
        verbose_name=_("dp mechanism"),
    )
    dp_clipping_norm = models.FloatField(null=True, blank=True, verbose_name=_("dp clipping norm"))
    dp_noise_multiplier = models.FloatField(
        null=True, blank=True, verbose_name=_("dp noise multiplier")
    )
    dp_target_epsilon = models.FloatField(
        null=True, blank=True, verbose_name=_("dp target epsilon")
    )
    on_refusal = models.CharField(
        max_length=8,
        choices=RefusalAction.choices,
        default=RefusalAction.SKIP,
        verbose_name=_("on refusal"),
    )
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.ACTIVE, verbose_name=_("status")
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_by_name = models.CharField(max_length=150, verbose_name=_("requested by name"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("training run")
        verbose_name_plural = _("training runs")
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

    run = models.OneToOneField(
        TrainingRun, on_delete=models.PROTECT, related_name="dpia", verbose_name=_("run")
    )
    reference = models.CharField(max_length=200, verbose_name=_("reference"))
    status = models.CharField(
        max_length=16,
        choices=DpiaStatus.choices,
        default=DpiaStatus.DRAFT,
        verbose_name=_("status"),
    )
    document_hash = models.CharField(max_length=64, verbose_name=_("document hash"))
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    approved_by_name = models.CharField(
        max_length=150, blank=True, verbose_name=_("approved by name")
    )
    approved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("approved at"))
    valid_until = models.DateField(null=True, blank=True, verbose_name=_("valid until"))

    class Meta:
        verbose_name_plural = _("DPIAs")
        verbose_name = _("DPIA")
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

    run = models.ForeignKey(
        TrainingRun, on_delete=models.PROTECT, related_name="rounds", verbose_name=_("run")
    )
    number = models.PositiveIntegerField(verbose_name=_("number"))
    state = models.CharField(
        max_length=24,
        choices=RoundState.choices,
        default=RoundState.PLANNED,
        verbose_name=_("state"),
    )
    # The English text, as it always was (search, logs, the ledger's copy); fedgov's own
    # reasons also keep their code and params, so each reader gets them in their language
    # (training.reasons.round_reason_text). Rows from before codes have no code and show
    # their text; a person's typed words stay a param, as typed.
    state_reason = models.TextField(blank=True, verbose_name=_("state reason"))
    state_reason_code = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("state reason code")
    )
    state_reason_params = models.JSONField(
        default=dict, blank=True, verbose_name=_("state reason parameters")
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_by_name = models.CharField(max_length=150, verbose_name=_("requested by name"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("round")
        verbose_name_plural = _("rounds")
        ordering = ["run_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="round_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="round_number_positive"),
        ]

    def __str__(self) -> str:
        # The admin's heading and breadcrumb, read by a person: the state by its label in
        # their language ("Platzierung geprüft"), as the page's own state badge shows it.
        return gettext("%(run)s round %(number)s (%(state)s)") % {
            "run": self.run.name,
            "number": self.number,
            "state": self.get_state_display(),
        }


class GateDecision(models.Model):
    """The gate's verdict for one round, with the canonical snapshot of every input.

    ``snapshot`` is RFC 8785 canonical JSON of the frozen context the rules ran over and
    ``snapshot_hash`` its SHA-256, so anyone can re-run the rules and get this verdict.
    """

    round = models.ForeignKey(
        Round, on_delete=models.PROTECT, related_name="gate_decisions", verbose_name=_("round")
    )
    evaluated_at = models.DateTimeField(verbose_name=_("evaluated at"))
    outcome = models.CharField(
        max_length=16, choices=GateOutcome.choices, verbose_name=_("outcome")
    )
    reason = models.TextField(blank=True, verbose_name=_("reason"))
    # ``reason`` as data (training.gate.messages), rendered in each reader's language; the
    # English ``reason`` stays the stored text of record.
    reason_code = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("reason code")
    )
    reason_params = models.JSONField(default=dict, blank=True, verbose_name=_("reason parameters"))
    snapshot = models.TextField(verbose_name=_("snapshot"))
    snapshot_hash = models.CharField(max_length=64, verbose_name=_("snapshot hash"))
    eligible_sites = models.JSONField(default=list, verbose_name=_("eligible sites"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_name = models.CharField(max_length=150, verbose_name=_("actor name"))
    ledger_seq = models.BigIntegerField(null=True, verbose_name=_("ledger seq"))

    class Meta:
        verbose_name = _("gate decision")
        verbose_name_plural = _("gate decisions")
        ordering = ["-evaluated_at"]
        get_latest_by = "evaluated_at"

    def __str__(self) -> str:
        return f"gate {self.round} → {self.outcome}"


class GateResult(models.Model):
    """One rule's verdict for one site (or for the round, where ``site`` is empty)."""

    decision = models.ForeignKey(
        GateDecision, on_delete=models.PROTECT, related_name="results", verbose_name=_("decision")
    )
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, null=True, related_name="+", verbose_name=_("site")
    )
    site_slug = models.CharField(max_length=64, blank=True, verbose_name=_("site slug"))
    position = models.PositiveIntegerField(verbose_name=_("position"))
    rule_id = models.CharField(max_length=64, verbose_name=_("rule id"))
    article = models.CharField(max_length=64, verbose_name=_("article"))
    ok = models.BooleanField(verbose_name=_("ok"))
    reason = models.TextField(verbose_name=_("reason"))
    # The reason as data: a stable code and JSON-safe params (training.gate.messages).
    code = models.CharField(max_length=64, blank=True, default="", verbose_name=_("code"))
    params = models.JSONField(default=dict, blank=True, verbose_name=_("parameters"))

    class Meta:
        verbose_name = _("gate result")
        verbose_name_plural = _("gate results")
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
        GateDecision,
        on_delete=models.PROTECT,
        related_name="eligibilities",
        verbose_name=_("decision"),
    )
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="+", verbose_name=_("site")
    )
    eligible = models.BooleanField(verbose_name=_("eligible"))
    eligible_records = models.PositiveIntegerField(default=0, verbose_name=_("eligible records"))
    excluded_pseudonyms = models.JSONField(default=list, verbose_name=_("excluded pseudonyms"))
    exclusion_digest = models.CharField(max_length=64, verbose_name=_("exclusion digest"))
    # The allow-list (Art. 6(1)(a), 7): the digest its ticket carries and the number of
    # subjects in it. Blank digest: no consent-based dataset, no list. The list itself is
    # built from the consent rows at the decision's instant when the site fetches it
    # (training.services.flower.round_allowed), and must hash to this digest.
    allowed_count = models.PositiveIntegerField(default=0, verbose_name=_("allowed count"))
    allowed_digest = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("allowed digest")
    )

    class Meta:
        verbose_name = _("site eligibility")
        verbose_name_plural = _("site eligibilities")
        constraints = [
            models.UniqueConstraint(fields=["decision", "site"], name="eligibility_unique_site"),
        ]

    def __str__(self) -> str:
        return f"{self.site_id} eligible={self.eligible}"


class Approval(models.Model):
    """An operator's (or DPO's) approval or rejection of one round; it expires."""

    round = models.ForeignKey(
        Round, on_delete=models.PROTECT, related_name="approvals", verbose_name=_("round")
    )
    decision = models.CharField(
        max_length=16, choices=ApprovalDecision.choices, verbose_name=_("decision")
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("approver"),
    )
    approver_name = models.CharField(max_length=150, verbose_name=_("approver name"))
    reason = models.TextField(verbose_name=_("reason"))
    created_at = models.DateTimeField(verbose_name=_("created at"))
    expires_at = models.DateTimeField(verbose_name=_("expires at"))

    class Meta:
        verbose_name = _("approval")
        verbose_name_plural = _("approvals")
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["round", "approver"], name="approval_once_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.approver_name}"


class RoundTicket(models.Model):
    """The Ed25519-signed ticket that lets named sites train one round."""

    round = models.ForeignKey(
        Round, on_delete=models.PROTECT, related_name="tickets", verbose_name=_("round")
    )
    body = models.TextField(
        help_text=_("Canonical JSON of the signed ticket fields"), verbose_name=_("body")
    )
    signature = models.CharField(
        max_length=128, help_text=_("Base64 Ed25519 signature"), verbose_name=_("signature")
    )
    key_id = models.CharField(max_length=64, verbose_name=_("key id"))
    issued_at = models.DateTimeField(verbose_name=_("issued at"))
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    # The one Flower message type the ticket allows (its body signs it, with the run).
    message_type = models.CharField(
        max_length=16,
        choices=[("train", _("Train")), ("evaluate", _("Evaluate"))],
        default="train",
        verbose_name=_("message type"),
    )

    class Meta:
        verbose_name = _("round ticket")
        verbose_name_plural = _("round tickets")

    def __str__(self) -> str:
        return f"{self.message_type} ticket for round {self.round_id} ({self.key_id})"


class ModelUpdate(models.Model):
    """The canonical hash of one site's model update (or the round's aggregate)."""

    round = models.ForeignKey(
        Round, on_delete=models.PROTECT, related_name="updates", verbose_name=_("round")
    )
    kind = models.CharField(max_length=16, choices=UpdateKind.choices, verbose_name=_("kind"))
    site = models.ForeignKey(
        Site,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
    )
    node_id = models.CharField(max_length=64, blank=True, verbose_name=_("node id"))
    update_hash = models.CharField(max_length=64, verbose_name=_("update hash"))
    num_examples = models.PositiveIntegerField(default=0, verbose_name=_("num examples"))
    records_used = models.PositiveIntegerField(default=0, verbose_name=_("records used"))
    records_excluded = models.PositiveIntegerField(default=0, verbose_name=_("records excluded"))
    metrics = models.JSONField(default=dict, verbose_name=_("metrics"))
    accepted = models.BooleanField(default=True, verbose_name=_("accepted"))
    rejection_reason = models.TextField(blank=True, verbose_name=_("rejection reason"))
    recorded_at = models.DateTimeField(verbose_name=_("recorded at"))

    class Meta:
        verbose_name = _("model update")
        verbose_name_plural = _("model updates")
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

    round = models.OneToOneField(
        Round, on_delete=models.PROTECT, related_name="privacy", verbose_name=_("round")
    )
    private = models.BooleanField(verbose_name=_("private"))
    mechanism = models.CharField(
        max_length=20, choices=DpMechanism.choices, verbose_name=_("mechanism")
    )
    clipping_norm = models.FloatField(null=True, verbose_name=_("clipping norm"))
    noise_multiplier = models.FloatField(null=True, verbose_name=_("noise multiplier"))
    sampled_clients = models.PositiveIntegerField(verbose_name=_("sampled clients"))
    total_clients = models.PositiveIntegerField(verbose_name=_("total clients"))
    noise_std = models.FloatField(null=True, verbose_name=_("noise std"))
    aggregate_hash_before_noise = models.CharField(
        max_length=64, blank=True, verbose_name=_("aggregate hash before noise")
    )
    aggregate_hash = models.CharField(max_length=64, blank=True, verbose_name=_("aggregate hash"))
    epsilon = models.FloatField(null=True, verbose_name=_("epsilon"))
    delta = models.FloatField(null=True, verbose_name=_("delta"))
    epsilon_limit = models.FloatField(null=True, verbose_name=_("epsilon limit"))
    accounting = models.JSONField(default=dict, verbose_name=_("accounting"))
    recorded_at = models.DateTimeField(verbose_name=_("recorded at"))

    class Meta:
        verbose_name = _("round privacy")
        verbose_name_plural = _("round privacy")
        constraints = [
            models.CheckConstraint(
                condition=Q(private=False, epsilon__isnull=True)
                | Q(private=True, epsilon__gte=0, noise_multiplier__gt=0),
                name="round_privacy_epsilon_only_when_private",
            ),
        ]

    def __str__(self) -> str:
        return f"privacy of round {self.round_id}"
