"""The dashboard's accuracy panel shows, per round and site, the accuracies the sites
reported: with their accepted model updates and in their ``evaluation.recorded`` replies."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.urls import reverse

from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov_flower.ticket import parse_unverified
from sites.models import ResidencyPolicy
from tests.factories import UserFactory, verified_actor
from tests.placement import place_on_host
from tests.training.flower.conftest import contract_digest, governed_scenario
from training.models import ModelUpdate, Round
from training.services.flower import (
    UpdateReport,
    model_updates_record,
    round_evaluations_record,
    round_ticket_issue,
)
from training.services.gate import round_gate
from training.services.rounds import round_approve, round_route_after_gate

pytestmark = pytest.mark.django_db


def _reports(decision, signed, number, accuracy):
    eligible = decision.eligibilities.select_related("site").order_by("site__slug")
    return [
        UpdateReport(
            node_id=e.site.flower_node_id,
            update_hash=f"{number:02d}{i:02d}".ljust(64, "b"),
            num_examples=100 + 10 * i,
            records_used=e.eligible_records,
            records_excluded=len(e.excluded_pseudonyms),
            metrics={"accuracy": accuracy(i)},
            filter_digest=contract_digest(signed, e.site.flower_node_id),
        )
        for i, e in enumerate(x for x in eligible if x.eligible)
    ]


def _play(run, number, *, operator, approver):
    """A round trained and evaluated; every site reports its own, distinct accuracy."""
    decision = round_gate(actor=operator, run=run, round_no=number)
    round_ = round_route_after_gate(actor=operator, round=Round.objects.get(pk=decision.round_id))
    round_approve(actor=approver, round=round_, reason="gate evidence reviewed")
    round_ = place_on_host(Round.objects.get(pk=round_.pk), actor=operator)
    train = parse_unverified(round_ticket_issue(actor=operator, round=round_).body)
    evaluate = parse_unverified(
        round_ticket_issue(actor=operator, round=round_, message_type="evaluate").body
    )
    flower = Actor.system("flower")
    round_evaluations_record(
        actor=flower,
        round=round_,
        evaluations=_reports(decision, evaluate, number, lambda i: 0.5 + number / 10 + i / 100),
    )
    model_updates_record(
        actor=flower,
        round=round_,
        updates=_reports(decision, train, number, lambda i: 0.4 + number / 10 + i / 1000),
        aggregate_hash=f"{number:02d}".ljust(64, "f"),
    )


def test_the_accuracy_panel_shows_what_the_sites_reported(browser_for):
    operator = Actor.of(UserFactory(username="olga", roles=["Operator"]))
    approver = verified_actor(UserFactory(username="anton", roles=["Operator"]))
    run, sites, _ = governed_scenario(subjects=6, num_rounds=2)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(requires_approval=True)
    run.refresh_from_db()
    for number in (1, 2):
        _play(run, number, operator=operator, approver=approver)
    slug = {s.pk: s.slug for s in sites}
    recorded: dict[tuple[int, str], dict[str, str]] = {}
    for u in ModelUpdate.objects.filter(round__run=run, kind="site", accepted=True):
        recorded.setdefault((u.round.number, slug[u.site_id]), {})["training"] = (
            f"{u.metrics['accuracy']:.4f}"
        )
    numbers = dict(Round.objects.filter(run=run).values_list("pk", "number"))
    for e in LedgerEntry.objects.filter(event_type="evaluation.recorded"):
        body = json.loads(e.payload)
        recorded.setdefault((numbers[int(e.subject_id)], slug[body["site_id"]]), {})[
            "evaluation"
        ] = f"{body['metrics']['accuracy']:.4f}"
    assert len(recorded) == 6
    assert all(set(v) == {"training", "evaluation"} for v in recorded.values())

    response = browser_for("DPO").get(reverse("dashboard:index"))
    page = html.unescape(response.content.decode())
    panel = page[page.index('id="accuracy"') :]
    assert "Accuracy as reported by the sites" in panel
    shown = {
        (int(number), site): {"training": training, "evaluation": evaluation}
        for number, site, training, evaluation in re.findall(
            r'<tr data-round="(\d+)" data-site="([^"]+)">\s*<td[^>]*>\d+</td>\s*<td>[^<]+</td>'
            r'\s*<td class="num">([^<]+)</td>\s*<td class="num">([^<]+)</td>',
            panel,
        )
    }
    assert shown == recorded
