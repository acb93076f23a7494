"""Runs the rules over a frozen context and produces the verdict; no database involved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.gate.context import GateContext, from_snapshot
from training.gate.messages import Message, english_memo, msg, render
from training.gate.rules import (
    ROUND_RULES,
    SITE_RULES,
    RoundCheck,
    RuleResult,
    SiteCheck,
    site_records,
)

ALLOWED = "allowed"
BLOCKED = "blocked"


@dataclass(frozen=True)
class SiteVerdict:
    """One site's results, in rule order, and whether it may train this round."""

    site_id: int
    slug: str
    passed: bool
    eligible: bool
    eligible_records: int
    exclusion_digest: str
    results: tuple[RuleResult, ...]
    allowed_count: int = 0
    allowed_digest: str = ""

    @property
    def failed_rules(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.results if not r.ok)


@dataclass(frozen=True)
class GateVerdict:
    """The whole verdict: equal verdicts mean the same decision, field by field."""

    outcome: str
    reason: str
    eligible_site_ids: tuple[int, ...]
    sites: tuple[SiteVerdict, ...]
    round_results: tuple[RuleResult, ...]
    # ``reason`` as data (training.gate.messages); ``reason`` is its English rendering.
    reason_message: Message | None = None


def evaluate(ctx: GateContext) -> GateVerdict:
    """Run every site rule for every site, then the round rules."""
    # One memo per evaluation: most sites share most reasons (rendered once), and nothing
    # rendered for one gate can leak into another.
    with english_memo():
        return _evaluate(ctx)


def _evaluate(ctx: GateContext) -> GateVerdict:
    site_verdicts = []
    for site in ctx.sites:
        check = SiteCheck(gate=ctx, site=site)
        results = tuple(rule.evaluate(check) for rule in SITE_RULES)
        site_verdicts.append((site, results, all(r.ok for r in results)))
    passing = tuple(site.slug for site, _, ok in site_verdicts if ok)
    round_check = RoundCheck(gate=ctx, passing_sites=passing)
    round_results = tuple(rule.evaluate(round_check) for rule in ROUND_RULES)
    allowed = all(r.ok for r in round_results)
    sites = tuple(
        SiteVerdict(
            site_id=site.id,
            slug=site.slug,
            passed=ok,
            # A site trains only in a round that is allowed as a whole.
            eligible=ok and allowed,
            eligible_records=site_records(site),
            exclusion_digest=site.exclusion_digest,
            results=results,
            allowed_count=site.allowed_count,
            allowed_digest=site.allowed_digest,
        )
        for site, results, ok in site_verdicts
    )
    reason = _reason(sites, round_results, allowed)
    return GateVerdict(
        outcome=ALLOWED if allowed else BLOCKED,
        reason=render(reason),
        reason_message=reason,
        eligible_site_ids=tuple(s.site_id for s in sites if s.eligible),
        sites=sites,
        round_results=round_results,
    )


def _reason(
    sites: tuple[SiteVerdict, ...], round_results: tuple[RuleResult, ...], ok: bool
) -> Message:
    # Slugs and rule ids read the same in every language, so the refused list is one text.
    refused = [f"{s.slug} ({', '.join(s.failed_rules)})" for s in sites if not s.passed]
    if ok:
        verdict = msg("gate.allowed", eligible=sum(s.eligible for s in sites), total=len(sites))
    else:
        failed = [
            msg("gate.rule_failed", rule_id=r.rule_id, reason={"code": r.code, "params": r.params})
            for r in round_results
            if not r.ok
        ]
        verdict = msg("gate.blocked", failed=failed)
    if refused:
        return msg("gate.refused", verdict=verdict, refused=", ".join(refused))
    return verdict


def replay(snapshot: dict[str, Any]) -> GateVerdict:
    """Re-run the rules on a stored snapshot; pure. Raises ``ValueError`` on a bad snapshot."""
    return evaluate(from_snapshot(snapshot))
