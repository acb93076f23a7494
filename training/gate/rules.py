"""The GDPR round gate, rule by rule: the whole gate on one screen.

Each rule is a small class with one method, ``evaluate(ctx) -> RuleResult``, over frozen
data and with no ORM. Deny by default: a fact that is missing fails its rule. Site rules
get a ``SiteCheck`` (the gate context plus one site); round rules get a ``RoundCheck``
(the context plus the sites that passed every site rule). The order below is the order
of evaluation and display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

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
    AdequacyDecisionFacts,
    DatasetFacts,
    GateContext,
    PartyFacts,
    SafeguardFacts,
    SiteFacts,
)
from training.gate.messages import TEMPLATES, Message, english, msg, render

PUBLISHED = "published"
_ART9_CONDITIONS = frozenset(v for v in Art9Condition.values if v)
_ART10_BASES = frozenset(v for v in Art10Basis.values if v)
# ``Choices.values`` builds a new list on every read; the rules ask once per dataset.
_LAWFUL_BASES = frozenset(LawfulBasis.values)
_ART49_GROUNDS = frozenset(Art49Ground.values)


@dataclass(frozen=True)
class RuleResult:
    rule_id: str
    article: str
    ok: bool
    reason: str
    # The reason as data (training.gate.messages): ``reason`` is its English rendering.
    code: str = ""
    params: dict[str, Any] = field(default_factory=dict)


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


def site_subjects_and_records(site: SiteFacts) -> tuple[int, int]:
    """What ``site_records`` adds up, kept apart: (subjects with valid consent in the
    site's consent-based datasets, records declared for its datasets under other bases).
    A consent is one person, a declared record one row: outputs name each for what it is
    and never show their sum as either (issue 12, "one truth in every output")."""
    subjects = records = 0
    for ds in site.datasets:
        if ds.lawful_basis == LawfulBasis.CONSENT:
            subjects += dataset_records(ds)
        else:
            records += dataset_records(ds)
    return subjects, records


class _Rule:
    rule_id = ""
    article = ""

    def result(self, ok: bool, why: Message) -> RuleResult:
        # Inside the engine's memo equal reasons come back as one shared message, which
        # round_gate then stores once (training.services.gate._insert_results).
        text, why = english(why)
        return RuleResult(
            rule_id=self.rule_id,
            article=self.article,
            ok=ok,
            reason=text,
            code=why["code"],
            params=why["params"],
        )


class _DatasetRule(_Rule):
    """A site passes when every one of its datasets in the run passes ``check``."""

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, Message]:
        raise NotImplementedError

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        if not ctx.site.datasets:
            return self.result(False, msg("site.no_dataset"))
        verdicts = [(ds.name, *self.check(ctx, ds)) for ds in ctx.site.datasets]
        failed = [(name, ok, why) for name, ok, why in verdicts if not ok]
        items = [
            msg("dataset.verdict", dataset=name, why=why) for name, _, why in failed or verdicts
        ]
        return self.result(not failed, msg("datasets", items=items))


class SiteActive(_Rule):
    rule_id, article = "site-active", "Art. 26/28"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        site, today = ctx.site, ctx.gate.today
        if site.status != SiteStatus.ACTIVE:
            if not site.status:
                return self.result(False, msg("site_active.status_unknown"))
            return self.result(False, msg("site_active.status", status=site.status))
        if not site.agreement_document_hash:
            return self.result(False, msg("site_active.no_agreement"))
        start, end = site.agreement_valid_from, site.agreement_valid_until
        if start is None or end is None:
            return self.result(False, msg("site_active.window_unknown"))
        if today < start:
            return self.result(False, msg("site_active.not_started", date=start))
        if today > end:
            return self.result(False, msg("site_active.expired", date=end))
        return self.result(True, msg("site_active.ok", date=end))


class LawfulBasisRule(_DatasetRule):
    rule_id, article = "lawful-basis", "Art. 6(1)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, Message]:
        if ds.withdrawn_at is not None and ds.withdrawn_at <= ctx.gate.at:
            return False, msg("lawful_basis.withdrawn", at=ds.withdrawn_at)
        if ds.all_subjects_withdrawn:
            return False, msg("lawful_basis.all_withdrawn")
        if ds.lawful_basis not in _LAWFUL_BASES:
            return False, msg("lawful_basis.missing")
        return True, msg("lawful_basis.ok", basis=ds.lawful_basis)


class SpecialCategory(_DatasetRule):
    """Art. 9(1) decides by the data's categories; the flag can add, never take away."""

    rule_id, article = "special-category", "Art. 9(2)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, Message]:
        named = sorted(set(ds.data_categories) & ART9_CATEGORIES.keys())
        if not ds.special_category and not named:
            return True, msg("special.none")
        what = (
            msg("special.data_named", categories=", ".join(named)) if named else msg("special.data")
        )
        if ds.art9_condition in _ART9_CONDITIONS:
            return True, msg("special.ok", what=what, condition=ds.art9_condition)
        return False, msg("special.no_condition", what=what)


class CriminalData(_DatasetRule):
    """Art. 10: only under official authority or when Union or Member State law authorises
    it, with the act or law recorded."""

    rule_id, article = "criminal-data", "Art. 10"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, Message]:
        if CRIMINAL_CATEGORY not in ds.data_categories:
            return True, msg("criminal.none")
        if ds.art10_basis not in _ART10_BASES:
            return False, msg("criminal.no_ground")
        if not ds.art10_reference.strip():
            return False, msg("criminal.no_reference", basis=ds.art10_basis)
        return True, msg("criminal.ok", basis=ds.art10_basis, reference=ds.art10_reference)


class PurposeLimitation(_DatasetRule):
    rule_id, article = "purpose-limitation", "Art. 5(1)(b)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, Message]:
        purpose = ctx.gate.run.purpose
        if purpose and purpose in ds.purposes:
            return True, msg("purpose.ok", purpose=purpose)
        if not purpose:
            return False, msg("purpose.none", purposes=list(ds.purposes))
        return False, msg("purpose.not_permitted", purpose=purpose, purposes=list(ds.purposes))


class Retention(_DatasetRule):
    rule_id, article = "retention", "Art. 5(1)(e)"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, Message]:
        if ds.retention_until is None:
            return False, msg("retention.unknown")
        if ds.retention_until < ctx.gate.today:
            return False, msg("retention.ended", date=ds.retention_until)
        return True, msg("retention.ok", date=ds.retention_until)


class ConsentRule(_DatasetRule):
    rule_id, article = "consent", "Art. 7"

    def check(self, ctx: SiteCheck, ds: DatasetFacts) -> tuple[bool, Message]:
        if ds.lawful_basis != LawfulBasis.CONSENT:
            return True, msg("consent.not_consent", basis=ds.lawful_basis)
        counts = {"eligible": ds.consent_eligible, "excluded": ds.consent_excluded}
        if ds.consent_eligible <= 0:
            return False, msg("consent.none", **counts)
        return True, msg("consent.ok", **counts)


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
        verdict = msg(
            "min_records",
            records=records,
            subjects=subjects,
            other=records - subjects,
            needed=needed,
        )
        return self.result(bool(ctx.site.datasets) and records >= needed, verdict)


class DpiaRule(_Rule):
    rule_id, article = "dpia", "Art. 35"

    def evaluate(self, ctx: SiteCheck) -> RuleResult:
        if not ctx.gate.policy.requires_dpia:
            return self.result(True, msg("dpia.not_required"))
        dpia = ctx.gate.dpia
        if dpia is None:
            return self.result(False, msg("dpia.missing"))
        ref = dpia.reference
        if dpia.status != DpiaStatus.APPROVED:
            return self.result(False, msg("dpia.not_approved", reference=ref, status=dpia.status))
        if dpia.valid_until is None or dpia.valid_until < ctx.gate.today:
            return self.result(False, msg("dpia.expired", reference=ref, date=dpia.valid_until))
        return self.result(True, msg("dpia.ok", reference=ref, date=dpia.valid_until))


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
            return self.result(
                False, msg("residency.policy_unpublished", version=gate.policy.version)
            )
        if not site.datasets:
            return self.result(False, msg("site.no_dataset"))
        places = [("compute", site.compute_country)]
        consent_lists = any(ds.lawful_basis == LawfulBasis.CONSENT for ds in site.datasets)
        if gate.policy.model_updates_personal_data or consent_lists:
            places.append(("aggregator", gate.run.aggregator_country))
        policy_areas = gate.expand(gate.policy.allowed_areas)
        for label, where in places:
            place = msg(f"residency.place.{label}")
            if not where:
                return self.result(False, msg(f"residency.{label}_unknown"))
            if where not in policy_areas:
                areas = ", ".join(gate.policy.allowed_areas) or msg("word.nothing")
                return self.result(
                    False,
                    msg("residency.outside_policy", place=place, country=where, areas=areas),
                )
            for ds in site.datasets:
                if where not in gate.expand(ds.processing_countries):
                    allowed = ", ".join(ds.processing_countries) or msg("word.nowhere")
                    return self.result(
                        False,
                        msg(
                            "residency.outside_dataset",
                            dataset=ds.name,
                            allowed=allowed,
                            country=where,
                            place=place,
                        ),
                    )
        (first, there), *more = places
        said = {"place": msg(f"residency.place.{first}"), "country": there}
        if more:
            said |= {"place2": msg(f"residency.place.{more[0][0]}"), "country2": more[0][1]}
        return self.result(True, msg("residency.ok_two" if more else "residency.ok", **said))


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
        verdicts = [leg_message(ctx.gate, ctx.site, leg) for leg in transfer_legs(ctx)]
        return self.result(
            all(ok for ok, _ in verdicts), msg("transfer.legs", items=[m for _, m in verdicts])
        )


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


_LEG_HEADS = {
    ("site data", "the zone operator"): "transfer.head.zone",
    ("model updates and consent lists", "the aggregator operator"): "transfer.head.aggregator",
    ("model updates and consent lists", "fedgov's host"): "transfer.head.host",
}


def leg_verdict(gate: GateContext, site: SiteFacts, leg: TransferLeg) -> tuple[bool, str]:
    ok, why = leg_message(gate, site, leg)
    return ok, render(why)


def leg_message(gate: GateContext, site: SiteFacts, leg: TransferLeg) -> tuple[bool, Message]:
    head = msg(_LEG_HEADS[(leg.data, leg.recipient)])
    if not leg.personal:
        return True, msg("transfer.not_personal", head=head)
    importer, exporter = leg.importer, leg.exporter
    if importer is None:
        return False, msg("transfer.importer_unknown", head=head)
    role_code = f"party_role.{importer.role}"
    flow = msg(
        "transfer.flow",
        exporter=exporter.organisation,
        exporter_country=exporter.country,
        importer=importer.organisation,
        importer_country=importer.country,
        role=msg(role_code) if role_code in TEMPLATES else importer.role,
    )
    if importer.organisation == exporter.organisation:
        if leg.recipient == "the zone operator":
            return True, msg(
                "transfer.same_organisation_zone",
                head=head,
                flow=flow,
                country=site.compute_country,
            )
        return True, msg("transfer.same_organisation", head=head, flow=flow)
    if importer.country in gate.region("EEA"):
        return True, msg("transfer.importer_in_eea", head=head, flow=flow)
    today = gate.today
    ok, why = _adequacy(gate, importer)
    if ok:
        return True, msg("transfer.grounded", head=head, flow=flow, ground=why)
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
            return True, msg("transfer.grounded", head=head, flow=flow, ground=text)
        whys = [why, text]
    else:
        whys = [why, msg("safeguard.none")]
    return False, msg("transfer.no_ground", head=head, flow=flow, why=whys)


def _adequacy(gate: GateContext, importer: PartyFacts) -> tuple[bool, Message]:
    """Whether an adequacy decision in force covers this importer, and why (not).

    A decision whose periodic review date has passed (the day after ``review_due``) still
    grounds the transfer: Art. 45(3) asks the Commission to review, and only a repealing,
    amending or suspending act ends a decision (Art. 45(5)). The reason says the review is
    overdue, so the DPO sees it in the decision, the admin and the report.
    """
    # Looked up once here and handed down: the ground and the review date read one decision.
    decision = gate.adequacy.decision(importer.country) if gate.adequacy is not None else None
    ok, why = _adequacy_ground(gate, importer, decision)
    if ok and decision is not None and decision.review_due and gate.today > decision.review_due:
        return True, msg("adequacy.review_overdue", ground=why, date=decision.review_due)
    return ok, why


def _adequacy_ground(
    gate: GateContext, importer: PartyFacts, decision: AdequacyDecisionFacts | None
) -> tuple[bool, Message]:
    """Whether ``decision``, the adequacy decision listed for the importer's country (or
    none), grounds the transfer to ``importer`` at the round's date, and why (not)."""
    today, country = gate.today, importer.country
    if decision is None:
        return False, msg("adequacy.none", country=country)
    cite = msg("adequacy.cite", reference=decision.reference, adopted_on=decision.adopted_on)
    if today < decision.adopted_on:
        return False, msg("adequacy.not_adopted", cite=cite)
    if decision.expires_on is not None and today >= decision.expires_on:
        return False, msg("adequacy.ceased", cite=cite, date=decision.expires_on)
    if decision.scope == "country":
        return True, msg("adequacy.country", cite=cite)
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
    label = msg("adequacy.label.dpf" if scheme == "dpf" else "adequacy.label.pipeda")
    org = importer.organisation
    if cert is None:
        return False, msg(
            "adequacy.no_certification", cite=cite, scheme=scheme, label=label, organisation=org
        )
    if cert.checked_on > today:
        return False, msg("adequacy.certification_after_round", label=label, organisation=org)
    if scheme == "dpf":
        age, limit = _days_between(cert.checked_on, today), gate.policy.dpf_listing_max_age_days
        if age > limit:
            return False, msg(
                "adequacy.dpf_stale",
                cite=cite,
                organisation=org,
                checked_on=cert.checked_on,
                age=age,
                limit=limit,
            )
    return True, msg(
        "adequacy.certified",
        cite=cite,
        organisation=org,
        label=label,
        listing=cert.listing,
        checked_on=cert.checked_on,
    )


def _safeguard(
    s: SafeguardFacts, exporter: PartyFacts, importer: PartyFacts, today: str
) -> tuple[bool, Message]:
    if s.mechanism == SafeguardMechanism.SCC:
        roles = (
            _as_controller_or_processor(exporter.role),
            _as_controller_or_processor(importer.role),
        )
        module = SCC_MODULE_FOR_ROLES[roles]
        if s.scc_module != module:
            return False, msg(
                "scc.wrong_module",
                recorded=s.scc_module,
                exporter_role=msg(f"role.{roles[0]}"),
                importer_role=msg(f"role.{roles[1]}"),
                module=module,
            )
        if not s.signed_on or s.signed_on > today:
            return False, msg("scc.not_signed", date=s.signed_on or msg("word.unknown_date"))
        if not s.tia_reference:
            return False, msg("scc.no_tia")
        return True, msg("scc.ok", module=module, date=s.signed_on, tia=s.tia_reference)
    if s.mechanism == SafeguardMechanism.BCR:
        if not s.reference or not s.tia_reference:
            return False, msg("bcr.incomplete")
        return True, msg("bcr.ok", reference=s.reference, tia=s.tia_reference)
    if s.mechanism == SafeguardMechanism.DEROGATION:
        if s.ground not in _ART49_GROUNDS or not s.reason.strip():
            return False, msg("derogation.incomplete")
        return True, msg("derogation.ok", ground=s.ground, reason=s.reason.strip())
    return False, msg("safeguard.unknown", mechanism=repr(s.mechanism))


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
                return self.result(True, msg("privacy.no_budget"))
            return self.result(False, msg("privacy.no_figures", budget=budget))
        if p.required_mechanism and p.mechanism != p.required_mechanism:
            return self.result(
                False,
                msg(
                    "privacy.wrong_mechanism",
                    required=p.required_mechanism,
                    mechanism=p.mechanism,
                ),
            )
        if budget is None:
            return self.result(True, msg("privacy.no_budget_mechanism", mechanism=p.mechanism))
        if p.delta is None:
            return self.result(False, msg("privacy.no_delta", budget=budget))
        if p.mechanism == "none" or not p.noise_multiplier:
            return self.result(False, msg("privacy.no_noise", budget=budget, delta=p.delta))
        if p.unprotected_rounds:
            rounds = ", ".join(map(str, p.unprotected_rounds))
            return self.result(
                False,
                msg(
                    "privacy.unprotected_rounds",
                    rounds=rounds,
                    count=len(p.unprotected_rounds),
                    budget=budget,
                ),
            )
        if p.spent is None or p.after is None or p.would_exceed is None:
            return self.result(False, msg("privacy.no_round_figures"))
        verdict = msg(
            "privacy.spent",
            spent=p.spent,
            this_round=p.after - p.spent,
            after=p.after,
            limit=p.limit,
            delta=p.delta,
            method=p.accounting_method,
            relation=p.relation,
            z=p.noise_multiplier,
        )
        return self.result(not p.would_exceed, verdict)


class MinSites(_Rule):
    rule_id, article = "min-sites", "policy"

    def evaluate(self, ctx: RoundCheck) -> RuleResult:
        passing, needed = len(ctx.passing_sites), ctx.gate.policy.min_eligible_sites
        verdict = msg("min_sites", passing=passing, needed=needed)
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
