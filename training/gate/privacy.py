"""The privacy-budget facts of a round: Flower's RDP accountant asked before the round.

The builder calls ``privacy_facts`` with what the run applies and what earlier rounds
released; the rule (``rules.PrivacyBudget``) only compares. ε is never declared: it is
the accountant's figure over the releases actually applied (``fedgov_flower.dp``).
"""

from __future__ import annotations

from typing import cast

from training.gate.context import PrivacyFacts
from training.selectors import PastRelease, PolicyRow, RunGateRow


def privacy_facts(
    *, run: RunGateRow, policy: PolicyRow, history: list[PastRelease], population_size: int
) -> PrivacyFacts:
    """The accountant's answer for the next round of ``run`` (pure apart from the maths)."""
    # Imported here: flwr loads only when a gate runs, not with every Django process.
    from fedgov_flower.dp import ACCOUNTING_METHOD, AccountingSpec, DpError, budget_check

    # A private release always names its multiplier (the privacy row's constraint).
    releases = tuple(float(cast(float, r.noise_multiplier)) for r in history if r.private)
    unprotected = tuple(r.round_no for r in history if not r.private)
    spent = after = exceed = None
    limit, delta = policy.privacy_budget_epsilon, policy.privacy_budget_delta
    z = run.dp_noise_multiplier
    if (
        limit is not None
        and delta is not None
        and run.dp_mechanism != "none"
        and z
        and population_size > 0
        and not unprotected
    ):
        try:
            spec = AccountingSpec(
                delta=delta,
                population_size=population_size,
                relation=policy.dp_neighbouring_relation,
            )
            check = budget_check(spec, releases, z, limit)
        except DpError:
            pass  # the rule fails on the missing figures, deny by default
        else:
            spent, after, exceed = check.spent, check.after, check.would_exceed
    return PrivacyFacts(
        mechanism=run.dp_mechanism,
        clipping_norm=run.dp_clipping_norm,
        noise_multiplier=z,
        required_mechanism=policy.dp_required_mechanism,
        relation=policy.dp_neighbouring_relation,
        delta=delta,
        limit=limit,
        population_size=population_size,
        releases=releases,
        unprotected_rounds=unprotected,
        spent=spent,
        after=after,
        would_exceed=exceed,
        accounting_method=ACCOUNTING_METHOD,
    )
