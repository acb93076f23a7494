"""Builds the gate's frozen context from the database with a fixed number of queries.

The count does not grow with the federation: the whole gate, its own writes included,
issues at most 23 statements besides the ledger's (tests/training/test_gate_service.py).
Among the reads: the run (with purpose, policy and DPIA), its dataset ids, the datasets
with their sites, their purposes, the per-dataset consent states (counts, excluded
pseudonyms and allow-list text: from the cache, or else one aggregate and one upsert),
the count of earlier rounds past the gate, the earlier rounds' privacy releases
(``selectors.privacy_history``) for the accountant, and the adequacy list in force.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from itertools import chain, pairwise

from sites import selectors as site_selectors
from sites.adequacy import AdequacyList, current_adequacy
from sites.choices import LawfulBasis
from sites.regions import region_countries
from sites.services.consent import consent_states_current
from training import selectors
from training.gate.context import (
    REGIONS_IN_CONTEXT,
    AdequacyDecisionFacts,
    AdequacyFacts,
    CertificationFacts,
    DatasetFacts,
    DpiaFacts,
    GateContext,
    PartyFacts,
    PolicyFacts,
    RunFacts,
    SafeguardFacts,
    SiteFacts,
    exclusion_digest,
    instant,
    iso,
    sorted_digest,
)
from training.gate.privacy import privacy_facts


def build_context(
    *, run_id: int, round_no: int, at: datetime
) -> tuple[GateContext, dict[int, list[str]]]:
    """The context for ``round_no`` at instant ``at``, and per site its excluded
    pseudonyms (sorted). The allow-lists enter the context as digest and count only.

    Raises ``TrainingRun.DoesNotExist``.
    """
    run = selectors.run_for_gate(run_id=run_id)
    dataset_ids = selectors.run_dataset_ids(run_id=run_id)
    datasets, sites = site_selectors.datasets_with_sites(dataset_ids=dataset_ids)
    # From the cache of per-dataset states where it holds at ``at``; always equal to
    # ``site_selectors.consent_states`` (tests/sites/test_consent_state_cache.py).
    consents = consent_states_current(dataset_ids=dataset_ids, purpose_id=run.purpose_id, at=at)
    spent_rounds = selectors.rounds_past_gate(run_id=run_id, before_round=round_no)
    history = selectors.privacy_history(run_id=run_id, before_round=round_no)

    by_site: dict[int, list[DatasetFacts]] = defaultdict(list)
    pseudonyms: dict[int, set[str]] = defaultdict(set)
    # Per site, the per-dataset allowed lists (each sorted and newline-joined in SQL).
    allowed_runs: dict[int, list[str]] = defaultdict(list)
    allowed_sizes: dict[int, list[int]] = defaultdict(list)
    consent_sites: set[int] = set()
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
                data_categories=ds.data_categories,
                art10_basis=ds.art10_basis,
                art10_reference=ds.art10_reference,
                all_subjects_withdrawn=(
                    ds.lawful_basis == LawfulBasis.CONSENT and consent.all_withdrawn
                ),
            )
        )
        pseudonyms[ds.site_id].update(consent.excluded)
        withdrawn = ds.withdrawn_at is not None or consent.all_withdrawn
        if ds.lawful_basis == LawfulBasis.CONSENT and not withdrawn:
            consent_sites.add(ds.site_id)
            allowed_runs[ds.site_id].append(consent.allowed_text)
            allowed_sizes[ds.site_id].append(consent.eligible)

    allowed = {
        site_id: allow_list_digest(runs, sizes=allowed_sizes[site_id])
        for site_id, runs in allowed_runs.items()
    }
    site_facts = tuple(
        SiteFacts(
            id=site.id,
            slug=site.slug,
            organisation=site.organisation,
            country=site.country,
            role=site.agreement_type,
            compute_country=site.compute_country,
            zone_operator=(
                PartyFacts(
                    organisation=site.zone_operator,
                    country=site.zone_operator_country,
                    role=site.zone_operator_role,
                )
                if site.zone_operator
                else None
            ),
            status=site.status,
            agreement_document_hash=site.agreement_document_hash,
            agreement_valid_from=iso(site.agreement_valid_from),
            agreement_valid_until=iso(site.agreement_valid_until),
            exclusion_digest=exclusion_digest(sorted(pseudonyms[site.id])),
            datasets=tuple(by_site[site.id]),
            allowed_count=allowed[site.id][1] if site.id in consent_sites else 0,
            allowed_digest=allowed[site.id][0] if site.id in consent_sites else "",
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
            model_updates_personal_data=policy.model_updates_personal_data,
            aggregator_operator=_party(policy.aggregator_operator),
            host_operator=_party(policy.host_operator),
            safeguards=tuple(
                SafeguardFacts(**entry)
                for entry in sorted(
                    policy.transfer_safeguards, key=lambda e: (e["exporter"], e["importer"])
                )
            ),
            certifications=tuple(
                CertificationFacts(**entry) for entry in policy.recipient_certifications
            ),
            dpf_listing_max_age_days=policy.dpf_listing_max_age_days,
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
        adequacy=adequacy_facts(current_adequacy()),
        regions={name: tuple(sorted(region_countries(name))) for name in REGIONS_IN_CONTEXT},
        # The run's clients are its sites: the accountant's population.
        privacy=privacy_facts(
            run=run, policy=run.policy, history=history, population_size=len(site_facts)
        ),
    )
    return ctx, {site_id: sorted(names) for site_id, names in pseudonyms.items()}


def allow_list_digest(parts: list[str], *, sizes: list[int] | None = None) -> tuple[str, int]:
    """``sorted_digest`` and size of the union of per-dataset allow-lists, each given as
    its pseudonyms sorted by code point and joined by newlines (``consent_states``).

    When the lists' ranges do not overlap (the usual case: a dataset's subjects are its
    own), their union is their concatenation in order of first pseudonym, already sorted
    and distinct, so it is hashed as text without splitting it into a million strings.
    Overlapping lists are split, merged and de-duplicated. ``sizes``, when given, are the
    parts' line counts (each dataset's eligible count), so disjoint parts are not rescanned.
    """
    parts = [part for part in parts if part]
    if not parts:
        return sorted_digest([]), 0
    bounds = sorted(
        (part[: part.find("\n")] if "\n" in part else part, part[part.rfind("\n") + 1 :], part)
        for part in parts
    )
    disjoint = all(prev[1] < nxt[0] for prev, nxt in pairwise(bounds))
    if not disjoint:
        names = sorted(set(chain.from_iterable(part.split("\n") for part in parts)))
        return sorted_digest(names), len(names)
    digest = hashlib.sha256()
    for i, (_, _, part) in enumerate(bounds):
        if i:
            digest.update(b"\n")
        digest.update(part.encode("utf-8"))
    if sizes is not None:
        return digest.hexdigest(), sum(sizes)
    return digest.hexdigest(), sum(part.count("\n") + 1 for part in parts)


def _party(data: dict[str, str]) -> PartyFacts | None:
    if not data:
        return None
    return PartyFacts(organisation=data["organisation"], country=data["country"], role=data["role"])


def adequacy_facts(adequacy: AdequacyList) -> AdequacyFacts:
    return AdequacyFacts(
        version=adequacy.version,
        sha256=adequacy.sha256,
        decisions=tuple(
            AdequacyDecisionFacts(
                country=d.country,
                reference=d.reference,
                adopted_on=d.adopted_on,
                scope=d.scope,
                review_due=d.review_due,
                expires_on=d.expires_on,
            )
            for d in adequacy.decisions
        ),
    )
