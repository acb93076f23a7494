"""Each GDPR gate rule, table-driven: the facts that make it pass and those that fail it."""

from __future__ import annotations

import pytest

from tests.training.gate_facts import (
    context,
    dataset,
    policy_facts,
    privacy_facts,
    run_facts,
    site,
)
from training.gate import RULE_IDS, evaluate
from training.gate.context import DpiaFacts
from training.gate.rules import ROUND_RULES, SITE_RULES, RoundCheck, SiteCheck

C = context

# (rule, context, passes?, a phrase the reason must contain)
CASES = [
    # site-active: Art. 26/28
    ("site-active", C(), True, "agreement valid until 2026-12-31"),
    ("site-active", C(sites=[site(status="suspended")]), False, "suspended"),
    ("site-active", C(sites=[site(agreement_valid_until="2026-06-14")]), False, "expired"),
    ("site-active", C(sites=[site(agreement_valid_from="2026-07-01")]), False, "starts on"),
    # Boundary days (the round is on 2026-06-15): both ends of the agreement are covered.
    ("site-active", C(sites=[site(agreement_valid_until="2026-06-15")]), True, "valid until"),
    ("site-active", C(sites=[site(agreement_valid_from="2026-06-15")]), True, "valid until"),
    ("site-active", C(sites=[site(agreement_valid_from="2026-06-16")]), False, "starts on"),
    ("site-active", C(sites=[site(agreement_document_hash="")]), False, "no signed"),
    ("site-active", C(sites=[site(agreement_valid_until=None)]), False, "unknown"),
    # lawful-basis: Art. 6(1)
    ("lawful-basis", C(), True, "6(1)(a)"),
    ("lawful-basis", C(sites=[site(datasets=[dataset(lawful_basis="")])]), False, "no Art. 6(1)"),
    (
        "lawful-basis",
        C(sites=[site(datasets=[dataset(withdrawn_at="2026-06-01T00:00:00.000000Z")])]),
        False,
        "withdrawn from federation",
    ),
    (
        "lawful-basis",
        C(sites=[site(datasets=[dataset(all_subjects_withdrawn=True, consent_eligible=0)])]),
        False,
        "every subject withdrew consent (Art. 7(3))",
    ),
    # special-category: Art. 9(2)
    ("special-category", C(), True, "no special-category"),
    (
        "special-category",
        C(sites=[site(datasets=[dataset(special_category=True, art9_condition="9(2)(j)")])]),
        True,
        "9(2)(j)",
    ),
    (
        "special-category",
        C(sites=[site(datasets=[dataset(special_category=True, art9_condition="")])]),
        False,
        "without a recorded Art. 9(2) condition",
    ),
    # special-category: Art. 9(1) categories make the data special whatever the flag says
    (
        "special-category",
        C(sites=[site(datasets=[dataset(data_categories=("text", "health"))])]),
        False,
        "special-category data (health) without a recorded Art. 9(2) condition",
    ),
    (
        "special-category",
        C(
            sites=[
                site(
                    datasets=[
                        dataset(
                            data_categories=("trade-union-membership",), art9_condition="9(2)(d)"
                        )
                    ]
                )
            ]
        ),
        True,
        "(trade-union-membership) under Art. 9(2)(d)",
    ),
    (
        "special-category",
        C(sites=[site(datasets=[dataset(data_categories=("text", "author-pseudonym"))])]),
        True,
        "no special-category data",
    ),
    # criminal-data: Art. 10
    ("criminal-data", C(), True, "no criminal-conviction data"),
    (
        "criminal-data",
        C(sites=[site(datasets=[dataset(data_categories=("criminal-convictions-and-offences",))])]),
        False,
        "without a recorded Art. 10 ground",
    ),
    (
        "criminal-data",
        C(
            sites=[
                site(
                    datasets=[
                        dataset(
                            data_categories=("criminal-convictions-and-offences",),
                            art10_basis="member_state_law",
                        )
                    ]
                )
            ]
        ),
        False,
        "without its reference",
    ),
    (
        "criminal-data",
        C(
            sites=[
                site(
                    datasets=[
                        dataset(
                            data_categories=("criminal-convictions-and-offences",),
                            art10_basis="member_state_law",
                            art10_reference="§ 1 Gesetz X",
                        )
                    ]
                )
            ]
        ),
        True,
        "member_state_law, § 1 Gesetz X",
    ),
    # purpose-limitation: Art. 5(1)(b)
    ("purpose-limitation", C(), True, "permitted"),
    (
        "purpose-limitation",
        C(sites=[site(datasets=[dataset(purposes=("marketing",))])]),
        False,
        "not among",
    ),
    # retention: Art. 5(1)(e)
    ("retention", C(), True, "retained until"),
    ("retention", C(sites=[site(datasets=[dataset(retention_until="2026-06-15")])]), True, ""),
    (
        "retention",
        C(sites=[site(datasets=[dataset(retention_until="2026-06-14")])]),
        False,
        "ended on",
    ),
    ("retention", C(sites=[site(datasets=[dataset(retention_until=None)])]), False, "no retention"),
    # consent: Art. 7
    ("consent", C(), True, "100 with current consent"),
    (
        "consent",
        C(sites=[site(datasets=[dataset(consent_eligible=0, consent_excluded=120)])]),
        False,
        "no subject with current consent",
    ),
    (
        "consent",
        C(sites=[site(datasets=[dataset(lawful_basis="6(1)(e)", consent_eligible=0)])]),
        True,
        "not consent-based",
    ),
    # min-records: policy
    ("min-records", C(policy=policy_facts(min_records_per_site=100)), True, "100 eligible"),
    ("min-records", C(policy=policy_facts(min_records_per_site=101)), False, "needs 101"),
    (
        "min-records",
        C(sites=[site(datasets=[dataset(lawful_basis="6(1)(e)", record_count=500)])]),
        True,
        "500 eligible",
    ),
    ("min-records", C(sites=[site(datasets=[])]), False, "0 eligible"),
    # dpia: Art. 35
    ("dpia", C(), True, "approved"),
    ("dpia", C(dpia=None), False, "no DPIA"),
    ("dpia", C(dpia=DpiaFacts("D", "draft", None)), False, "not approved"),
    ("dpia", C(dpia=DpiaFacts("D", "approved", "2026-06-14")), False, "expired"),
    # Boundary: ``valid_until`` is the last day the DPIA covers (docs/legal-model.md).
    ("dpia", C(dpia=DpiaFacts("D", "approved", "2026-06-15")), True, "approved"),
    ("dpia", C(dpia=None, policy=policy_facts(requires_dpia=False)), True, "does not require"),
    # residency: Art. 44 + policy
    ("residency", C(), True, "compute in DE"),
    ("residency", C(sites=[site(compute_country="US")]), False, "outside the policy"),
    ("residency", C(sites=[site(compute_country="")]), False, "unknown"),
    (
        "residency",
        C(sites=[site(datasets=[dataset(processing_countries=("FR",))])]),
        False,
        "not in DE",
    ),
    ("residency", C(policy=policy_facts(status="draft")), False, "not published"),
    ("residency", C(policy=policy_facts(allowed_areas=())), False, "outside"),
    # The aggregator receives model updates (personal data by default) and consent lists:
    # where it runs is a residency fact too.
    ("residency", C(), True, "compute in DE and the aggregator in DE"),
    (
        "residency",
        C(run=run_facts(aggregator_country="US")),
        False,
        "the aggregator in US is outside the policy's areas",
    ),
    (
        "residency",
        C(run=run_facts(aggregator_country="")),
        False,
        "aggregator's country is unknown",
    ),
    (
        "residency",
        C(
            run=run_facts(aggregator_country="FR"),
            sites=[site(datasets=[dataset(processing_countries=("DE",))])],
        ),
        False,
        "not in FR (the aggregator)",
    ),
    (
        # Updates not personal data, and no consent list: the aggregator's place is not read.
        "residency",
        C(
            run=run_facts(aggregator_country="US"),
            policy=policy_facts(model_updates_personal_data=False),
            sites=[site(datasets=[dataset(lawful_basis="6(1)(e)")])],
        ),
        True,
        "compute in DE, allowed",
    ),
    # transfer: Art. 44-49 (the full table is tests/training/test_gate_transfer.py)
    ("transfer", C(), True, "not a transfer, same organisation"),
    ("transfer", C(sites=[site(zone_operator=None)]), False, "not recorded"),
    # privacy-budget: Art. 25/32 — ε only from Flower's accountant (``GateContext.privacy``)
    ("privacy-budget", C(), True, "no privacy budget"),
    (
        "privacy-budget",
        C(policy=policy_facts(privacy_budget_epsilon=3.0)),
        False,
        "no accountant figures",
    ),
    (
        "privacy-budget",
        C(policy=policy_facts(privacy_budget_epsilon=3.0), privacy=privacy_facts()),
        True,
        "spent ε=1.4 + this round 0.8 = 2.2 of 3 at δ=1e-05 (rdp, add-or-remove-one, z=2)",
    ),
    (
        "privacy-budget",
        C(
            policy=policy_facts(privacy_budget_epsilon=3.0),
            privacy=privacy_facts(after=3.2, would_exceed=True),
        ),
        False,
        "spent ε=1.4 + this round 1.8 = 3.2 of 3 at δ=1e-05",
    ),
    # Nothing adds noise: a budget can never be met by a declaration.
    (
        "privacy-budget",
        C(
            policy=policy_facts(privacy_budget_epsilon=3.0),
            privacy=privacy_facts(
                mechanism="none", noise_multiplier=None, spent=None, after=None, would_exceed=None
            ),
        ),
        False,
        "no mechanism that adds noise: no ε can be claimed",
    ),
    (
        "privacy-budget",
        C(
            policy=policy_facts(privacy_budget_epsilon=3.0),
            privacy=privacy_facts(
                unprotected_rounds=(2,), spent=None, after=None, would_exceed=None
            ),
        ),
        False,
        "round 2 released an aggregate without noise: ε is unbounded",
    ),
    (
        "privacy-budget",
        C(policy=policy_facts(privacy_budget_epsilon=3.0), privacy=privacy_facts(delta=None)),
        False,
        "without its δ",
    ),
    (
        "privacy-budget",
        C(
            policy=policy_facts(privacy_budget_epsilon=3.0),
            privacy=privacy_facts(spent=None, after=None, would_exceed=None),
        ),
        False,
        "no figures",
    ),
    (
        "privacy-budget",
        C(privacy=privacy_facts(required_mechanism="local", limit=None)),
        False,
        "the policy requires local DP; the run applies central",
    ),
    (
        "privacy-budget",
        C(privacy=privacy_facts(mechanism="none", limit=None)),
        True,
        "no privacy budget (mechanism none)",
    ),
]


@pytest.mark.parametrize(
    ("rule_id", "ctx", "ok", "phrase"),
    CASES,
    ids=[f"{c[0]}-{'pass' if c[2] else 'fail'}-{i}" for i, c in enumerate(CASES)],
)
def test_site_rule_verdict(rule_id, ctx, ok, phrase):
    rule = next(r for r in SITE_RULES if r.rule_id == rule_id)
    result = rule.evaluate(SiteCheck(gate=ctx, site=ctx.sites[0]))
    assert result.rule_id == rule_id
    assert result.ok is ok
    assert phrase in result.reason


@pytest.mark.parametrize(
    ("passing", "needed", "ok"),
    [(("a", "b"), 2, True), (("a",), 2, False), ((), 1, False), (("a", "b", "c"), 1, True)],
)
def test_min_sites_rule_counts_sites_that_pass_everything(passing, needed, ok):
    (rule,) = ROUND_RULES
    ctx = context(policy=policy_facts(min_eligible_sites=needed))
    result = rule.evaluate(RoundCheck(gate=ctx, passing_sites=passing))
    assert (result.rule_id, result.article, result.ok) == ("min-sites", "policy", ok)


def test_the_gate_has_the_thirteen_rules_in_order():
    assert RULE_IDS == (
        "site-active",
        "lawful-basis",
        "special-category",
        "criminal-data",
        "purpose-limitation",
        "retention",
        "consent",
        "min-records",
        "dpia",
        "residency",
        "transfer",
        "privacy-budget",
        "min-sites",
    )


def test_every_rule_is_covered_by_a_pass_and_a_fail_case():
    seen = {(rule_id, ok) for rule_id, _, ok, _ in CASES}
    for rule in SITE_RULES:
        assert (rule.rule_id, True) in seen and (rule.rule_id, False) in seen


def test_a_site_failing_one_rule_is_not_eligible_and_the_round_may_still_pass():
    ctx = context(sites=[site(1, "de-legal"), site(2, "nl-media", compute_country="US")])
    verdict = evaluate(ctx)
    assert verdict.outcome == "allowed"
    assert verdict.eligible_site_ids == (1,)
    # The site's own servers abroad: a residency question, not a transfer (EDPB 05/2021).
    assert verdict.sites[1].failed_rules == ("residency",)
    assert "nl-media (residency)" in verdict.reason


def test_round_blocked_below_min_sites_makes_no_site_eligible():
    ctx = context(
        sites=[site(1, "de-legal"), site(2, "nl-media", compute_country="US")],
        policy=policy_facts(min_eligible_sites=2),
    )
    verdict = evaluate(ctx)
    assert verdict.outcome == "blocked"
    assert verdict.eligible_site_ids == ()
    assert verdict.sites[0].passed and not verdict.sites[0].eligible
    assert verdict.reason.startswith("blocked: min-sites")


def test_a_site_without_datasets_fails_dataset_rules():
    ctx = context(sites=[site(datasets=[])])
    verdict = evaluate(ctx)
    failed = verdict.sites[0].failed_rules
    assert {"lawful-basis", "consent", "residency", "min-records"} <= set(failed)
