"""The transfer rule (GDPR Chapter V, Art. 44-49) as a table, boundary instants included.

Each case cites what it checks: the EDPB's three cumulative criteria (Guidelines 05/2021),
the adequacy decisions' scopes (Art. 45; DPF decision C(2023) 4745 of 10 July 2023;
Canada 2002/2/EC), Art. 46(2)(b)/(c) and 47 safeguards, Art. 49 derogations. The round's
instant is 2026-06-15T12:00Z unless a case says otherwise.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.training.gate_facts import ORG, context, dataset, party, policy_facts, site
from training.gate import evaluate
from training.gate.context import CertificationFacts, SafeguardFacts
from training.gate.rules import SiteCheck, Transfer

US_CLOUD = party("Acme Cloud Inc.", "US", "processor")
IN_CLOUD = party("Bharat Compute Pvt Ltd", "IN", "processor")
CA_CLOUD = party("Maple Hosting Ltd", "CA", "processor")
EEA_PARTIES = {
    "aggregator_operator": party("Koordinierungsstelle GmbH", "DE", "controller"),
    "host_operator": party("Rechenzentrum Nord GmbH", "DE", "processor"),
}


def dpf(org="Acme Cloud Inc.", checked_on="2026-06-01", country="US"):
    return CertificationFacts(
        organisation=org, country=country, scheme="dpf", listing="DPF-0001", checked_on=checked_on
    )


def pipeda(org="Maple Hosting Ltd"):
    return CertificationFacts(
        organisation=org,
        country="CA",
        scheme="pipeda",
        listing="PIPEDA s. 4",
        checked_on="2026-05-01",
    )


def scc(module=2, signed_on="2026-01-10", tia="TIA-7", exporter="de-legal", importer=IN_CLOUD):
    return SafeguardFacts(
        exporter=exporter,
        importer=importer.organisation,
        mechanism="scc",
        scc_module=module,
        signed_on=signed_on,
        tia_reference=tia,
    )


def zone(operator, *, role="joint_controller", at=None, **policy):
    """A context whose only site runs on a zone operated by ``operator``."""
    changes = {"at": at} if at else {}
    return context(
        sites=[site(zone_operator=operator, role=role)],
        policy=policy_facts(**policy),
        **changes,
    )


# (what it checks, context, passes?, phrase the reason must contain)
CASES = [
    # Criterion 2: the same organisation is no transfer, even on servers abroad.
    (
        "EDPB 05/2021 crit. 2: own zone",
        zone(party(ORG, "DE", "joint_controller")),
        True,
        "not a transfer, same organisation",
    ),
    (
        "EDPB 05/2021 crit. 2: own servers in the US",
        context(sites=[site(compute_country="US")]),
        True,
        "compute in US is a residency question",
    ),
    # Criterion 3: an importer in the EEA (EU or EEA-EFTA) is no transfer.
    (
        "EDPB 05/2021 crit. 3: FR processor",
        zone(party("Nuage SAS", "FR", "processor")),
        True,
        "not a transfer, the importer is in the EEA",
    ),
    (
        "EDPB 05/2021 crit. 3: NO is in the EEA",
        zone(party("Fjord Drift AS", "NO", "processor")),
        True,
        "importer is in the EEA",
    ),
    # Art. 45, DPF: the US is adequate only for certified recipients.
    (
        "Art. 45 DPF: uncertified US recipient",
        zone(US_CLOUD),
        False,
        "no DPF listing of Acme Cloud Inc. is recorded",
    ),
    (
        "Art. 45 DPF: certified US recipient",
        zone(US_CLOUD, certifications=(dpf(),)),
        True,
        "DPF listing DPF-0001, checked on 2026-06-01",
    ),
    (
        "Art. 45 DPF: listing of another organisation",
        zone(US_CLOUD, certifications=(dpf(org="Acme Cloud LLC"),)),
        False,
        "no DPF listing",
    ),
    (
        "Art. 45 DPF: checked 90 days ago (max 90)",
        zone(US_CLOUD, certifications=(dpf(checked_on="2026-03-17"),)),
        True,
        "DPF listing",
    ),
    (
        "Art. 45 DPF: checked 91 days ago (max 90)",
        zone(US_CLOUD, certifications=(dpf(checked_on="2026-03-16"),)),
        False,
        "91 days ago, more than the policy's 90",
    ),
    (
        "Art. 45 DPF: check dated after the round",
        zone(US_CLOUD, certifications=(dpf(checked_on="2026-06-16"),)),
        False,
        "dated after the round",
    ),
    (
        "Art. 45 DPF: the day before adoption (2023-07-09)",
        zone(
            US_CLOUD,
            at="2023-07-09T23:59:59.999999Z",
            certifications=(dpf(checked_on="2023-07-01"),),
        ),
        False,
        "was not yet adopted",
    ),
    (
        "Art. 45 DPF: the day of adoption (2023-07-10)",
        zone(
            US_CLOUD,
            at="2023-07-10T00:00:00.000000Z",
            certifications=(dpf(checked_on="2023-07-01"),),
        ),
        True,
        "2023-07-10 (Art. 45)",
    ),
    # Art. 45, Canada: only organisations subject to PIPEDA.
    (
        "Art. 45 Canada: no PIPEDA fact",
        zone(CA_CLOUD),
        False,
        "no PIPEDA applicability of Maple Hosting Ltd",
    ),
    (
        "Art. 45 Canada: PIPEDA recorded",
        zone(CA_CLOUD, certifications=(pipeda(),)),
        True,
        "2002/2/EC",
    ),
    # Art. 45, whole-country decisions, and a decision with a sunset clause.
    (
        "Art. 45 CH",
        zone(party("Alpen Rechenzentrum AG", "CH", "processor")),
        True,
        "2000/518/EC of 2000-07-26 (Art. 45)",
    ),
    (
        "Art. 45 GB: the day before the sunset",
        zone(party("Thames Compute Ltd", "GB", "processor"), at="2025-12-26T23:59:59.999999Z"),
        True,
        "(EU) 2021/1772",
    ),
    (
        "Art. 45 GB: on the sunset day",
        zone(party("Thames Compute Ltd", "GB", "processor"), at="2025-12-27T00:00:00.000000Z"),
        False,
        "ceased to apply on 2025-12-27",
    ),
    # Art. 46(2)(c): SCCs of the right module, signed by the round, with a TIA.
    (
        "Art. 44: nothing recorded",
        zone(IN_CLOUD),
        False,
        "no adequacy decision for IN; no Art. 46 safeguard or Art. 49 derogation is recorded",
    ),
    (
        "Art. 46(2)(c) SCC module 2",
        zone(IN_CLOUD, safeguards=(scc(),)),
        True,
        "SCC module 2 signed on 2026-01-10, TIA TIA-7",
    ),
    (
        "Art. 46(2)(c) wrong module",
        zone(IN_CLOUD, safeguards=(scc(module=1),)),
        False,
        "needs module 2",
    ),
    (
        "Art. 46(2)(c) processor site needs module 3",
        zone(IN_CLOUD, role="processor", safeguards=(scc(module=3),)),
        True,
        "SCC module 3",
    ),
    (
        "Art. 46(2)(c) signed on the round's day",
        zone(IN_CLOUD, safeguards=(scc(signed_on="2026-06-15"),)),
        True,
        "signed on 2026-06-15",
    ),
    (
        "Art. 46(2)(c) signed the day after",
        zone(IN_CLOUD, safeguards=(scc(signed_on="2026-06-16"),)),
        False,
        "signed on 2026-06-16",
    ),
    (
        "Recs 01/2020: SCC without TIA",
        zone(IN_CLOUD, safeguards=(scc(tia=""),)),
        False,
        "no transfer impact assessment",
    ),
    (
        "Art. 46: SCC of another exporter",
        zone(IN_CLOUD, safeguards=(scc(exporter="es-blogs"),)),
        False,
        "no Art. 46 safeguard",
    ),
    (
        "Art. 46(2)(b), 47 BCR",
        zone(
            IN_CLOUD,
            safeguards=(
                SafeguardFacts(
                    "de-legal",
                    IN_CLOUD.organisation,
                    "bcr",
                    reference="BCR-P-12",
                    tia_reference="TIA-8",
                ),
            ),
        ),
        True,
        "BCR BCR-P-12, TIA TIA-8",
    ),
    (
        "Art. 49(1)(a) explicit derogation",
        zone(
            IN_CLOUD,
            safeguards=(
                SafeguardFacts(
                    "de-legal",
                    IN_CLOUD.organisation,
                    "derogation",
                    ground="49(1)(a)",
                    reason="one-off study",
                ),
            ),
        ),
        True,
        "EXCEPTIONAL: Art. 49(1)(a) derogation: one-off study",
    ),
    (
        "Art. 49 without a reason",
        zone(
            IN_CLOUD,
            safeguards=(
                SafeguardFacts(
                    "de-legal", IN_CLOUD.organisation, "derogation", ground="49(1)(a)", reason=" "
                ),
            ),
        ),
        False,
        "lacks its ground or reason",
    ),
    # Every operator must be known, or the criteria cannot be applied.
    ("Art. 44: zone operator unknown", zone(None), False, "zone operator: who operates it"),
    (
        "Art. 44: aggregator operator unknown",
        zone(party(ORG, "DE", "joint_controller"), aggregator_operator=None),
        False,
        "aggregator operator: who operates it is not recorded",
    ),
    (
        "Art. 44: fedgov's host unknown",
        zone(party(ORG, "DE", "joint_controller"), host_operator=None),
        False,
        "fedgov's host: who operates it is not recorded",
    ),
    # Updates to an uncertified US aggregator: a transfer while updates are personal data.
    (
        "Art. 45 DPF: US aggregator, updates personal",
        zone(party(ORG, "DE", "joint_controller"), aggregator_operator=US_CLOUD),
        False,
        "model updates and consent lists to the aggregator operator: "
        "Rechtsdokumentation Leipzig e.V. (DE) → Acme Cloud Inc. (US, processor): transfer",
    ),
    # The adequacy list must be in the context to be relied on.
    (
        "Art. 45: no adequacy list read",
        context(
            sites=[site(zone_operator=party("Alpen Rechenzentrum AG", "CH", "processor"))],
            adequacy=None,
        ),
        False,
        "no adequacy decision for CH",
    ),
]


@pytest.mark.parametrize(("what", "ctx", "ok", "phrase"), CASES, ids=[c[0] for c in CASES])
def test_transfer_rule(what, ctx, ok, phrase):
    result = Transfer().evaluate(SiteCheck(gate=ctx, site=ctx.sites[0]))
    assert (result.rule_id, result.article) == ("transfer", "Art. 44-49")
    assert result.ok is ok, result.reason
    assert phrase in result.reason


def test_transfer_to_an_uncertified_us_recipient_is_denied_although_us_is_on_the_list():
    """The key case: the US has an adequacy decision, but only for DPF-listed recipients."""
    ctx = zone(US_CLOUD)
    assert ctx.adequacy.decision("US").scope == "dpf"
    verdict = evaluate(ctx)
    assert verdict.sites[0].failed_rules == ("transfer",)
    assert verdict.outcome == "blocked"
    reason = verdict.sites[0].results[-2].reason
    assert "Rechtsdokumentation Leipzig e.V. (DE) → Acme Cloud Inc. (US, processor)" in reason
    assert "C(2023) 4745" in reason


def test_non_personal_updates_need_no_ground_unless_consent_lists_travel():
    """The controller's reading of model updates decides; consent lists are personal data
    whatever it is (pseudonymised data, Recital 26)."""
    base = dict(aggregator_operator=US_CLOUD, model_updates_personal_data=False)
    consent_site = site()
    public_task_site = site(datasets=[dataset(lawful_basis="6(1)(e)", record_count=100)])
    for s, ok in ((consent_site, False), (public_task_site, True)):
        ctx = context(sites=[s], policy=policy_facts(**base))
        result = Transfer().evaluate(SiteCheck(gate=ctx, site=s))
        assert result.ok is ok, result.reason
    ctx = context(sites=[public_task_site], policy=policy_facts(**base))
    assert (
        "no personal data" in Transfer().evaluate(SiteCheck(gate=ctx, site=public_task_site)).reason
    )


def test_each_leg_is_reported_with_its_direction():
    ctx = zone(IN_CLOUD, safeguards=(scc(),))
    reason = Transfer().evaluate(SiteCheck(gate=ctx, site=ctx.sites[0])).reason
    legs = reason.split("; ")
    assert legs[0].startswith(
        "site data to the zone operator: Rechtsdokumentation Leipzig e.V. (DE)"
    )
    assert legs[1].startswith("model updates and consent lists to the aggregator operator")
    assert legs[2].startswith("model updates and consent lists to fedgov's host")
    assert "→ Rechenzentrum Nord GmbH (DE, processor)" in legs[2]


def test_a_scoped_decision_needs_the_fact_for_the_same_country():
    """A DPF listing recorded under another country does not qualify a US recipient."""
    ctx = zone(US_CLOUD, certifications=(dpf(country="CA"),))
    assert not Transfer().evaluate(SiteCheck(gate=ctx, site=ctx.sites[0])).ok


def test_eea_parties_default_to_no_transfer():
    ctx = context(policy=replace(policy_facts(), **EEA_PARTIES))
    assert Transfer().evaluate(SiteCheck(gate=ctx, site=ctx.sites[0])).ok


KR_CLOUD = party("Hanguk Compute Co.", "KR", "processor")


@pytest.mark.parametrize(
    ("at", "overdue"),
    [
        # Korea's decision, review_due 2025-12-17 in the shipped list. The review is due on
        # that day, so it is overdue only from the next day on.
        ("2025-12-17T00:00:00.000000Z", False),
        ("2025-12-17T23:59:59.999999Z", False),
        ("2025-12-18T00:00:00.000000Z", True),
        ("2026-06-15T12:00:00.000000Z", True),
    ],
)
def test_a_past_review_date_is_a_finding_not_a_refusal(at, overdue):
    """Art. 45(3): the Commission reviews an adequacy decision periodically; a review date
    that has passed ends nothing, since only a repealing, amending or suspending act does
    (Art. 45(5)). The transfer stays grounded and the reason tells the DPO."""
    ctx = zone(KR_CLOUD, at=at)
    assert ctx.adequacy.decision("KR").review_due == "2025-12-17"
    result = Transfer().evaluate(SiteCheck(gate=ctx, site=ctx.sites[0]))
    assert result.ok, result.reason
    assert "adequacy decision Commission Implementing Decision (EU) 2022/254" in result.reason
    said = "its periodic review was due on 2025-12-17 and is overdue (Art. 45(3))"
    assert (said in result.reason) is overdue
    (leg, *_) = result.params["items"]
    assert (leg["params"]["ground"]["code"] == "adequacy.review_overdue") is overdue
