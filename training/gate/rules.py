"""The GDPR round gate, rule by rule: the whole gate on one screen.

Each rule is a small class with one method, ``evaluate(ctx) -> RuleResult``, over frozen
data and with no ORM. Deny by default: a fact that is missing fails its rule. Site rules
get a ``SiteCheck`` (the gate context plus one site); round rules get a ``RoundCheck``
(the context plus the sites that passed every site rule). The order below is the order
of evaluation and display.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sites.choices import Art9Condition, LawfulBasis, SiteStatus, TransferMechanism
from training.choices import DpiaStatus
from training.gate.context import DatasetFacts, GateContext, SiteFacts

PUBLISHED = "published"
_ART9_CONDITIONS = frozenset(v for v in Art9Condition.values if v)
_ART46_MECHANISMS = frozenset({TransferMechanism.SCC.value, TransferMechanism.BCR.value})


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
    if ds.withdrawn_at is not None:
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
        if ds.lawful_basis not in LawfulBasis.values:
            return False, "no Art. 6(1) lawful basis recorded"
        return True, f"Art. {ds.lawful_basis}"


class SpecialCategory(_DatasetRule):
    rule_id, article = "special-category", "Art. 9(2)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, str]:
        if not ds.special_category:
            return True, "no special-category data"
        if ds.art9_condition in _ART9_CONDITIONS:
            return True, f"special category under Art. {ds.art9_condition}"
        return False, "special-category data without a recorded Art. 9(2) condition"


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
        verdict = f"{records} eligible records; the policy needs {needed}"
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
    rule_id, article = "residency", "Art. 44 + policy"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        gate, site = ctx.gate, ctx.site
        where = site.compute_country
        if gate.policy.status != PUBLISHED:
            return self.result(False, f"policy v{gate.policy.version} is not published")
        if not where:
            return self.result(False, "the site's compute country is unknown")
        policy_areas = gate.expand(gate.policy.allowed_areas)
        if where not in policy_areas:
            areas = ", ".join(gate.policy.allowed_areas) or "nothing"
            return self.result(False, f"compute in {where} is outside the policy's areas ({areas})")
        if not site.datasets:
            return self.result(False, "the site has no dataset in this run")
        for ds in site.datasets:
            if where not in gate.expand(ds.processing_countries):
                allowed = ", ".join(ds.processing_countries) or "nowhere"
                return self.result(
                    False, f"{ds.name} may be processed in {allowed}, not in {where}"
                )
        return self.result(True, f"compute in {where}, allowed by the policy and every dataset")


class Transfer(_Rule):
    rule_id, article = "transfer", "Art. 44-46"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        gate, site = ctx.gate, ctx.site
        source, target = site.compute_country, gate.run.aggregator_country
        if not source or not target:
            return self.result(False, "the compute or aggregator country is unknown")
        flow = f"{source} → {target}"
        eea = gate.region("EEA")
        if source in eea and target in eea:
            return self.result(True, f"{flow} stays within the EEA")
        if target in gate.region("ADEQUACY"):
            return self.result(True, f"{flow}: {target} has an adequacy decision (Art. 45)")
        mechanism = site.transfer_mechanism
        if mechanism in _ART46_MECHANISMS:
            return self.result(True, f"{flow} covered by {mechanism.upper()} (Art. 46/47)")
        outside = " and ".join(c for c in dict.fromkeys((source, target)) if c not in eea)
        return self.result(
            False,
            f"{flow}: {outside} outside the EEA, no adequacy decision covers {target}, "
            f"and no SCC or BCR is recorded for {site.slug}",
        )


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

RULE_IDS: tuple[str, ...] = tuple(r.rule_id for r in (*SITE_RULES, *ROUND_RULES))
ARTICLES: dict[str, str] = {r.rule_id: r.article for r in (*SITE_RULES, *ROUND_RULES)}
