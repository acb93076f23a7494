"""Choices for training runs, rounds and gate outcomes."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class DpiaStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class RunStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    FINISHED = "finished", _("Finished")
    STOPPED = "stopped", _("Stopped")


class RefusalAction(models.TextChoices):
    SKIP = "skip", _("Skip the round and continue")
    STOP = "stop", _("Stop the run")


class RoundState(models.TextChoices):
    PLANNED = "planned", _("Planned")
    GATED = "gated", _("Gated")
    BLOCKED = "blocked", _("Blocked")
    AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    PROVISIONING = "provisioning", _("Provisioning")
    PLACEMENT_VERIFIED = "placement_verified", _("Placement verified")
    RUNNING = "running", _("Running")
    AGGREGATED = "aggregated", _("Aggregated")
    CLOSED = "closed", _("Closed")
    FAILED = "failed", _("Failed")
    ABORTED = "aborted", _("Aborted")


TERMINAL_ROUND_STATES = frozenset(
    {
        RoundState.BLOCKED,
        RoundState.REJECTED,
        RoundState.CLOSED,
        RoundState.FAILED,
        RoundState.ABORTED,
    }
)


class GateOutcome(models.TextChoices):
    ALLOWED = "allowed", _("Allowed")
    BLOCKED = "blocked", _("Blocked")


class ApprovalDecision(models.TextChoices):
    APPROVE = "approve", _("Approve")
    REJECT = "reject", _("Reject")


class UpdateKind(models.TextChoices):
    SITE = "site", _("Site update")
    AGGREGATE = "aggregate", _("Aggregate")


class DpMechanism(models.TextChoices):
    """The differential-privacy mechanism a run applies (``fedgov_flower.dp``)."""

    NONE = "none", _("None (no noise: no ε can be claimed)")
    CENTRAL = "central", _("Central DP, server-side clipping")
    CLIENT_CLIPPING = "client-clipping", _("Central DP, clipping at the sites")
    LOCAL = "local", _("Local DP at the sites")
