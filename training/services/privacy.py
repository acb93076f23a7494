"""Differential privacy on fedgov's side: the ticket's DP plan and each round's privacy record.

The plan a ticket signs comes from the run (mechanism, C, z) and its policy (δ,
neighbouring relation, limit) plus the gate's accountant figures. After the round the
strategy reports the ``DpRelease`` it applied; ``round_privacy_record`` checks it against
the ticket and writes the cumulative ε Flower's RDP accountant gives over every release
of the run so far. No report of noise, no ε: a released aggregate without a matching
release is recorded as not private, and the run's ε is unbounded from then on.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from training.choices import DpMechanism
from training.models import GateDecision, Round, RoundPrivacy, RoundTicket, TrainingRun

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
EVENT = "privacy.accounted"


def ticket_dp_plan(*, run: TrainingRun, decision: GateDecision) -> dict[str, Any] | None:
    """The ``dp`` object of a round ticket, or None when the run applies no mechanism.

    ``planned_epsilon`` is the accountant's ε after this round as the gate computed it
    (the figure a site's own limit is checked against); ``population_size`` is the
    run's number of sites, the accountant's population.
    """
    if run.dp_mechanism == DpMechanism.NONE:
        return None
    policy = run.policy
    privacy = json.loads(decision.snapshot).get("privacy") or {}
    return {
        "mechanism": run.dp_mechanism,
        "clipping_norm": run.dp_clipping_norm,
        "noise_multiplier": run.dp_noise_multiplier,
        "delta": policy.privacy_budget_delta,
        "neighbouring_relation": policy.dp_neighbouring_relation,
        "population_size": privacy.get("population_size"),
        "epsilon_limit": policy.privacy_budget_epsilon,
        "planned_epsilon": privacy.get("after"),
        "accounting_method": "rdp",
    }


def dp_run_config(run: TrainingRun) -> dict[str, str | float]:
    """The ``flwr run`` config keys that give the ServerApp the run's DP plan (read only)."""
    if run.dp_mechanism == DpMechanism.NONE:
        return {}
    return {
        "dp-mechanism": run.dp_mechanism,
        "dp-clipping-norm": float(run.dp_clipping_norm),
        "dp-noise-multiplier": float(run.dp_noise_multiplier),
        "dp-delta": float(run.policy.privacy_budget_delta),
    }


def _number(dp: dict, key: str, errors: dict[str, list[str]], *, whole=False) -> Any:
    value = dp.get(key)
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        errors.setdefault(f"dp.{key}", []).append("must be a finite number")
        return None
    if value <= 0 and key != "noise_std":
        errors.setdefault(f"dp.{key}", []).append("must be positive")
    return value


def parse_release(dp: Any, *, ticket_plan: dict | None, aggregate_hash: str | None) -> dict | None:
    """Validate a reported ``DpRelease`` against the ticket's plan. Raises ``InvalidInput``.

    The mechanism, clipping norm and noise multiplier must be the ones the ticket
    signed; the noised aggregate's hash must be the aggregate hash reported alongside.
    """
    if dp is None:
        return None
    if not isinstance(dp, dict):
        raise InvalidInput({"dp": ["must be an object"]})
    if ticket_plan is None:
        raise InvalidInput({"dp": ["the round's ticket planned no DP mechanism"]})
    errors: dict[str, list[str]] = {}
    clean = _release_fields(dp, errors)
    if not errors:
        _check_release_against(clean, ticket_plan, aggregate_hash, errors)
    if errors:
        raise InvalidInput(errors)
    return clean


def _release_fields(dp: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """The release's numbers and hashes, each checked for its own shape."""
    clean = {
        key: _number(dp, key, errors) for key in ("clipping_norm", "noise_multiplier", "noise_std")
    }
    for key in ("sampled_clients", "total_clients"):
        clean[key] = _number(dp, key, errors, whole=True)
    clean["mechanism"] = dp.get("mechanism")
    for key in ("aggregate_hash_before_noise", "aggregate_hash"):
        value = dp.get(key)
        if value is not None and (not isinstance(value, str) or not _HEX64.match(value)):
            errors.setdefault(f"dp.{key}", []).append("must be 64 lowercase hex digits")
        clean[key] = value
    return clean


def _check_release_against(
    clean: dict[str, Any],
    ticket_plan: dict[str, Any],
    aggregate_hash: str | None,
    errors: dict[str, list[str]],
) -> None:
    """A well-formed release against the ticket's plan and the reported aggregate."""
    for key in ("mechanism", "clipping_norm", "noise_multiplier"):
        if clean[key] != ticket_plan.get(key):
            errors.setdefault(f"dp.{key}", []).append(
                f"{clean[key]!r} is not the ticket's {ticket_plan.get(key)!r}"
            )
    if clean["sampled_clients"] > clean["total_clients"]:
        errors.setdefault("dp.sampled_clients", []).append("exceeds total_clients")
    if clean["aggregate_hash"] != aggregate_hash:
        errors.setdefault("dp.aggregate_hash", []).append(
            "is not the aggregate hash reported with it"
        )
    # Server-side noise changes the aggregate: the same hash before and after (or no
    # hash before) means none was added, whatever the report claims.
    if clean["mechanism"] != "local" and clean["aggregate_hash_before_noise"] in (
        None,
        clean["aggregate_hash"],
    ):
        errors.setdefault("dp.aggregate_hash_before_noise", []).append(
            "must be the aggregate's hash before noise, and differ from it after"
        )


_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


def parse_site_refusals(items: Any, *, ticket) -> list[dict[str, Any]]:
    """Validate the sites' own refusals a report carries. Raises ``InvalidInput``.

    Each names a node of the ticket, a refusal code and the site mod's reason; the
    reason is machine text from the site's mod (no personal data), kept to 500 chars.
    """
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidInput({"site_refusals": ["must be a list"]})
    errors: dict[str, list[str]] = {}
    clean = []
    for i, item in enumerate(items):
        where = f"site_refusals[{i}]"
        if not isinstance(item, dict):
            errors[where] = ["must be an object"]
            continue
        node_id, code = str(item.get("node_id", "")), item.get("code")
        reason = item.get("reason", "")
        named = ticket.site_by_node(node_id)
        if named is None:
            errors.setdefault(where, []).append(f"node {node_id!r} is not named in the ticket")
        if not isinstance(code, str) or not _CODE.match(code):
            errors.setdefault(where, []).append("code must be a refusal code (a-z, 0-9, _)")
        if not isinstance(reason, str) or len(reason) > 500:
            errors.setdefault(where, []).append("reason must be text of at most 500 characters")
        if named is not None:
            clean.append(
                {"site_id": named.site_id, "node_id": node_id, "code": code, "reason": reason}
            )
    if errors:
        raise InvalidInput(errors)
    return clean


def round_privacy_record(
    *,
    actor: Actor,
    round_: Round,
    ticket: RoundTicket,
    ticket_plan: dict | None,
    release: dict | None,
    aggregate_hash: str | None,
    sampled_clients: int,
) -> RoundPrivacy | None:
    """Write the round's privacy record; call inside ``model_updates_record``'s transaction.

    Nothing is written when no aggregate was released, or when the run neither plans a
    mechanism nor sits under a budget. Writes ledger event ``privacy.accounted``.
    """
    from fedgov_flower.dp import AccountingSpec, privacy_spent
    from training.selectors import privacy_history

    run = round_.run
    policy = run.policy
    if aggregate_hash is None:
        return None
    if ticket_plan is None and release is None and policy.privacy_budget_epsilon is None:
        return None
    population = int((ticket_plan or {}).get("population_size") or sampled_clients or 1)
    epsilon = None
    accounting: dict[str, Any] = {}
    history = privacy_history(run_id=run.pk, before_round=round_.number)
    private = release is not None and not any(not r.private for r in history)
    if release is not None and policy.privacy_budget_delta is not None:
        spec = AccountingSpec(
            delta=policy.privacy_budget_delta,
            population_size=population,
            relation=policy.dp_neighbouring_relation,
        )
        multipliers = [float(r.noise_multiplier) for r in history if r.private]
        multipliers.append(float(release["noise_multiplier"]))
        if private:
            spent = privacy_spent(spec, multipliers)
            epsilon = spent.epsilon
            accounting = {
                **spec.as_json(),
                "optimal_order": spent.optimal_order,
                "releases": spent.num_releases,
                "noise_multipliers": multipliers,
            }
        else:
            accounting = {**spec.as_json(), "unprotected_rounds": [
                r.round_no for r in history if not r.private
            ]}  # fmt: skip
    row = RoundPrivacy.objects.create(
        round=round_,
        private=private and epsilon is not None,
        mechanism=(release or {}).get("mechanism") or DpMechanism.NONE,
        clipping_norm=(release or {}).get("clipping_norm"),
        noise_multiplier=(release or {}).get("noise_multiplier"),
        sampled_clients=(release or {}).get("sampled_clients") or sampled_clients,
        total_clients=(release or {}).get("total_clients") or population,
        noise_std=(release or {}).get("noise_std"),
        aggregate_hash_before_noise=(release or {}).get("aggregate_hash_before_noise") or "",
        aggregate_hash=aggregate_hash,
        epsilon=epsilon,
        delta=policy.privacy_budget_delta,
        epsilon_limit=policy.privacy_budget_epsilon,
        accounting=accounting,
        recorded_at=clock.now(),
    )
    ledger_append(
        event_type=EVENT,
        actor=actor,
        subject_type="round",
        subject_id=round_.pk,
        payload={
            "round_id": round_.pk,
            "run_id": run.pk,
            "round_number": round_.number,
            "ticket_id": ticket.pk,
            "private": row.private,
            "mechanism": row.mechanism,
            "planned_mechanism": (ticket_plan or {}).get("mechanism", DpMechanism.NONE),
            "clipping_norm": row.clipping_norm,
            "noise_multiplier": row.noise_multiplier,
            "sampled_clients": row.sampled_clients,
            "total_clients": row.total_clients,
            "noise_std": row.noise_std,
            "aggregate_hash_before_noise": row.aggregate_hash_before_noise or None,
            "aggregate_hash": row.aggregate_hash,
            "epsilon": row.epsilon,
            "delta": row.delta,
            "epsilon_limit": row.epsilon_limit,
            "accounting": accounting,
        },
    )
    return row
