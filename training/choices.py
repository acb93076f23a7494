"""Choices for training runs, rounds and gate outcomes."""

from django.db import models


class DpiaStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class RunStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    FINISHED = "finished", "Finished"
    STOPPED = "stopped", "Stopped"


class RefusalAction(models.TextChoices):
    SKIP = "skip", "Skip the round and continue"
    STOP = "stop", "Stop the run"


class RoundState(models.TextChoices):
    PLANNED = "planned", "Planned"
    GATED = "gated", "Gated"
    BLOCKED = "blocked", "Blocked"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    PROVISIONING = "provisioning", "Provisioning"
    PLACEMENT_VERIFIED = "placement_verified", "Placement verified"
    RUNNING = "running", "Running"
    AGGREGATED = "aggregated", "Aggregated"
    CLOSED = "closed", "Closed"
    FAILED = "failed", "Failed"
    ABORTED = "aborted", "Aborted"


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
    ALLOWED = "allowed", "Allowed"
    BLOCKED = "blocked", "Blocked"


class ApprovalDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class UpdateKind(models.TextChoices):
    SITE = "site", "Site update"
    AGGREGATE = "aggregate", "Aggregate"


class DpMechanism(models.TextChoices):
    """The differential-privacy mechanism a run applies (``fedgov_flower.dp``)."""

    NONE = "none", "None (no noise: no ε can be claimed)"
    CENTRAL = "central", "Central DP, server-side clipping"
    CLIENT_CLIPPING = "client-clipping", "Central DP, clipping at the sites"
    LOCAL = "local", "Local DP at the sites"
