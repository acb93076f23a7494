"""The gate's rows are what the rules say, whatever the gate does to be fast.

round_gate renders equal reasons once (``english_memo``) and sends each distinct reason
once in its insert; these tests pin that the stored rows, their order and the texts are
exactly those of rendering every rule result anew, outside any memo.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from fedgov.actors import Actor
from sites.models import Consent
from tests.training.test_gate_service import federation
from training.gate import SITE_RULES, from_snapshot
from training.gate.messages import english, english_memo, msg, render
from training.gate.rules import ROUND_RULES, RoundCheck, SiteCheck
from training.models import GateResult
from training.services.gate import decision_snapshot, round_gate

ACTOR = Actor.system("tests")


def _rows_rendered_one_by_one(decision) -> list[tuple]:
    """Each rule evaluated on the stored snapshot with no memo: every reason rendered anew."""
    ctx = from_snapshot(decision_snapshot(decision))
    rows, passing = [], []
    for site in ctx.sites:
        results = [rule.evaluate(SiteCheck(gate=ctx, site=site)) for rule in SITE_RULES]
        if all(r.ok for r in results):
            passing.append(site.slug)
        rows += [(site.id, site.slug, i, r) for i, r in enumerate(results)]
    round_check = RoundCheck(gate=ctx, passing_sites=tuple(passing))
    rows += [(None, "", i, rule.evaluate(round_check)) for i, rule in enumerate(ROUND_RULES)]
    # Stored params went through JSON: compare them the same way.
    return [
        (
            site_id,
            slug,
            i,
            r.rule_id,
            r.article,
            r.ok,
            r.reason,
            r.code,
            json.loads(json.dumps(r.params)),
        )
        for site_id, slug, i, r in rows
    ]


@pytest.mark.django_db
def test_stored_results_equal_every_reason_rendered_anew_in_rule_order():
    run = federation(4, subjects=3, datasets_per_site=2)
    # Sites that differ: one loses a subject, one loses everyone (refused, Art. 7(3)).
    earlier = timezone.now() - dt.timedelta(seconds=1)
    Consent.objects.filter(subject_pseudonym="s001-s0000").update(withdrawn_at=earlier)
    Consent.objects.filter(dataset__site__slug="s002").update(withdrawn_at=earlier)

    decision = round_gate(actor=ACTOR, run=run, round_no=1)

    stored = list(
        GateResult.objects.filter(decision=decision)
        .order_by("pk")
        .values_list(
            "site_id",
            "site_slug",
            "position",
            "rule_id",
            "article",
            "ok",
            "reason",
            "code",
            "params",
        )
    )
    assert stored == _rows_rendered_one_by_one(decision)
    assert any(not ok for *_, ok, _, _, _ in stored)  # the refused site is in it


def test_english_memo_shares_equal_reasons_and_only_inside_its_block():
    a, b = msg("retention.ok", date="2030-01-01"), msg("retention.ok", date="2030-01-01")
    assert english(a)[1] is a and english(b)[1] is b  # no memo: nothing shared
    with english_memo():
        text, first = english(a)
        assert english(b) == (text, first) and english(b)[1] is a
        assert text == "retained until 2030-01-01"
    with english_memo():  # a new block remembers nothing of the last
        assert english(b)[1] is b


@pytest.mark.parametrize(
    "one, other",
    [
        (["DE", "FR"], ("DE", "FR")),  # a list and a tuple print differently
        (1, True),
        (1, 1.0),
        ("2030-01-01", dt.date(2030, 1, 1)),
    ],
)
def test_english_memo_never_takes_one_value_for_another(one, other):
    first, second = msg("purpose.ok", purpose=one), msg("purpose.ok", purpose=other)
    with english_memo():
        assert english(first)[1] is first
        assert english(second)[1] is second
        assert english(second)[0] == render(second)


def test_a_translated_render_does_not_use_the_english_memo():
    message = msg("retention.ended", date="2020-01-01")
    with english_memo():
        english(message)
        german = render(message, translate=lambda t: t.replace("retention ended", "Ende"))
        assert german == "Ende on 2020-01-01"
