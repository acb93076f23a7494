"""Property: whatever the facts, a site that fails any rule is never eligible."""

from __future__ import annotations

import json

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.services import canonical_bytes
from tests.training.gate_facts import context, dataset, policy_facts, site
from training.gate import evaluate, replay, to_snapshot
from training.gate.context import DpiaFacts, RunFacts

COUNTRIES = st.sampled_from(["DE", "ES", "PL", "NL", "FR", "US", "CH", "IN", ""])
DATES = st.sampled_from([None, "2025-01-01", "2026-06-14", "2026-06-15", "2027-01-01"])

datasets = st.builds(
    dataset,
    id=st.integers(1, 10_000),
    lawful_basis=st.sampled_from(["6(1)(a)", "6(1)(e)", "6(1)(f)", ""]),
    special_category=st.booleans(),
    art9_condition=st.sampled_from(["", "9(2)(a)", "9(2)(j)"]),
    purposes=st.sampled_from([(), ("topic-classification",), ("marketing",)]),
    retention_until=DATES,
    processing_countries=st.sampled_from([(), ("EEA",), ("DE",), ("US", "EEA")]),
    record_count=st.integers(0, 200),
    withdrawn_at=st.sampled_from([None, "2026-01-01T00:00:00.000000Z"]),
    consent_eligible=st.integers(0, 200),
    consent_excluded=st.integers(0, 50),
    all_subjects_withdrawn=st.booleans(),
    data_categories=st.sampled_from(
        [(), ("text",), ("health",), ("criminal-convictions-and-offences",)]
    ),
    art10_basis=st.sampled_from(["", "member_state_law"]),
    art10_reference=st.sampled_from(["", "§ 1"]),
)


@st.composite
def sites(draw):
    n = draw(st.integers(0, 6))
    return [
        site(
            id=i + 1,
            slug=f"site-{i}",
            status=draw(st.sampled_from(["active", "suspended"])),
            compute_country=draw(COUNTRIES),
            agreement_valid_from=draw(DATES),
            agreement_valid_until=draw(DATES),
            datasets=draw(st.lists(datasets, max_size=3)),
        )
        for i in range(n)
    ]


contexts = st.builds(
    context,
    sites=sites(),
    run=st.builds(
        RunFacts,
        id=st.just(1),
        name=st.just("run"),
        purpose=st.sampled_from(["topic-classification", "marketing"]),
        aggregator_country=COUNTRIES,
        epsilon_per_round=st.none(),
        rounds_past_gate=st.integers(0, 5),
    ),
    policy=st.builds(
        policy_facts,
        allowed_areas=st.sampled_from([(), ("EEA",), ("DE", "ES")]),
        min_eligible_sites=st.integers(1, 4),
        min_records_per_site=st.integers(0, 150),
        requires_dpia=st.booleans(),
        privacy_budget_epsilon=st.sampled_from([None, 0.3, 1.0, 3.0]),
    ),
    dpia=st.one_of(
        st.none(),
        st.builds(
            DpiaFacts,
            reference=st.just("D"),
            status=st.sampled_from(["draft", "approved", "rejected"]),
            valid_until=DATES,
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(contexts)
def test_no_site_with_a_failed_rule_is_ever_eligible(ctx):
    verdict = evaluate(ctx)
    for s in verdict.sites:
        if any(not r.ok for r in s.results):
            assert not s.eligible
            assert s.site_id not in verdict.eligible_site_ids
    if verdict.outcome == "blocked":
        assert verdict.eligible_site_ids == ()
    else:
        assert len(verdict.eligible_site_ids) >= ctx.policy.min_eligible_sites


@settings(max_examples=100, deadline=None)
@given(contexts)
def test_replay_of_any_snapshot_gives_the_same_verdict(ctx):
    stored = json.loads(rfc8785.dumps(to_snapshot(ctx)))
    assert replay(stored) == evaluate(ctx)


@settings(max_examples=150, deadline=None)
@given(contexts, st.sampled_from([None, 0.1, 1e-7, 1e21, 2.5e-324, -0.0, 0.30000000000000004]))
def test_snapshot_bytes_are_rfc8785s_byte_for_byte(ctx, epsilon):
    """The gate hashes ``canonical_bytes`` of the snapshot (C encoder for the plain
    parts): the bytes must be those ``rfc8785`` writes, floats (ECMAScript formatting)
    included, or a third party re-hashing the snapshot would not get its hash."""
    snapshot = to_snapshot(ctx)
    if epsilon is not None:
        snapshot["policy"]["privacy_budget_epsilon"] = epsilon
        snapshot["sites"] = [{**s, "weight": epsilon} for s in snapshot["sites"]]
    assert canonical_bytes(snapshot) == rfc8785.dumps(snapshot)


# Residency (Art. 28(3)(a), 44 and the policy): whatever else holds, a site whose
# processing location is outside any of its datasets' countries or the policy's areas is
# never allowed. Every other fact is drawn so that the site would otherwise pass.
AREAS = st.sampled_from([("EEA",), ("DE",), ("FR",), ("DE", "ES"), ("EEA", "CH"), ("US",)])
LOCATIONS = st.sampled_from(["DE", "FR", "ES", "CH", "US", "IN", "NO"])


@settings(max_examples=400, deadline=None)
@given(
    where=LOCATIONS,
    aggregator=LOCATIONS,
    policy_areas=AREAS,
    dataset_areas=st.lists(AREAS, min_size=1, max_size=3),
)
def test_the_gate_never_allows_a_site_processing_outside_its_datasets_or_policy(
    where, aggregator, policy_areas, dataset_areas
):
    """The processing locations are the site's compute and the aggregator, which receives
    its model updates (personal data by the policy's default reading)."""
    from tests.training.gate_facts import REGIONS, run_facts

    ctx = context(
        sites=[
            site(
                compute_country=where,
                datasets=[
                    dataset(id=i + 1, name=f"ds{i}", processing_countries=areas)
                    for i, areas in enumerate(dataset_areas)
                ],
            )
        ],
        policy=policy_facts(allowed_areas=policy_areas),
        run=run_facts(aggregator_country=aggregator),
    )
    verdict = evaluate(ctx)

    def expand(areas):
        return {c for a in areas for c in REGIONS.get(a, (a,))}

    inside = all(
        place in expand(policy_areas) and all(place in expand(a) for a in dataset_areas)
        for place in (where, aggregator)
    )
    if not inside:
        assert verdict.eligible_site_ids == ()
        assert "residency" in verdict.sites[0].failed_rules
    else:
        # Nothing else is wrong with the site: residency is the only thing deciding.
        assert verdict.outcome == "allowed", verdict.reason
