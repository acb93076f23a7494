"""A past adequacy review date reaches the DPO: stored result, report legs, translation.

Art. 45(3) GDPR: the Commission reviews each decision; a review date that has passed does
not end it (Art. 45(5)), so the leg stays grounded and says the review is overdue.
"""

from __future__ import annotations

import pytest
from django.utils import translation

from fedgov.actors import Actor
from sites.models import Site
from training.models import GateResult
from training.reasons import reason_text

pytestmark = pytest.mark.django_db
OVERDUE = "its periodic review was due on 2025-12-17 and is overdue (Art. 45(3))"


def test_an_overdue_review_is_shown_on_the_result_and_the_reports_leg_without_refusing():
    from reports.data import gate_transfers
    from tests.training.flower.conftest import governed_scenario
    from training.services.gate import round_gate

    run, sites, _ = governed_scenario(subjects=3)
    # Korea's decision (shipped list) was due for review on 2025-12-17; today is later.
    Site.objects.filter(pk=sites[2].pk).update(
        zone_operator="Hanguk Compute Co.",
        zone_operator_country="KR",
        zone_operator_role="processor",
    )
    decision = round_gate(actor=Actor.system("t"), run=run, round_no=1)

    result = GateResult.objects.get(decision=decision, site_id=sites[2].pk, rule_id="transfer")
    assert result.ok and OVERDUE in result.reason
    assert sites[2].pk in decision.eligible_sites
    (leg,) = [t for t in gate_transfers(run_id=run.pk) if t.importer_country == "KR"]
    assert leg.ok and leg.third_country and OVERDUE in leg.ground
    with translation.override("de"):
        german = reason_text(leg.reason["code"], leg.reason["params"])
    assert "war am 2025-12-17 fällig und ist überfällig (Art. 45(3))" in german
