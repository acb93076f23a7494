"""Builders of frozen gate contexts for the pure rule tests: a site that passes by default."""

from __future__ import annotations

from dataclasses import replace

from sites.adequacy import shipped_adequacy
from sites.regions import region_countries
from training.gate.builder import adequacy_facts
from training.gate.context import (
    DatasetFacts,
    DpiaFacts,
    GateContext,
    PartyFacts,
    PolicyFacts,
    PrivacyFacts,
    RunFacts,
    SiteFacts,
    exclusion_digest,
)

AT = "2026-06-15T12:00:00.000000Z"
ORG = "Rechtsdokumentation Leipzig e.V."
ADEQUACY = adequacy_facts(shipped_adequacy())
REGIONS = {name: tuple(sorted(region_countries(name))) for name in ("EEA", "ADEQUACY")}


def dataset(**changes) -> DatasetFacts:
    base = DatasetFacts(
        id=1,
        name="corpus",
        lawful_basis="6(1)(a)",
        special_category=False,
        art9_condition="",
        purposes=("topic-classification",),
        retention_until="2027-01-01",
        processing_countries=("EEA",),
        record_count=0,
        withdrawn_at=None,
        consent_eligible=100,
        consent_excluded=0,
    )
    return replace(base, **changes)


def site(id: int = 1, slug: str = "de-legal", datasets=None, **changes) -> SiteFacts:
    base = SiteFacts(
        id=id,
        slug=slug,
        organisation=ORG,
        country="DE",
        role="joint_controller",
        compute_country="DE",
        # By default the site runs its own zone: no transfer for its data.
        zone_operator=party(ORG, "DE", "joint_controller"),
        status="active",
        agreement_document_hash="a" * 64,
        agreement_valid_from="2026-01-01",
        agreement_valid_until="2026-12-31",
        exclusion_digest=exclusion_digest([]),
        datasets=tuple(datasets) if datasets is not None else (dataset(id=id),),
    )
    return replace(base, **changes)


def context(sites=None, run=None, policy=None, dpia="default", **changes) -> GateContext:
    return GateContext(
        round_no=changes.pop("round_no", 1),
        at=changes.pop("at", AT),
        run=run or run_facts(),
        policy=policy or policy_facts(),
        dpia=DpiaFacts(reference="DPIA-1", status="approved", valid_until="2026-12-31")
        if dpia == "default"
        else dpia,
        sites=tuple(sites) if sites is not None else (site(),),
        adequacy=changes.pop("adequacy", ADEQUACY),
        regions=REGIONS,
        privacy=changes.pop("privacy", None),
    )


def run_facts(**changes) -> RunFacts:
    base = RunFacts(
        id=1,
        name="run",
        purpose="topic-classification",
        aggregator_country="DE",
        epsilon_per_round=None,
        rounds_past_gate=0,
    )
    return replace(base, **changes)


def policy_facts(**changes) -> PolicyFacts:
    base = PolicyFacts(
        id=1,
        name="eu",
        version=1,
        status="published",
        content_hash="b" * 64,
        allowed_areas=("EEA",),
        min_eligible_sites=1,
        min_records_per_site=1,
        requires_dpia=True,
        privacy_budget_epsilon=None,
        aggregator_operator=party("Koordinierungsstelle GmbH", "DE", "controller"),
        host_operator=party("Rechenzentrum Nord GmbH", "DE", "processor"),
    )
    return replace(base, **changes)


def party(organisation: str, country: str, role: str) -> PartyFacts:
    return PartyFacts(organisation=organisation, country=country, role=role)


def privacy_facts(**changes) -> PrivacyFacts:
    """A run under central DP with budget figures from the accountant (tests set them)."""
    base = PrivacyFacts(
        mechanism="central",
        clipping_norm=1.0,
        noise_multiplier=2.0,
        required_mechanism="",
        relation="add-or-remove-one",
        delta=1e-5,
        limit=3.0,
        population_size=3,
        releases=(2.0,),
        unprotected_rounds=(),
        spent=1.4,
        after=2.2,
        would_exceed=False,
        accounting_method="rdp",
    )
    return replace(base, **changes)
