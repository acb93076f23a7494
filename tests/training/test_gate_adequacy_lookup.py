"""The transfer rule reads each importer's adequacy decision (Art. 45) once per leg: the
ground and the review-date finding come from the one decision it found."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.training.gate_facts import ADEQUACY, context, party, site
from training.gate.context import AdequacyDecisionFacts, AdequacyFacts
from training.gate.rules import SiteCheck, Transfer

# The shipped list's Korea decision (review due 2025-12-17, scope: the country) and the
# EU-US decision (scope: DPF-listed recipients only).
KR_CLOUD = party("Hanguk Compute Co.", "KR", "processor")
US_CLOUD = party("Acme Cloud Inc.", "US", "processor")


@dataclass(frozen=True)
class _CountedList(AdequacyFacts):
    """The shipped adequacy list, noting each country it is asked about."""

    asked: list[str] = field(default_factory=list, compare=False)

    def decision(self, country: str) -> AdequacyDecisionFacts | None:
        self.asked.append(country)
        return super().decision(country)


@pytest.mark.parametrize(
    ("importer", "ok", "phrase"),
    [
        # Granted, with the review overdue at the round's instant (2026-06-15).
        (KR_CLOUD, True, "is overdue (Art. 45(3))"),
        # Refused: the US decision covers only certified recipients.
        (US_CLOUD, False, "Acme Cloud Inc."),
    ],
)
def test_the_importers_adequacy_decision_is_looked_up_once(importer, ok, phrase):
    listed = _CountedList(ADEQUACY.version, ADEQUACY.sha256, ADEQUACY.decisions)
    ctx = context(sites=[site(zone_operator=importer)], adequacy=listed)

    result = Transfer().evaluate(SiteCheck(gate=ctx, site=ctx.sites[0]))

    assert result.ok is ok, result.reason
    assert phrase in result.reason
    # Only the zone leg leaves the EEA (aggregator and host are in DE by default).
    assert listed.asked == [importer.country]
