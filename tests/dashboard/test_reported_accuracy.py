"""The dashboard's accuracy panel shows, per round and site, the accuracies the sites
reported: with their accepted model updates and in their ``evaluation.recorded`` replies."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.numbers import number as reader_number
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


def chart_values(page: str, chart_id: str, lang: str = "en") -> dict[tuple[int, str], float]:
    """Read a chart's points back into ``{(round, site): value}`` from the SVG geometry
    alone: each marker's position is mapped through the axes' own ticks (their machine
    values and positions), so a point drawn anywhere but at its value reads back wrong.
    Each tick's drawn text must be its machine value as a reader of ``lang`` writes it."""
    figure = re.search(rf'<figure class="chart" id="{chart_id}">(.*?)</figure>', page, re.S)
    assert figure, f"no chart {chart_id}"
    markup = re.search(r"<svg.*</svg>", figure.group(1), re.S).group(0)
    svg = ET.fromstring(markup)  # noqa: S314 - the test server's own page, not outside input
    # Accessible: named and described by its own title and desc.
    assert svg.get("role") == "img"
    labelled = svg.get("aria-labelledby").split()
    texts = {e.get("id"): (e.text or "").strip() for e in svg if e.tag in ("title", "desc")}
    assert set(labelled) == set(texts) and all(texts.values())

    def axis(name: str, attr: str) -> list[tuple[float, float]]:
        group = svg.find(f"g[@class='axis {name}']")
        found = group.findall("g[@class='tick']")
        # Each tick's label is the value it is drawn with, in the reader's language.
        assert found
        for t in found:
            machine = t.get("data-value")
            assert float(machine) == float(machine.strip())  # Python's form, no locale
            if name == "y":
                with translation.override(lang):
                    assert t.find("text").text == reader_number(Decimal(machine)), (lang, machine)
            else:  # round numbers are identifiers: never grouped, never localised
                assert t.find("text").text == machine
        return [(float(t.get("data-value")), float(t.find("line").get(attr))) for t in found]

    def scale(ticks: list[tuple[float, float]]):
        (v0, p0), (v1, p1) = ticks[0], ticks[-1]
        per = (v1 - v0) / (p1 - p0)
        for v, p in ticks:  # the axis is linear
            assert abs(v0 + (p - p0) * per - v) < 1e-6
        return lambda p: v0 + (p - p0) * per

    x_of = scale(axis("x", "x1"))
    y_of = scale(axis("y", "y1"))
    values: dict[tuple[int, str], float] = {}
    for series in svg.findall("g[@class='series']"):
        site = series.get("data-site")
        drawn = []
        for point in series.findall("g[@class='pt']"):
            x, y = map(
                float, re.fullmatch(r"translate\((\S+) (\S+)\)", point.get("transform")).groups()
            )
            number = x_of(x)
            assert abs(number - round(number)) < 1e-6
            assert round(number) == int(point.get("data-round"))
            values[(round(number), site)] = y_of(y)
            drawn.append((x, y))
        # The line runs through the markers and nowhere else.
        line = series.find("path[@class='line']").get("d")
        vertices = [(float(a), float(b)) for a, b in re.findall(r"[ML] (\S+) (\S+)", line)]
        assert vertices == drawn
    return values


def test_the_accuracy_chart_plots_exactly_what_the_sites_reported(browser_for):
    operator = Actor.of(UserFactory(username="olga", roles=["Operator"]))
    approver = verified_actor(UserFactory(username="anton", roles=["Operator"]))
    run, sites, _ = governed_scenario(subjects=6, num_rounds=3)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(requires_approval=True)
    run.refresh_from_db()
    for number in (1, 2, 3):
        _play(run, number, operator=operator, approver=approver)
    slug = {s.pk: s.slug for s in sites}
    numbers = dict(Round.objects.filter(run=run).values_list("pk", "number"))
    training = {
        (u.round.number, slug[u.site_id]): u.metrics["accuracy"]
        for u in ModelUpdate.objects.filter(round__run=run, kind="site", accepted=True)
    }
    evaluation = {
        (numbers[int(e.subject_id)], slug[body["site_id"]]): body["metrics"]["accuracy"]
        for e in LedgerEntry.objects.filter(event_type="evaluation.recorded")
        for body in [json.loads(e.payload)]
    }
    assert len(training) == len(evaluation) == 9

    browser = browser_for("DPO")
    page = browser.get(reverse("dashboard:index")).content.decode()
    for lang in ("en", "de", "es", "pl", "fr"):
        shown = browser.get(reverse("dashboard:index"), HTTP_ACCEPT_LANGUAGE=lang)
        shown = shown.content.decode()
        for chart_id, recorded in (
            (f"chart-{run.pk}-training", training),
            (f"chart-{run.pk}-evaluation", evaluation),
        ):
            plotted = chart_values(shown, chart_id, lang)
            assert set(plotted) == set(recorded)
            # The sites' values lie 0.001 apart: a point swapped, averaged or rounded is
            # caught.
            for key, value in recorded.items():
                assert abs(plotted[key] - value) < 1e-5, (lang, chart_id, key, plotted[key])
        if lang != "en":
            # The y axis reads 0,2 ... 0,8 to a reader who writes a decimal comma, and each
            # point's tooltip gives its value the same way.
            assert ">0,2</text>" in shown and ">0.2</text>" not in shown, lang
            titles = re.findall(r'<g class="pt"[^>]*><title>([^<]+)</title>', shown)
            assert titles and all(re.search(r": \d+,\d{4}$", t) for t in titles), lang
    # One legend entry per site, and the table kept for whoever cannot see the chart.
    panel = page[page.index('id="accuracy"') :]
    legend = re.search(r'<ul class="legend"[^>]*>(.*?)</ul>', panel, re.S).group(1)
    assert re.findall(r"</svg>([^<]+)</li>", legend) == sorted(slug.values())
    assert panel.count("<tr data-round=") == 9
