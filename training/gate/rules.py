"""The GDPR round gate, rule by rule: the whole gate on one screen.

Each rule is a small class with one method, ``evaluate(ctx) -> RuleResult``, over frozen
data and with no ORM. Deny by default: a fact that is missing fails its rule. Site rules
get a ``SiteCheck`` (the gate context plus one site); round rules get a ``RoundCheck``
(the context plus the sites that passed every site rule). The order below is the order
of evaluation and display.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from sites.choices import (
    ART9_CATEGORIES,
    CRIMINAL_CATEGORY,
    Art9Condition,
    Art10Basis,
    Art49Ground,
    LawfulBasis,
    PartyRole,
    SafeguardMechanism,
    SiteStatus,
)
from training.choices import DpiaStatus
from training.gate.context import (
    DatasetFacts,
    GateContext,
    PartyFacts,
    SafeguardFacts,
    SiteFacts,
)

PUBLISHED = "published"
_ART9_CONDITIONS = frozenset(v for v in Art9Condition.values if v)
_ART10_BASES = frozenset(v for v in Art10Basis.values if v)


@dataclass(frozen=True)
class RuleResult:
    rule_id: str
    article: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class SiteCheck:
    gate: GateContext
    site: SiteFacts


@dataclass(frozen=True)
class RoundCheck:
    gate: GateContext
    passing_sites: tuple[str, ...]


class SiteRule(Protocol):
    rule_id: str
    article: str

    def evaluate(self, ctx: SiteCheck) -> RuleResult: ...


class RoundRule(Protocol):
    rule_id: str
    article: str

    def evaluate(self, ctx: RoundCheck) -> RuleResult: ...


def dataset_records(ds: DatasetFacts) -> int:
    """Records a dataset may contribute: current consents, or its declared size."""
    if ds.withdrawn_at is not None or ds.all_subjects_withdrawn:
        return 0
    if ds.lawful_basis == LawfulBasis.CONSENT:
        return ds.consent_eligible
    return ds.record_count


def site_records(site: SiteFacts) -> int:
    return sum(dataset_records(ds) for ds in site.datasets)


class _Rule:
    rule_id = ""
    article = ""

    def result(self, ok: bool, reason: str) -> RuleResult:
        return RuleResult(rule_id=self.rule_id, article=self.article, ok=ok, reason=reason)


class _DatasetRule(_Rule):
    """A site passes when every one of its datasets in the run passes ``check``."""

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, str]:
        raise NotImplementedError

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        if not ctx.site.datasets:
            return self.result(False, "the site has no dataset in this run")
        verdicts = [(ds.name, *self.check(ctx, ds)) for ds in ctx.site.datasets]
        failed = [f"{name}: {why}" for name, ok, why in verdicts if not ok]
        if failed:
            return self.result(False, "; ".join(failed))
        return self.result(True, "; ".join(f"{name}: {why}" for name, _, why in verdicts))


class SiteActive(_Rule):
    rule_id, article = "site-active", "Art. 26/28"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        site, today = ctx.site, ctx.gate.today
        if site.status != SiteStatus.ACTIVE:
            return self.result(False, f"site is {site.status or 'of unknown status'}")
        if not site.agreement_document_hash:
            return self.result(False, "no signed Art. 26/28 agreement is recorded")
        start, end = site.agreement_valid_from, site.agreement_valid_until
        if start is None or end is None:
            return self.result(False, "the agreement's validity window is unknown")
        if today < start:
            return self.result(False, f"the agreement starts on {start}")
        if today > end:
            return self.result(False, f"the agreement expired on {end}")
        return self.result(True, f"active; agreement valid until {end}")


class LawfulBasisRule(_DatasetRule):
    rule_id, article = "lawful-basis", "Art. 6(1)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, str]:
        if ds.withdrawn_at is not None and ds.withdrawn_at <= ctx.gate.at:
            return False, f"withdrawn from federation at {ds.withdrawn_at}"
        if ds.all_subjects_withdrawn:
            return False, "withdrawn from federation: every subject withdrew consent (Art. 7(3))"
        if ds.lawful_basis not in LawfulBasis.values:
            return False, "no Art. 6(1) lawful basis recorded"
        return True, f"Art. {ds.lawful_basis}"


class SpecialCategory(_DatasetRule):
    """Art. 9(1) decides by the data's categories; the flag can add, never take away."""

    rule_id, article = "special-category", "Art. 9(2)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, str]:
        named = sorted(set(ds.data_categories) & ART9_CATEGORIES.keys())
        if not ds.special_category and not named:
            return True, "no special-category data"
        what = f"special-category data ({', '.join(named)})" if named else "special-category data"
        if ds.art9_condition in _ART9_CONDITIONS:
            return True, f"{what} under Art. {ds.art9_condition}"
        return False, f"{what} without a recorded Art. 9(2) condition"


class CriminalData(_DatasetRule):
    """Art. 10: only under official authority or when Union or Member State law authorises
    it, with the act or law recorded."""

    rule_id, article = "criminal-data", "Art. 10"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, str]:
        if CRIMINAL_CATEGORY not in ds.data_categories:
            return True, "no criminal-conviction data"
        if ds.art10_basis not in _ART10_BASES:
            return False, "criminal-conviction data without a recorded Art. 10 ground"
        if not ds.art10_reference.strip():
            return False, f"Art. 10 ground {ds.art10_basis} without its reference"
        return True, f"criminal-conviction data: {ds.art10_basis}, {ds.art10_reference}"


class PurposeLimitation(_DatasetRule):
    rule_id, article = "purpose-limitation", "Art. 5(1)(b)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, str]:
        purpose = ctx.gate.run.purpose
        if purpose and purpose in ds.purposes:
            return True, f"purpose {purpose} permitted"
        return False, f"purpose {purpose or '(none)'} is not among {list(ds.purposes)}"


class Retention(_DatasetRule):
    rule_id, article = "retention", "Art. 5(1)(e)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, str]:
        if ds.retention_until is None:
            return False, "no retention date recorded"
        if ds.retention_until < ctx.gate.today:
            return False, f"retention ended on {ds.retention_until}"
        return True, f"retained until {ds.retention_until}"


class ConsentRule(_DatasetRule):
    rule_id, article = "consent", "Art. 7"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, str]:
        if ds.lawful_basis != LawfulBasis.CONSENT:
            return True, f"not consent-based (Art. {ds.lawful_basis})"
        counts = f"{ds.consent_eligible} with current consent, {ds.consent_excluded} excluded"
        if ds.consent_eligible <= 0:
            return False, f"no subject with current consent ({counts})"
        return True, counts


class MinRecords(_Rule):
    rule_id, article = "min-records", "policy"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        records, needed = site_records(ctx.site), ctx.gate.policy.min_records_per_site
        # One count, two units: say which, so subjects are never called records.
        subjects = sum(
            dataset_records(ds)
            for ds in ctx.site.datasets
            if ds.lawful_basis == LawfulBasis.CONSENT
        )
        verdict = (
            f"{records} eligible ({subjects} subjects with valid consent, "
            f"{records - subjects} declared records under other bases); the policy needs {needed}"
        )
        return self.result(bool(ctx.site.datasets) and records >= needed, verdict)


class DpiaRule(_Rule):
    rule_id, article = "dpia", "Art. 35"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        if not ctx.gate.policy.requires_dpia:
            return self.result(True, "the policy does not require a DPIA")
        dpia = ctx.gate.dpia
        if dpia is None:
            return self.result(False, "no DPIA recorded for the run")
        if dpia.status != DpiaStatus.APPROVED:
            return self.result(False, f"DPIA {dpia.reference} is {dpia.status}, not approved")
        if dpia.valid_until is None or dpia.valid_until < ctx.gate.today:
            return self.result(False, f"DPIA {dpia.reference} expired on {dpia.valid_until}")
        return self.result(True, f"DPIA {dpia.reference} approved, valid until {dpia.valid_until}")


class Residency(_Rule):
    """Where the site's data and what is derived from it are processed: the site's compute,
    and the aggregator that receives its model updates and consent lists when those are
    personal data. Each place must lie in the policy's areas and in every dataset's
    processing countries (the controller's instruction, Art. 28(3)(a)). Who operates the
    aggregator is a transfer question (``Transfer``); where it runs is this one."""

    rule_id, article = "residency", "Art. 44 + policy"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        gate, site = ctx.gate, ctx.site
        if gate.policy.status != PUBLISHED:
            return self.result(False, f"policy v{gate.policy.version} is not published")
        if not site.datasets:
            return self.result(False, "the site has no dataset in this run")
        places = [("compute", site.compute_country)]
        consent_lists = any(ds.lawful_basis == LawfulBasis.CONSENT for ds in site.datasets)
        if gate.policy.model_updates_personal_data or consent_lists:
            places.append(("the aggregator", gate.run.aggregator_country))
        policy_areas = gate.expand(gate.policy.allowed_areas)
        for label, where in places:
            if not where:
                whose = "the site's compute" if label == "compute" else "the aggregator's"
                return self.result(False, f"{whose} country is unknown")
            if where not in policy_areas:
                areas = ", ".join(gate.policy.allowed_areas) or "nothing"
                return self.result(
                    False, f"{label} in {where} is outside the policy's areas ({areas})"
                )
            for ds in site.datasets:
                if where not in gate.expand(ds.processing_countries):
                    allowed = ", ".join(ds.processing_countries) or "nowhere"
                    return self.result(
                        False, f"{ds.name} may be processed in {allowed}, not in {where} ({label})"
                    )
        said = " and ".join(f"{label} in {where}" for label, where in places)
        return self.result(True, f"{said}, allowed by the policy and every dataset")


class Transfer(_Rule):
    """Chapter V, leg by leg, with the EDPB's three cumulative criteria (Guidelines 05/2021).

    Criterion 1 (exporter subject to the GDPR) is taken as met for every site: a site in
    this federation processes for an EEA controller, and assuming it is the stricter
    reading. Criterion 2: the importer is another organisation (a site's own servers are
    no transfer, only a residency question). Criterion 3: the importer is outside the EEA.
    A transfer then needs a ground: an adequacy decision in force whose scope covers the
    importer (Art. 45), else an Art. 46/47 safeguard or an explicit Art. 49 derogation
    recorded for that exporter and importer. Deny by default.
    """

    rule_id, article = "transfer", "Art. 44-49"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        verdicts = [leg_verdict(ctx.gate, ctx.site, leg) for leg in transfer_legs(ctx)]
        return self.result(all(ok for ok, _ in verdicts), "; ".join(text for _, text in verdicts))


@dataclass(frozen=True)
class TransferLeg:
    """One flow of a round: what goes from the site to which operator."""

    data: str
    recipient: str
    exporter: PartyFacts
    importer: PartyFacts | None
    personal: bool


def transfer_legs(ctx: SiteCheck) -> tuple[TransferLeg, ...]:
    """The site's data to its zone's operator; updates and consent lists to the aggregator's
    operator and to fedgov's host."""
    gate, site = ctx.gate, ctx.site
    exporter = PartyFacts(organisation=site.organisation, country=site.country, role=site.role)
    # Consent lists are pseudonymised subject lists, personal data under Recital 26 whatever
    # the controller thinks of model updates.
    consent_lists = any(ds.lawful_basis == LawfulBasis.CONSENT for ds in site.datasets)
    updates = gate.policy.model_updates_personal_data or consent_lists
    return (
        TransferLeg("site data", "the zone operator", exporter, site.zone_operator, True),
        TransferLeg(
            "model updates and consent lists",
            "the aggregator operator",
            exporter,
            gate.policy.aggregator_operator,
            updates,
        ),
        TransferLeg(
            "model updates and consent lists",
            "fedgov's host",
            exporter,
            gate.policy.host_operator,
            updates,
        ),
    )


def _as_controller_or_processor(role: str) -> str:
    # SCC modules distinguish controllers from processors; a joint controller is a
    # controller (Art. 26).
    return "processor" if role == PartyRole.PROCESSOR else "controller"


def _days_between(start: str, end: str) -> int:
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


def leg_verdict(gate: GateContext, site: SiteFacts, leg: TransferLeg) -> tuple[bool, str]:
    head = f"{leg.data} to {leg.recipient}"
    if not leg.personal:
        return True, (
            f"{head}: no personal data (the policy reads model updates as not personal "
            "data, and no dataset is consent-based)"
        )
    importer, exporter = leg.importer, leg.exporter
    if importer is None:
        return False, (
            f"{head}: who operates it is not recorded, so the Art. 44 criteria cannot be applied"
        )
    flow = (
        f"{exporter.organisation} ({exporter.country}) → "
        f"{importer.organisation} ({importer.country}, {importer.role})"
    )
    if importer.organisation == exporter.organisation:
        where = (
            f"; compute in {site.compute_country} is a residency question"
            if (leg.recipient == "the zone operator")
            else ""
        )
        return True, f"{head}: {flow}: not a transfer, same organisation{where}"
    if importer.country in gate.region("EEA"):
        return True, f"{head}: {flow}: not a transfer, the importer is in the EEA"
    today = gate.today
    ok, why = _adequacy(gate, importer)
    if ok:
        return True, f"{head}: {flow}: {why}"
    safeguard = next(
        (
            s
            for s in gate.policy.safeguards
            if s.exporter == site.slug and s.importer == importer.organisation
        ),
        None,
    )
    if safeguard is not None:
        ok, text = _safeguard(safeguard, exporter, importer, today)
        if ok:
            return True, f"{head}: {flow}: {text}"
        why = f"{why}; {text}"
    else:
        why = f"{why}; no Art. 46 safeguard or Art. 49 derogation is recorded"
    return False, f"{head}: {flow}: transfer to a third country without a ground: {why}"


def _adequacy(gate: GateContext, importer: PartyFacts) -> tuple[bool, str]:
    """Whether an adequacy decision in force covers this importer, and why (not)."""
    adequacy, today, country = gate.adequacy, gate.today, importer.country
    decision = adequacy.decision(country) if adequacy is not None else None
    if decision is None:
        return False, f"no adequacy decision for {country}"
    cite = f"{decision.reference} of {decision.adopted_on}"
    if today < decision.adopted_on:
        return False, f"{cite} was not yet adopted"
    if decision.expires_on is not None and today >= decision.expires_on:
        return False, f"{cite} ceased to apply on {decision.expires_on}"
    if decision.scope == "country":
        return True, f"adequacy decision {cite} (Art. 45)"
    scheme = decision.scope
    cert = next(
        (
            c
            for c in gate.policy.certifications
            if c.organisation == importer.organisation
            and c.country == country
            and c.scheme == scheme
        ),
        None,
    )
    label = "DPF listing" if scheme == "dpf" else "PIPEDA applicability"
    if cert is None:
        return False, (
            f"{cite} covers only qualifying recipients ({scheme}), and no {label} of "
            f"{importer.organisation} is recorded"
        )
    if cert.checked_on > today:
        return False, f"the {label} of {importer.organisation} is dated after the round"
    if scheme == "dpf":
        age, limit = _days_between(cert.checked_on, today), gate.policy.dpf_listing_max_age_days
        if age > limit:
            return False, (
                f"{cite} covers only certified recipients; the DPF listing of "
                f"{importer.organisation} was checked on {cert.checked_on}, {age} days ago, "
                f"more than the policy's {limit}"
            )
    return True, (
        f"adequacy decision {cite} (Art. 45) for {importer.organisation}: {label} "
        f"{cert.listing}, checked on {cert.checked_on}"
    )


def _safeguard(
    s: SafeguardFacts, exporter: PartyFacts, importer: PartyFacts, today: str
) -> tuple[bool, str]:
    if s.mechanism == SafeguardMechanism.SCC:
        roles = (
            _as_controller_or_processor(exporter.role),
            _as_controller_or_processor(importer.role),
        )
        module = SCC_MODULE_FOR_ROLES[roles]
        if s.scc_module != module:
            return False, (
                f"the SCCs recorded are module {s.scc_module}, but {roles[0]} to {roles[1]} "
                f"needs module {module} (Decision (EU) 2021/914)"
            )
        if not s.signed_on or s.signed_on > today:
            return False, f"the SCCs are signed on {s.signed_on or 'an unknown date'}"
        if not s.tia_reference:
            return False, "the SCCs have no transfer impact assessment recorded"
        return True, (
            f"SCC module {module} signed on {s.signed_on}, TIA {s.tia_reference} (Art. 46(2)(c))"
        )
    if s.mechanism == SafeguardMechanism.BCR:
        if not s.reference or not s.tia_reference:
            return False, "the BCR lacks its approval reference or transfer impact assessment"
        return True, f"BCR {s.reference}, TIA {s.tia_reference} (Art. 46(2)(b), 47)"
    if s.mechanism == SafeguardMechanism.DEROGATION:
        if s.ground not in Art49Ground.values or not s.reason.strip():
            return False, "the Art. 49 derogation lacks its ground or reason"
        return True, f"EXCEPTIONAL: Art. {s.ground} derogation: {s.reason.strip()}"
    return False, f"{s.mechanism!r} is not a transfer ground"


# Decision (EU) 2021/914: module 1 controller to controller, 2 controller to processor,
# 3 processor to processor, 4 processor to controller.
SCC_MODULE_FOR_ROLES = {
    ("controller", "controller"): 1,
    ("controller", "processor"): 2,
    ("processor", "processor"): 3,
    ("processor", "controller"): 4,
}


class PrivacyBudget(_Rule):
    """ε and δ from Flower's RDP accountant over the releases actually applied.

    A round passes only if the run's mechanism adds noise and the accountant says the
    round keeps cumulative ε within the policy's limit at its δ (``would_exceed``).
    A release without noise has no ε: it makes every later figure unbounded.
    """

    rule_id, article = "privacy-budget", "Art. 25/32"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        p = ctx.gate.privacy
        budget = ctx.gate.policy.privacy_budget_epsilon
        if p is None:
            if budget is None:
                return self.result(True, "the policy sets no privacy budget")
            return self.result(False, f"budget ε={budget:g} set but no accountant figures")
        if p.required_mechanism and p.mechanism != p.required_mechanism:
            return self.result(
                False, f"the policy requires {p.required_mechanism} DP; the run applies "
                f"{p.mechanism}",
            )  # fmt: skip
        if budget is None:
            return self.result(True, f"the policy sets no privacy budget (mechanism {p.mechanism})")
        if p.delta is None:
            return self.result(False, f"budget ε={budget:g} set without its δ")
        if p.mechanism == "none" or not p.noise_multiplier:
            return self.result(
                False, f"budget ε={budget:g} at δ={p.delta:g} set but the run applies no "
                "mechanism that adds noise: no ε can be claimed",
            )  # fmt: skip
        if p.unprotected_rounds:
            rounds = ", ".join(map(str, p.unprotected_rounds))
            return self.result(
                False, f"round(s) {rounds} released an aggregate without noise: ε is "
                f"unbounded against the budget ε={budget:g}",
            )  # fmt: skip
        if p.spent is None or p.after is None or p.would_exceed is None:
            return self.result(False, "the accountant gave no figures for this round")
        verdict = (
            f"spent ε={p.spent:.4g} + this round {p.after - p.spent:.4g} = {p.after:.4g} "
            f"of {p.limit:g} at δ={p.delta:g} ({p.accounting_method}, {p.relation}, "
            f"z={p.noise_multiplier:g})"
        )
        return self.result(not p.would_exceed, verdict)


class MinSites(_Rule):
    rule_id, article = "min-sites", "policy"

    def evaluate(self, ctx: RoundCheck) -> RuleResult:
        passing, needed = len(ctx.passing_sites), ctx.gate.policy.min_eligible_sites
        verdict = f"{passing} site(s) pass every rule; the policy needs {needed}"
        return self.result(passing >= needed, verdict)


SITE_RULES: tuple[SiteRule, ...] = (
    SiteActive(),
    LawfulBasisRule(),
    SpecialCategory(),
    CriminalData(),
    PurposeLimitation(),
    Retention(),
    ConsentRule(),
    MinRecords(),
    DpiaRule(),
    Residency(),
    Transfer(),
    PrivacyBudget(),
)
ROUND_RULES: tuple[RoundRule, ...] = (MinSites(),)

_ALL_RULES: tuple[SiteRule | RoundRule, ...] = (*SITE_RULES, *ROUND_RULES)
RULE_IDS: tuple[str, ...] = tuple(r.rule_id for r in _ALL_RULES)
ARTICLES: dict[str, str] = {r.rule_id: r.article for r in _ALL_RULES}
