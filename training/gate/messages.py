"""The gate's reasons as data: a stable code, JSON-safe params, and one English template.

A reason is ``{"code": ..., "params": {...}}``. A param may itself be a reason (rendered
first) or a list of reasons (rendered and joined with "; "), so a rule that judges several
datasets or transfer legs keeps each verdict as data. Any other list is shown as Python
shows it, which is how the English reasons have always read. The English text the gate
stores in ``reason`` is ``render(message)`` with no translation, so it never depends on
the reader; ``training.reasons`` renders the same data in the reader's language.

Templates use gettext's named placeholders; ``gettext_noop`` only marks them for
``makemessages`` (the catalogues live in ``training/locale``). A template whose words
follow a count ("1 site passes", "3 sites pass") is a ``Plural``, marked with ``ngettext``
below: English picks its form by the count, a reader's language by its own plural rule
(Polish has four forms), never "site(s)".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_noop as _

Message = dict[str, Any]


@dataclass(frozen=True)
class Plural:
    """A template in its English singular and plural; ``count`` names the int param that
    chooses between them."""

    one: str
    other: str
    count: str

    def number_in(self, params: Mapping[str, Any]) -> int | None:
        """The count ``params`` give, or None when they hold none (the plural form then)."""
        value = params.get(self.count)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return None


def ngettext(one: str, other: str, *, count: str) -> Plural:
    """Marks a plural template for ``makemessages`` (xgettext's own ``ngettext:1,2``
    keyword) without translating it: the gate stores English, readers translate."""
    return Plural(one, other, count)


# A translator for plural templates: (singular, plural, n) -> text (``ngettext``).
PluralTranslate = Callable[[str, str, int], str]

# Code -> English template. Codes are stable: evidence and stored rows name them, so a
# code is never reused for another meaning; change the wording, not the code.
TEMPLATES: dict[str, str | Plural] = {
    # A rule over several datasets or transfer legs: each item is a reason of its own.
    "datasets": "%(items)s",
    "transfer.legs": "%(items)s",
    "dataset.verdict": _("%(dataset)s: %(why)s"),
    "site.no_dataset": _("the site has no dataset in this run"),
    "word.nothing": _("nothing"),
    "word.nowhere": _("nowhere"),
    "word.unknown_date": _("an unknown date"),
    # Art. 26/28
    "site_active.status": _("site is %(status)s"),
    "site_active.status_unknown": _("site is of unknown status"),
    "site_active.no_agreement": _("no signed Art. 26/28 agreement is recorded"),
    "site_active.window_unknown": _("the agreement's validity window is unknown"),
    "site_active.not_started": _("the agreement starts on %(date)s"),
    "site_active.expired": _("the agreement expired on %(date)s"),
    "site_active.ok": _("active; agreement valid until %(date)s"),
    # Art. 6(1)
    "lawful_basis.withdrawn": _("withdrawn from federation at %(at)s"),
    "lawful_basis.all_withdrawn": _(
        "withdrawn from federation: every subject withdrew consent (Art. 7(3))"
    ),
    "lawful_basis.missing": _("no Art. 6(1) lawful basis recorded"),
    "lawful_basis.ok": _("Art. %(basis)s"),
    # Art. 9(2)
    "special.none": _("no special-category data"),
    "special.data": _("special-category data"),
    "special.data_named": _("special-category data (%(categories)s)"),
    "special.ok": _("%(what)s under Art. %(condition)s"),
    "special.no_condition": _("%(what)s without a recorded Art. 9(2) condition"),
    # Art. 10
    "criminal.none": _("no criminal-conviction data"),
    "criminal.no_ground": _("criminal-conviction data without a recorded Art. 10 ground"),
    "criminal.no_reference": _("Art. 10 ground %(basis)s without its reference"),
    "criminal.ok": _("criminal-conviction data: %(basis)s, %(reference)s"),
    # Art. 5(1)(b)
    "purpose.ok": _("purpose %(purpose)s permitted"),
    "purpose.not_permitted": _("purpose %(purpose)s is not among %(purposes)s"),
    "purpose.none": _("purpose (none) is not among %(purposes)s"),
    # Art. 5(1)(e)
    "retention.unknown": _("no retention date recorded"),
    "retention.ended": _("retention ended on %(date)s"),
    "retention.ok": _("retained until %(date)s"),
    # Art. 7
    "consent.not_consent": _("not consent-based (Art. %(basis)s)"),
    "consent.none": _(
        "no subject with current consent (%(eligible)s with current consent, %(excluded)s excluded)"
    ),
    "consent.ok": _("%(eligible)s with current consent, %(excluded)s excluded"),
    # policy
    "min_records": _(
        "%(records)s eligible (%(subjects)s subjects with valid consent, %(other)s declared "
        "records under other bases); the policy needs %(needed)s"
    ),
    "min_sites": ngettext(
        "%(passing)s site passes every rule; the policy needs %(needed)s",
        "%(passing)s sites pass every rule; the policy needs %(needed)s",
        count="passing",
    ),
    # Art. 35
    "dpia.not_required": _("the policy does not require a DPIA"),
    "dpia.missing": _("no DPIA recorded for the run"),
    "dpia.not_approved": _("DPIA %(reference)s is %(status)s, not approved"),
    "dpia.expired": _("DPIA %(reference)s expired on %(date)s"),
    "dpia.ok": _("DPIA %(reference)s approved, valid until %(date)s"),
    # Art. 44 + policy
    "residency.policy_unpublished": _("policy v%(version)s is not published"),
    "residency.compute_unknown": _("the site's compute country is unknown"),
    "residency.aggregator_unknown": _("the aggregator's country is unknown"),
    "residency.place.compute": _("compute"),
    "residency.place.aggregator": _("the aggregator"),
    "residency.outside_policy": _(
        "%(place)s in %(country)s is outside the policy's areas (%(areas)s)"
    ),
    "residency.outside_dataset": _(
        "%(dataset)s may be processed in %(allowed)s, not in %(country)s (%(place)s)"
    ),
    "residency.ok": _("%(place)s in %(country)s, allowed by the policy and every dataset"),
    "residency.ok_two": _(
        "%(place)s in %(country)s and %(place2)s in %(country2)s, allowed by the policy "
        "and every dataset"
    ),
    # Art. 44-49, leg by leg
    "transfer.head.zone": _("site data to the zone operator"),
    "transfer.head.aggregator": _("model updates and consent lists to the aggregator operator"),
    "transfer.head.host": _("model updates and consent lists to fedgov's host"),
    "transfer.flow": _(
        "%(exporter)s (%(exporter_country)s) → %(importer)s (%(importer_country)s, %(role)s)"
    ),
    "transfer.not_personal": _(
        "%(head)s: no personal data (the policy reads model updates as not personal data, "
        "and no dataset is consent-based)"
    ),
    "transfer.importer_unknown": _(
        "%(head)s: who operates it is not recorded, so the Art. 44 criteria cannot be applied"
    ),
    "transfer.same_organisation": _("%(head)s: %(flow)s: not a transfer, same organisation"),
    "transfer.same_organisation_zone": _(
        "%(head)s: %(flow)s: not a transfer, same organisation; compute in %(country)s is a "
        "residency question"
    ),
    "transfer.importer_in_eea": _("%(head)s: %(flow)s: not a transfer, the importer is in the EEA"),
    "transfer.grounded": _("%(head)s: %(flow)s: %(ground)s"),
    "transfer.no_ground": _(
        "%(head)s: %(flow)s: transfer to a third country without a ground: %(why)s"
    ),
    "adequacy.cite": _("%(reference)s of %(adopted_on)s"),
    "adequacy.none": _("no adequacy decision for %(country)s"),
    "adequacy.not_adopted": _("%(cite)s was not yet adopted"),
    "adequacy.ceased": _("%(cite)s ceased to apply on %(date)s"),
    "adequacy.country": _("adequacy decision %(cite)s (Art. 45)"),
    # A finding for the DPO, not a refusal: a review date that has passed does not end a
    # decision (Art. 45(3), (5)).
    "adequacy.review_overdue": _(
        "%(ground)s; its periodic review was due on %(date)s and is overdue (Art. 45(3)); the "
        "decision stays in force until the Commission repeals, amends or suspends it (Art. 45(5))"
    ),
    "adequacy.label.dpf": _("DPF listing"),
    "adequacy.label.pipeda": _("PIPEDA applicability"),
    "adequacy.no_certification": _(
        "%(cite)s covers only qualifying recipients (%(scheme)s), and no %(label)s of "
        "%(organisation)s is recorded"
    ),
    "adequacy.certification_after_round": _(
        "the %(label)s of %(organisation)s is dated after the round"
    ),
    "adequacy.dpf_stale": _(
        "%(cite)s covers only certified recipients; the DPF listing of %(organisation)s was "
        "checked on %(checked_on)s, %(age)s days ago, more than the policy's %(limit)s"
    ),
    "adequacy.certified": _(
        "adequacy decision %(cite)s (Art. 45) for %(organisation)s: %(label)s %(listing)s, "
        "checked on %(checked_on)s"
    ),
    "safeguard.none": _("no Art. 46 safeguard or Art. 49 derogation is recorded"),
    "safeguard.unknown": _("%(mechanism)s is not a transfer ground"),
    # A party's role as recorded (sites.choices.PartyRole): English shows the stored value.
    "party_role.controller": _("controller"),
    "party_role.joint_controller": _("joint controller"),
    "party_role.processor": _("processor"),
    "role.controller": _("controller"),
    "role.processor": _("processor"),
    "scc.wrong_module": _(
        "the SCCs recorded are module %(recorded)s, but %(exporter_role)s to %(importer_role)s "
        "needs module %(module)s (Decision (EU) 2021/914)"
    ),
    "scc.not_signed": _("the SCCs are signed on %(date)s"),
    "scc.no_tia": _("the SCCs have no transfer impact assessment recorded"),
    "scc.ok": _("SCC module %(module)s signed on %(date)s, TIA %(tia)s (Art. 46(2)(c))"),
    "bcr.incomplete": _("the BCR lacks its approval reference or transfer impact assessment"),
    "bcr.ok": _("BCR %(reference)s, TIA %(tia)s (Art. 46(2)(b), 47)"),
    "derogation.incomplete": _("the Art. 49 derogation lacks its ground or reason"),
    "derogation.ok": _("EXCEPTIONAL: Art. %(ground)s derogation: %(reason)s"),
    # Art. 25/32
    "privacy.no_budget": _("the policy sets no privacy budget"),
    "privacy.no_figures": _("budget ε=%(budget)g set but no accountant figures"),
    "privacy.wrong_mechanism": _(
        "the policy requires %(required)s DP; the run applies %(mechanism)s"
    ),
    "privacy.no_budget_mechanism": _("the policy sets no privacy budget (mechanism %(mechanism)s)"),
    "privacy.no_delta": _("budget ε=%(budget)g set without its δ"),
    "privacy.no_noise": _(
        "budget ε=%(budget)g at δ=%(delta)g set but the run applies no mechanism that adds "
        "noise: no ε can be claimed"
    ),
    # ``count``: the number of rounds named (stored since plurals; older rows lack it and
    # read in the plural).
    "privacy.unprotected_rounds": ngettext(
        "round %(rounds)s released an aggregate without noise: ε is unbounded against the "
        "budget ε=%(budget)g",
        "rounds %(rounds)s released an aggregate without noise: ε is unbounded against the "
        "budget ε=%(budget)g",
        count="count",
    ),
    "privacy.no_round_figures": _("the accountant gave no figures for this round"),
    "privacy.spent": _(
        "spent ε=%(spent).4g + this round %(this_round).4g = %(after).4g of %(limit)g at "
        "δ=%(delta)g (%(method)s, %(relation)s, z=%(z)g)"
    ),
    # The decision as a whole
    "gate.allowed": ngettext(
        "allowed: %(eligible)s of %(total)s site eligible",
        "allowed: %(eligible)s of %(total)s sites eligible",
        count="total",
    ),
    "gate.blocked": _("blocked: %(failed)s"),
    "gate.rule_failed": _("%(rule_id)s: %(reason)s"),
    "gate.refused": _("%(verdict)s; refused: %(refused)s"),
    # A round's state reason as fedgov writes it (training.services; Round.state_reason_code).
    # "reason" params are what a person typed: shown as typed, never translated.
    "round.requires_approval": _("policy %(policy)s v%(version)s requires human approval"),
    "round.requires_no_approval": _("policy %(policy)s v%(version)s requires no human approval"),
    "round.approved_by": _("approved by %(actor)s: %(reason)s"),
    "round.rejected_by": _("rejected by %(actor)s: %(reason)s"),
    "round.aborted_by": _("aborted by %(actor)s: %(reason)s"),
    "round.regate_requested": _("re-gate requested by %(actor)s: %(reason)s"),
    "round.approvals_expired": _("approvals expired before the round started: %(missing)s"),
    "round.ticket_issued": _("ticket %(ticket)s issued"),
    "round.closed": _("round closed; a checkpoint covers its events"),
    "round.provisioning_workloads": _("provisioning SuperNode workloads for the eligible sites"),
    # Failure: "error" params are an outside system's or an exception's English text,
    # shown as written.
    "round.no_ticket": _("no ticket could be issued: %(error)s"),
    "round.ticket_expired": _("the round's ticket expired before any update was recorded"),
    "round.no_progress": _("no progress for %(idle)s s (limit %(limit)s s): %(found)s"),
    "round.updates_no_aggregate": ngettext(
        "%(count)s site update but no aggregate",
        "%(count)s site updates but no aggregate",
        count="count",
    ),
    "round.no_update": _("no update was recorded"),
    "round.aggregated": ngettext(
        "%(count)s site update aggregated", "%(count)s site updates aggregated", count="count"
    ),
    # Recovery after a killed manage.py federate; one phrase per state it may have left,
    # whole, so each language can inflect it.
    "round.owner_killed": _("manage.py federate (process %(pid)s) driving it was killed; %(was)s"),
    "round.was.planned": _("it was planned"),
    "round.was.gated": _("it was gated"),
    "round.was.awaiting_approval": _("it was awaiting approval"),
    "round.was.approved": _("it was approved"),
    "round.was.provisioning": _("it was provisioning"),
    "round.was.placement_verified": _("it was placement verified"),
    "round.was.running": _("it was running"),
    "round.was.aggregated": _("it was aggregated"),
    "round.was": _("it was %(state)s"),
    "round.placing_on_host": _("placing the local SuperNodes on this host"),
    "approvals.more_distinct": ngettext(
        "%(more)s more approval from distinct operators (have %(have)s of %(needed)s)",
        "%(more)s more approvals from distinct operators (have %(have)s of %(needed)s)",
        count="more",
    ),
    "approvals.controller_dpo": _("approval from the DPO of controller %(site)s"),
    "round.placed_on_host": ngettext(
        "%(count)s site placed on host %(host)s in %(country)s",
        "%(count)s sites placed on host %(host)s in %(country)s",
        count="count",
    ),
    "round.placed_on_host_blocked": ngettext(
        "%(count)s site placed on host %(host)s in %(country)s; %(blocked)s",
        "%(count)s sites placed on host %(host)s in %(country)s; %(blocked)s",
        count="count",
    ),
    "round.too_few_on_host": ngettext(
        "only %(count)s site passed placement on host %(host)s, the policy needs %(needed)s",
        "only %(count)s sites passed placement on host %(host)s, the policy needs %(needed)s",
        count="count",
    ),
    "round.too_few_on_host_blocked": ngettext(
        "only %(count)s site passed placement on host %(host)s, the policy needs "
        "%(needed)s; %(blocked)s",
        "only %(count)s sites passed placement on host %(host)s, the policy needs "
        "%(needed)s; %(blocked)s",
        count="count",
    ),
    "round.placed_inside": ngettext(
        "%(count)s site placed inside %(areas)s",
        "%(count)s sites placed inside %(areas)s",
        count="count",
    ),
    "round.placed_inside_blocked": ngettext(
        "%(count)s site placed inside %(areas)s; %(blocked)s",
        "%(count)s sites placed inside %(areas)s; %(blocked)s",
        count="count",
    ),
    "round.too_few_placed": ngettext(
        "only %(count)s site passed placement, the policy needs %(needed)s",
        "only %(count)s sites passed placement, the policy needs %(needed)s",
        count="count",
    ),
    "round.too_few_placed_blocked": ngettext(
        "only %(count)s site passed placement, the policy needs %(needed)s; %(blocked)s",
        "only %(count)s sites passed placement, the policy needs %(needed)s; %(blocked)s",
        count="count",
    ),
    "round.site_blocked": _("%(site)s blocked: %(why)s"),
    "round.site_why": _("%(site)s: %(why)s"),
    "placement.not_on_host": _("its SuperNode does not run on this host"),
    "placement.no_country": _(
        "no country lies in both its datasets' processing countries and the policy's areas"
    ),
    "placement.cannot_provision": _("cannot provision: %(error)s"),
    "placement.host_country_unknown": _(
        "the host's country is not configured (FEDGOV_LOCAL_HOST_COUNTRY)"
    ),
    "placement.host_outside": _(
        "host %(host)s is in %(country)s, outside %(allowed)s (its datasets' processing "
        "countries within the policy's areas)"
    ),
    "placement.host_outside_all": _(
        "host %(host)s is in %(country)s, outside every country (its datasets' processing "
        "countries within the policy's areas)"
    ),
}


def msg(code: str, **params: Any) -> Message:
    """A reason as data. Raises ``KeyError`` for a code the catalogue does not know."""
    if code not in TEMPLATES:  # fail where the rule is written, not where it is read
        raise KeyError(code)
    return {"code": code, "params": params}


def is_message(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("code"), str)
        and (isinstance(value.get("params", {}), Mapping))
    )


def english_text(reason: str | Message) -> str:
    """A reason's English text, whether a message or a plain string from outside (Flower,
    OpenNebula): what ``state_reason``, the ledger and workload rows keep."""
    return render(reason) if is_message(reason) else str(reason)  # type: ignore[arg-type]


# Params that name something (a policy version) rather than count or measure it: a
# reader's number format never applies to them.
IDENTIFIERS = frozenset({"version", "ticket", "pid"})
# A named placeholder with its printf conversion: "%(budget)g", "%(spent).4g", "%(n)s".
_PLACEHOLDER = re.compile(r"%\((\w+)\)([#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGs])")

# (value, printf conversion) -> the number as the reader writes it.
NumberFormat = Callable[[int | float, str], str]


# repr(message) -> (English text, the first message seen with that repr). Set only inside
# ``english_memo`` (one gate evaluation): a gate renders the same reasons for most sites,
# and at 200 sites rendering each anew was about half of the gate's time.
_ENGLISH_MEMO: ContextVar[dict[str, tuple[str, Message]] | None] = ContextVar(
    "gate_english_memo", default=None
)


@contextmanager
def english_memo() -> Iterator[None]:
    """Within the block, ``render`` (English only) and ``english`` render each distinct
    message once. Scoped to one block so nothing is cached across gates, and never across
    languages: a translated or number-formatted render does not use it."""
    token = _ENGLISH_MEMO.set({})
    try:
        yield
    finally:
        _ENGLISH_MEMO.reset(token)


def english(message: Message) -> tuple[str, Message]:
    """``render(message)`` and the message to store with it: inside ``english_memo`` an
    equal message seen before (same text, same code, equal params) is returned instead,
    so equal reasons share one object and a writer can store them once.

    The key is ``repr``: for the plain data a reason holds (str, int, float, bool, None,
    dates, lists, tuples, dicts) equal reprs mean equal values of equal types, so the text
    and the stored JSON are the same; a mere miss (an equal value that reprs differently)
    only costs a render. Callers must not mutate a returned message.
    """
    memo = _ENGLISH_MEMO.get()
    if memo is None or type(message) is not dict:
        return _render(message, None, None), message
    key = repr(message)
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = (_render(message, None, None), message)
    return hit


def render(
    message: Mapping[str, Any],
    translate: Callable[[str], str] | None = None,
    number: NumberFormat | None = None,
    translate_plural: PluralTranslate | None = None,
) -> str:
    """The text of ``message``: English, or through ``translate`` (a gettext) and
    ``translate_plural`` (an ngettext, for ``Plural`` templates).

    ``number`` formats each numeric param for the reader ("0,00001" for a German
    reader's δ, where the stored English says "1e-05"); without it numbers print as
    Python prints them, which is the stored, language-neutral form.

    Raises ``KeyError`` for an unknown code and ``TypeError``/``ValueError`` for params
    that do not fit the template; callers that show stored rows catch those and fall back
    to the stored English text. Inside ``english_memo`` an English render is memoised.
    """
    if translate is None and number is None and _ENGLISH_MEMO.get() is not None:
        return english(message)[0]  # type: ignore[arg-type]
    return _render(message, translate, number, translate_plural)


def template_for(
    code: str,
    params: Mapping[str, Any],
    translate: Callable[[str], str] | None = None,
    translate_plural: PluralTranslate | None = None,
) -> str:
    """The template of ``code`` for these params: translated when a translator is given,
    and for a ``Plural`` the form its count asks for (English: "one" for 1 only)."""
    template = TEMPLATES[code]
    if not isinstance(template, Plural):
        return translate(template) if translate is not None else template
    n = template.number_in(params)
    if translate_plural is not None:
        # No count (a row stored before it was a param): the plural, as gettext picks
        # it for a number that is not 1 in every language fedgov speaks.
        return translate_plural(template.one, template.other, 2 if n is None else n)
    return template.one if n == 1 else template.other


def _render(
    message: Mapping[str, Any],
    translate: Callable[[str], str] | None,
    number: NumberFormat | None,
    translate_plural: PluralTranslate | None = None,
) -> str:
    raw = dict(message.get("params") or {})
    template = template_for(message["code"], raw, translate, translate_plural)
    params = {k: _value(v, translate, number, translate_plural) for k, v in raw.items()}
    if number is not None and params:
        template, params = _numbers_for_reader(template, params, number)
    return template % params if params else template


def _numbers_for_reader(
    template: str, params: dict[str, Any], number: NumberFormat
) -> tuple[str, dict[str, Any]]:
    """The template with each numeric placeholder replaced by ``%(key)s`` and its param by
    the reader's text, formatted with the conversion the template asked for."""
    shown = dict(params)

    def swap(match: re.Match[str]) -> str:
        key, conversion = match.group(1), match.group(2)
        value = params.get(key)
        if key in IDENTIFIERS or isinstance(value, bool) or not isinstance(value, int | float):
            return match.group(0)
        shown[key] = number(value, conversion)
        return f"%({key})s"

    return _PLACEHOLDER.sub(swap, template), shown


def _value(
    value: object,
    translate: Callable[[str], str] | None,
    number: NumberFormat | None = None,
    translate_plural: PluralTranslate | None = None,
) -> object:
    # A nested message renders directly, not through the memo: its enclosing message's
    # key (``repr``) already covers it, and keying every level again cost more than the
    # renders it saved.
    if is_message(value):
        return _render(value, translate, number, translate_plural)  # type: ignore[arg-type]
    if isinstance(value, list) and value and all(is_message(v) for v in value):
        return "; ".join(_render(v, translate, number, translate_plural) for v in value)
    return value
