"""The ledger's event vocabulary: every event type, its payload keys and what it means.

The event types are fedgov's contract with regulators: a verifier, an auditor or a
report reads the ledger by these names. ``ledger_append`` refuses a type that is not
listed here and a payload that lacks one of its type's required keys, so the vocabulary
cannot drift silently. ``docs/events.md`` is generated from this module
(``python -m audit.events > docs/events.md``) and a test fails when the checked-in copy
differs.

To add an event type, add one ``_event(...)`` entry below (keep the list sorted by
name), then regenerate ``docs/events.md``. Payloads hold ids, hashes and pseudonymous
references, never raw personal data (GDPR Art. 17 stays possible).

This module imports nothing from Django or from any fedgov app.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventType:
    """One ledger event type: its name, required and optional payload keys, its meaning."""

    name: str
    meaning: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # Subject the event is about (``subject_type`` column), for the documentation.
    subject: str = ""


class UnknownEvent(ValueError):
    """An event type is not in the catalogue, or its payload lacks a required key."""


CATALOGUE: dict[str, EventType] = {}


def _event(
    name: str,
    meaning: str,
    *,
    required: Iterable[str],
    optional: Iterable[str] = (),
    subject: str = "",
) -> EventType:
    if name in CATALOGUE:
        raise ValueError(f"ledger event type {name!r} is catalogued twice")
    entry = EventType(name, meaning, tuple(required), tuple(optional), subject)
    CATALOGUE[name] = entry
    return entry


def register(entry: EventType) -> EventType:
    """Add an event type at run time (a benchmark's or a test's own); refuses duplicates."""
    return _event(
        entry.name,
        entry.meaning,
        required=entry.required,
        optional=entry.optional,
        subject=entry.subject,
    )


def unregister(name: str) -> None:
    """Remove an event type added with :func:`register` (tests clean up after themselves)."""
    CATALOGUE.pop(name, None)


def check(event_type: str, payload: Mapping[str, Any]) -> None:
    """Raise ``UnknownEvent`` unless ``event_type`` is catalogued and ``payload`` has its keys."""
    entry = CATALOGUE.get(event_type)
    if entry is None:
        raise UnknownEvent(
            f"ledger event type {event_type!r} is not in the catalogue (audit/events.py); "
            "add it there with its payload keys"
        )
    missing = [key for key in entry.required if key not in payload]
    if missing:
        raise UnknownEvent(
            f"ledger event {event_type!r} lacks payload key(s) {', '.join(missing)} "
            "(audit/events.py lists what it requires)"
        )


# Payload keys shared by several events.
_ROUND = ("round_id", "run_id", "round_number")
_ROUND_MOVE = (*_ROUND, "state", "reason")
_SITE = (
    "site_id",
    "slug",
    "country",
    "compute_country",
    "agreement_type",
    "agreement_document_hash",
    "agreement_valid_from",
    "agreement_valid_until",
    "one_zone_id",
    "status",
    "zone_operator_sha256",
    "zone_operator_country",
    "zone_operator_role",
)
_DATASET = (
    "dataset_id",
    "site_id",
    "lawful_basis",
    "purposes",
    "retention_until",
    "processing_countries",
    "data_categories",
    "special_category",
    "art9_condition",
    "art10_basis",
    "record_count",
)
# A policy event carries the policy's hashed content (sites.services.policies.policy_content):
# its name, version and every field the content hash covers.
_POLICY = ("policy_id", "status", "content_hash", "name", "version")
_PLACEMENT = (
    "zone_id",
    "vm_id",
    "site_id",
    "run_id",
    "host",
    "host_id",
    "host_country",
    "cluster",
    "cluster_id",
    "cluster_country",
    "datastore",
    "datastore_id",
    "datastore_country",
)

# --- the catalogue, sorted by name ----------------------------------------------------

_event(
    "adequacy.updated",
    "A new version of the Art. 45 adequacy-decision list was loaded.",
    required=("version", "sha256", "decisions"),
    subject="adequacy_list",
)
_event(
    "aggregate.recorded",
    "The aggregated model of a round was hashed and recorded, with the site updates in it.",
    required=(*_ROUND, "update_id", "ticket_id", "update_hash", "site_update_ids"),
    subject="round",
)
_event(
    "audit.key_ended",
    "A trusted signing key stopped being trusted (retired, or revoked after compromise).",
    required=("key_id", "valid_to", "reason", "revoked"),
    subject="trusted_key",
)
_event(
    "audit.key_trusted",
    "A public key joined the trusted list (log key or witness key), valid from a time.",
    required=("key_id", "role", "name", "public_key", "valid_from", "reason"),
    subject="trusted_key",
)
_event(
    "consent.batch_recorded",
    "A batch of consent grants and withdrawals for one dataset was recorded (pseudonymous).",
    required=(
        "batch_id",
        "dataset_id",
        "site_id",
        "events",
        "granted",
        "withdrawn",
        "consents_created",
        "consents_updated",
        "batch_sha256",
    ),
    subject="dataset",
)
_event(
    "dataset.registered",
    "A dataset was registered with its lawful basis, purposes, retention and countries.",
    required=_DATASET,
    optional=("recorded_late",),
    subject="dataset",
)
_event(
    "dataset.updated",
    "A dataset's registered facts changed; ``changed`` names the fields.",
    required=(*_DATASET, "changed"),
    optional=("recorded_late",),
    subject="dataset",
)
_event(
    "dataset.withdrawn",
    "A dataset was withdrawn from training; the reason is kept as a hash.",
    required=("dataset_id", "site_id", "withdrawn_at", "reason_sha256"),
    subject="dataset",
)
_event(
    "dpia.approved",
    "A DPIA (Art. 35) for a run was approved, valid until a date.",
    required=("dpia_id", "run_id", "document_hash", "valid_until"),
    subject="dpia",
)
_event(
    "dpia.recorded",
    "A DPIA document for a run was recorded (or revised) by its hash.",
    required=("dpia_id", "run_id", "document_hash", "revised"),
    subject="dpia",
)
_event(
    "evaluation.recorded",
    "A site's federated-evaluation reply under the round's evaluate ticket was hashed and "
    "recorded, with the subject list it filtered by.",
    required=(*_ROUND, "ticket_id", "site_id", "node_id", "metrics_hash", "num_examples"),
    optional=("records_used", "records_excluded", "filter_digest", "subjects_digest", "metrics"),
    subject="round",
)
_event(
    "evaluation.rejected",
    "An evaluation reply from a node the evaluate ticket does not name was refused.",
    required=(*_ROUND, "ticket_id", "node_id", "metrics_hash"),
    subject="round",
)
_event(
    "gate.decided",
    "The gate evaluated every rule for every candidate site of a round: outcome, eligible "
    "sites, failed rules, hash of the input snapshot and allow-list digests.",
    required=(
        *_ROUND,
        "decision_id",
        "outcome",
        "snapshot_hash",
        "policy_id",
        "policy_content_hash",
        "eligible_site_ids",
        "failed_rules",
        "round_failed_rules",
        "exclusion_digests",
        "allowed_digests",
    ),
    subject="round",
)
_event(
    "ledger.retention_applied",
    "Payloads older than the retention period were redacted (leaf hashes kept), except "
    "those under legal hold.",
    required=(
        "retention_days",
        "cutoff",
        "redacted",
        "first_seq",
        "last_seq",
        "held",
        "active_holds",
        "awaiting_checkpoint",
    ),
    subject="ledger",
)
_event(
    "ledger.verified",
    "Someone verified the whole ledger (chain, tree, checkpoints) and recorded the result.",
    required=("verification_id", "size", "checkpoints", "trusted_keys", "ok"),
    subject="ledger",
)
_event(
    "legal_hold.placed",
    "A legal hold stops retention from redacting a subject's events for a period.",
    required=(
        "hold_id",
        "reference_sha256",
        "reason_sha256",
        "subject_type",
        "subject_id",
        "held_from",
        "held_until",
    ),
    subject="legal_hold",
)
_event(
    "legal_hold.released",
    "A legal hold was released; retention applies again.",
    required=("hold_id", "reason_sha256"),
    subject="legal_hold",
)
_event(
    "placement.rejected",
    "A SuperNode VM landed where the policy forbids (host, cluster or datastore country); "
    "the site is blocked for the round and the VM terminated.",
    required=(*_PLACEMENT, "reasons", "terminated"),
    subject="workload",
)
_event(
    "placement.verified",
    "A SuperNode VM's actual placement (host, cluster, datastore and their countries) "
    "satisfies the residency policy.",
    required=_PLACEMENT,
    subject="workload",
)
_event(
    "policy.draft_updated",
    "A draft residency policy's content changed; ``changed`` names the fields.",
    required=(*_POLICY, "changed"),
    subject="policy",
)
_event(
    "policy.drafted",
    "A new draft version of a residency policy was written (new, or from an earlier one).",
    required=_POLICY,
    optional=("based_on",),
    subject="policy",
)
_event(
    "policy.published",
    "A residency policy version was published; its content hash is fixed from now on.",
    required=_POLICY,
    subject="policy",
)
_event(
    "privacy.accounted",
    "The differential-privacy release of a round: mechanism, clipping, noise, and the "
    "(ε, δ) spent so far as Flower's accountant computes it.",
    required=(
        *_ROUND,
        "ticket_id",
        "private",
        "mechanism",
        "planned_mechanism",
        "clipping_norm",
        "noise_multiplier",
        "sampled_clients",
        "total_clients",
        "noise_std",
        "aggregate_hash_before_noise",
        "aggregate_hash",
        "epsilon",
        "delta",
        "epsilon_limit",
        "accounting",
    ),
    subject="round",
)
_event(
    "processes.orphans_reaped",
    "Processes fedgov started (Flower, site witnesses, the TSA) that outlived their owner "
    "were stopped.",
    required=("count", "processes"),
    optional=("by", "owner_pids"),
    subject="host",
)
_event(
    "purpose.created",
    "A processing purpose was created (its name kept as a hash).",
    required=("purpose_id", "code", "name_sha256"),
    subject="purpose",
)
_event(
    "report.failed",
    "An audit report could not be generated; the error is recorded.",
    required=("report_id", "error"),
    subject="report",
)
_event(
    "report.generated",
    "A signed audit report was generated: hashes of its PDF and evidence bundle and the "
    "ledger size it is anchored to.",
    required=("report_id", "pdf_sha256", "bundle_sha256", "anchor_size"),
    subject="report",
)
_event(
    "report.requested",
    "An audit report for a run and period was requested (language: the PDF's, a code).",
    required=("report_id", "run_id", "period_start", "period_end"),
    optional=("language",),
    subject="report",
)
_event(
    "round.approval_recorded",
    "One approver approved a round (four-eyes: never its requester); expires at a time.",
    required=("round_id", "approval_id", "approver_id", "expires_at"),
    subject="round",
)
_event(
    "round.regate_requested",
    "Someone asked for a blocked round to be gated again; the round went back to planned.",
    required=(*_ROUND_MOVE, "previous_decision_id"),
    subject="round",
)
_event(
    "round.rejected",
    "An approver rejected a round.",
    required=(*_ROUND_MOVE, "approval_id"),
    subject="round",
)
_event(
    "round.approved",
    "A round may run: the gate passed and every approval the policy asks for is present "
    "and current (``approval_ids``), or the policy asks for none.",
    required=_ROUND_MOVE,
    optional=("approval_ids",),
    subject="round",
)
# Every other state of the round's state machine is entered by round_transition, which
# writes ``round.<state>`` with the same payload.
for _state, _meaning in (
    ("gated", "The gate passed for the round; it is routed to approval or approved."),
    ("blocked", "The gate denied the round; the reason names the failed rules."),
    ("awaiting_approval", "The round waits for the approvals its policy asks for."),
    ("provisioning", "SuperNode workloads are being started for the eligible sites."),
    ("placement_verified", "Every eligible site's workload runs where the policy allows."),
    ("running", "The round's ticket is issued and Flower is training."),
    ("aggregated", "The round's updates were recorded and aggregated."),
    ("closed", "The round is closed; its workloads are released."),
    ("failed", "The round failed; the reason says where."),
    ("aborted", "An operator aborted the round."),
):
    _event(f"round.{_state}", _meaning, required=_ROUND_MOVE, optional=(), subject="round")
_event(
    "run.created",
    "A training run was created: purpose, datasets, policy version, aggregator country, "
    "rounds and DP plan.",
    required=(
        "run_id",
        "purpose",
        "dataset_ids",
        "policy_id",
        "policy_version",
        "policy_content_hash",
        "aggregator_country",
        "num_rounds",
        "dp_mechanism",
        "dp_clipping_norm",
        "dp_noise_multiplier",
        "dp_target_epsilon",
        "on_refusal",
    ),
    subject="run",
)
_event(
    "site.activated",
    "A suspended site was activated again; the reason is kept as a hash.",
    required=("site_id", "slug", "reason_sha256"),
    subject="site",
)
_event(
    "site.refused",
    "A site's own local policy refused to train in a round (its client mod said why).",
    required=(*_ROUND, "ticket_id", "site_id", "node_id", "code", "reason"),
    subject="round",
)
_event(
    "site.registered",
    "A site was registered: countries, agreement, OpenNebula zone and zone operator.",
    required=_SITE,
    subject="site",
)
_event(
    "site.suspended",
    "A site was suspended: it is not eligible for any round until activated.",
    required=("site_id", "slug", "reason_sha256"),
    subject="site",
)
_event(
    "site.updated",
    "A site's registered facts changed; ``changed`` names the fields.",
    required=(*_SITE, "changed"),
    subject="site",
)
_event(
    "supernode.registered",
    "A site's SuperNode public key was registered with the SuperLink.",
    required=("site_id", "node_id", "public_key_sha256"),
    subject="site",
)
_event(
    "supernode.unregistered",
    "A site's SuperNode was unregistered; the reason is kept as a hash.",
    required=("site_id", "node_id", "reason_sha256", "superlink_unregistered"),
    subject="site",
)
_event(
    "ticket.issued",
    "fedgov signed a round ticket naming the allowed sites and nodes, the allow-list "
    "digest, the DP plan, an expiry and the gate decision's hash.",
    required=(
        *_ROUND,
        "ticket_id",
        "decision_id",
        "decision_hash",
        "body_sha256",
        "key_id",
        "site_ids",
        "node_ids",
        "sites_without_node",
        "expires_at",
        "dp_plan",
    ),
    subject="round",
)
_event(
    "token.created",
    "An API token was minted for a service or a site steward (its SHA-256, never the key).",
    required=("user_id", "role", "key_sha256"),
    optional=("site_id",),
    subject="user",
)
_event(
    "token.listed",
    "Someone listed the API tokens (fingerprints only).",
    required=("count", "fingerprints"),
    subject="token",
)
_event(
    "token.revoked",
    "An API token was revoked.",
    required=("user_id", "key_sha256"),
    subject="user",
)
_event(
    "update.recorded",
    "A site's model update was hashed canonically and recorded with its example count.",
    required=(
        *_ROUND,
        "update_id",
        "ticket_id",
        "site_id",
        "node_id",
        "update_hash",
        "num_examples",
        "records_used",
        "records_excluded",
    ),
    subject="round",
)
_event(
    "update.rejected",
    "An update came from a node the ticket does not name (or was otherwise refused).",
    required=("update_id", "round_id", "ticket_id", "node_id", "update_hash", "reason"),
    subject="round",
)
_event(
    "updates.refused",
    "fedgov refused to record a round's updates: a site broke the data contract (counts "
    "missing, or a subject-list digest that is not the ticket's).",
    required=(*_ROUND, "ticket_id", "reasons"),
    subject="round",
)
_event(
    "workload.failed",
    "Starting a SuperNode VM failed; the error says whether it is permanent.",
    required=("zone_id", "vm_id", "site_id", "run_id", "reason", "code", "permanent", "cleanup"),
    subject="workload",
)
_event(
    "workload.started",
    "A SuperNode VM was started in the site's OpenNebula zone.",
    required=("zone_id", "vm_id", "site_id", "run_id"),
    subject="workload",
)
_event(
    "workload.terminated",
    "A SuperNode VM was terminated (round over, site no longer eligible, or orphan).",
    required=("zone_id", "vm_id", "site_id", "run_id", "reason"),
    optional=("zone_endpoint",),
    subject="workload or opennebula.vm",
)


def markdown() -> str:
    """``docs/events.md``: the catalogue as a table per event type, sorted by name."""
    lines = [
        "# Ledger event types",
        "",
        "Generated from `audit/events.py` by `python -m audit.events > docs/events.md`;",
        "do not edit by hand (a test compares this file with the catalogue).",
        "",
        "Every ledger entry has an event type from this list. `ledger_append` refuses any",
        "other type and a payload without the required keys. Payloads hold ids, hashes and",
        "pseudonymous references, never raw personal data.",
        "",
        f"{len(CATALOGUE)} event types.",
        "",
        "| event type | subject | meaning | required payload keys | optional keys |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(CATALOGUE):
        entry = CATALOGUE[name]
        required = ", ".join(f"`{key}`" for key in entry.required) or "none"
        optional = ", ".join(f"`{key}`" for key in entry.optional)
        lines.append(f"| `{name}` | {entry.subject} | {entry.meaning} | {required} | {optional} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
