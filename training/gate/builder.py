"""Builds the gate's frozen context from the database with a fixed number of queries.

Six reads whatever the size of the federation: the run (with purpose, policy and DPIA),
its dataset ids, the datasets with their sites, their purposes, one aggregate of consent
per dataset (counts and excluded pseudonyms), the count of earlier rounds past the gate,
and the earlier rounds' privacy releases (``selectors.privacy_history``) for the accountant.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sites import selectors as site_selectors
from sites.regions import region_countries
from training import selectors
from training.gate.context import (
    REGIONS_IN_CONTEXT,
    DatasetFacts,
    DpiaFacts,
    GateContext,
    PolicyFacts,
    RunFacts,
    SiteFacts,
    exclusion_digest,
    instant,
    iso,
)
from training.gate.privacy import privacy_facts


def build_context(
    *, run_id: int, round_no: int, at: datetime
) -> tuple[GateContext, dict[int, list[str]]]:
    """The context for ``round_no`` at instant ``at``, and per site its excluded pseudonyms.

    Raises ``TrainingRun.DoesNotExist``.
    """
    run = selectors.run_for_gate(run_id=run_id)
    dataset_ids = selectors.run_dataset_ids(run_id=run_id)
    datasets, sites = site_selectors.datasets_with_sites(dataset_ids=dataset_ids)
    consents = site_selectors.consent_states(
        dataset_ids=dataset_ids, purpose_id=run.purpose_id, at=at
    )
    spent_rounds = selectors.rounds_past_gate(run_id=run_id, before_round=round_no)
    history = selectors.privacy_history(run_id=run_id, before_round=round_no)

    by_site: dict[int, list[DatasetFacts]] = defaultdict(list)
    pseudonyms: dict[int, set[str]] = defaultdict(set)
    for ds in datasets:
        consent = consents.get(ds.id, site_selectors.ConsentState())
        by_site[ds.site_id].append(
            DatasetFacts(
                id=ds.id,
                name=ds.name,
                lawful_basis=ds.lawful_basis,
                special_category=ds.special_category,
                art9_condition=ds.art9_condition,
                purposes=ds.purposes,
                retention_until=iso(ds.retention_until),
                processing_countries=ds.processing_countries,
                record_count=ds.record_count,
                withdrawn_at=instant(ds.withdrawn_at) if ds.withdrawn_at else None,
                consent_eligible=consent.eligible,
                consent_excluded=len(consent.excluded),
            )
        )
        pseudonyms[ds.site_id].update(consent.excluded)

    site_facts = tuple(
        SiteFacts(
            id=site.id,
            slug=site.slug,
            country=site.country,
            compute_country=site.compute_country,
            status=site.status,
            agreement_document_hash=site.agreement_document_hash,
            agreement_valid_from=iso(site.agreement_valid_from),
            agreement_valid_until=iso(site.agreement_valid_until),
            transfer_mechanism=run.policy.transfer_mechanisms.get(site.slug),
            exclusion_digest=exclusion_digest(sorted(pseudonyms[site.id])),
            datasets=tuple(by_site[site.id]),
        )
        for site in sites
    )
    policy = run.policy
    ctx = GateContext(
        round_no=round_no,
        at=instant(at),
        run=RunFacts(
            id=run.id,
            name=run.name,
            purpose=run.purpose_code,
            aggregator_country=run.aggregator_country,
            epsilon_per_round=None,
            rounds_past_gate=spent_rounds,
        ),
        policy=PolicyFacts(
            id=policy.id,
            name=policy.name,
            version=policy.version,
            status=policy.status,
            content_hash=policy.content_hash,
            allowed_areas=policy.allowed_areas,
            min_eligible_sites=policy.min_eligible_sites,
            min_records_per_site=policy.min_records_per_site,
            requires_dpia=policy.requires_dpia,
            privacy_budget_epsilon=policy.privacy_budget_epsilon,
        ),
        dpia=(
            DpiaFacts(
                reference=run.dpia.reference,
                status=run.dpia.status,
                valid_until=iso(run.dpia.valid_until),
            )
            if run.dpia is not None
            else None
        ),
        sites=site_facts,
        regions={name: tuple(sorted(region_countries(name))) for name in REGIONS_IN_CONTEXT},
        # The run's clients are its sites: the accountant's population.
        privacy=privacy_facts(
            run=run, policy=run.policy, history=history, population_size=len(site_facts)
        ),
    )
    return ctx, {site_id: sorted(names) for site_id, names in pseudonyms.items()}
