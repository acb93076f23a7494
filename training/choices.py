"""Choices for training runs, rounds and gate outcomes."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class DpiaStatus(models.TextChoices):
    # A DPIA's status: feminine in French, Spanish and Polish (l'AIPD, la EIPD, ocena),
    # where a round's "Approved" is not; the context gives each its own translation.
    DRAFT = "draft", pgettext_lazy("DPIA status", "Draft")
    APPROVED = "approved", pgettext_lazy("DPIA status", "Approved")
    REJECTED = "rejected", pgettext_lazy("DPIA status", "Rejected")


class RunStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    FINISHED = "finished", _("Finished")
    STOPPED = "stopped", _("Stopped")


class RefusalAction(models.TextChoices):
    SKIP = "skip", _("Skip the round and continue")
    STOP = "stop", _("Stop the run")


class RoundState(models.TextChoices):
    # A round's state, as a label of its own: "Closed" here is one round ("Cerrada"),
    # the dashboard's "Closed" column counts rounds ("Cerradas").
    PLANNED = "planned", pgettext_lazy("round state", "Planned")
    GATED = "gated", pgettext_lazy("round state", "Gated")
    BLOCKED = "blocked", pgettext_lazy("round state", "Blocked")
    AWAITING_APPROVAL = "awaiting_approval", pgettext_lazy("round state", "Awaiting approval")
    APPROVED = "approved", pgettext_lazy("round state", "Approved")
    REJECTED = "rejected", pgettext_lazy("round state", "Rejected")
    PROVISIONING = "provisioning", pgettext_lazy("round state", "Provisioning")
    PLACEMENT_VERIFIED = "placement_verified", pgettext_lazy("round state", "Placement verified")
    RUNNING = "running", pgettext_lazy("round state", "Running")
    AGGREGATED = "aggregated", pgettext_lazy("round state", "Aggregated")
    CLOSED = "closed", pgettext_lazy("round state", "Closed")
    FAILED = "failed", pgettext_lazy("round state", "Failed")
    ABORTED = "aborted", pgettext_lazy("round state", "Aborted")


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
