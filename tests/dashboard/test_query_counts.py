"""The dashboard and the run, round and gate admin pages cost a fixed number of queries,
whatever the number of rounds and sites: fedgov serves federations of 200 sites."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard import selectors
from fedgov import clock
from fedgov.actors import Actor
from reports.data import consent_counts
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    PurposeFactory,
    RoundFactory,
    RunFactory,
    SiteFactory,
    UserFactory,
)
from training.models import GateDecision, Round, TrainingRun
from training.services.gate import round_gate

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


def _queries(call) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, len(captured)


def _page_queries(client, url: str):
    """The page and its queries, once the process's caches (content types) are warm."""
    client.get(url)
    return _queries(lambda: client.get(url))


@pytest.fixture
def operator() -> Actor:
    return Actor.of(UserFactory(username="olga", roles=["Operator"]))


def _federation(sites: int, *, prefix: str = "site", num_rounds: int = 40) -> TrainingRun:
    """A run over ``sites`` sites, each with a dataset whose consents change over time:
    one withdrawn 15 days ago, one expiring 5 days ago, one granted 12 days ago, one
    current; plus a consent of the same dataset for another run's purpose, which this
    run must never count."""
    now = clock.now()
    run = RunFactory(num_rounds=num_rounds)
    DpiaFactory(run=run)
    other = RunFactory(purpose=PurposeFactory(code=f"{prefix}-other-purpose"))
    for i in range(sites):
        dataset = DatasetFactory(site=SiteFactory(slug=f"{prefix}-{i:03d}"), purposes=[run.purpose])
        run.datasets.add(dataset)
        other.datasets.add(dataset)
        ConsentFactory(dataset=dataset, purpose=run.purpose, withdrawn_at=now - 15 * DAY)
        ConsentFactory(dataset=dataset, purpose=run.purpose, expires_at=now - 5 * DAY)
        ConsentFactory(dataset=dataset, purpose=run.purpose, granted_at=now - 12 * DAY)
        ConsentFactory(dataset=dataset, purpose=run.purpose)
        ConsentFactory(dataset=dataset, purpose=other.purpose)
    return run


def _add_rounds(run: TrainingRun, operator: Actor, first: int, last: int) -> None:
    """Rounds ``first``..``last``: odd ones gated for real (counted at the gate's instant),
    even ones never gated and created 20, 10 or 1 days ago (counted at their creation)."""
    ages = (20 * DAY, 10 * DAY, DAY)
    for number in range(first, last + 1):
        if number % 2:
            round_gate(actor=operator, run=run, round_no=number)
        else:
            created = RoundFactory(run=run, number=number)
            Round.objects.filter(pk=created.pk).update(
                created_at=clock.now() - ages[number // 2 % len(ages)]
            )


def _assert_same_counts_as_one_query_per_round(coverage, run: TrainingRun) -> None:
    """Each point says what ``consent_counts`` says at the round's own instant."""
    names = dict(run.datasets.values_list("pk", "name"))
    (shown,) = [c for c in coverage if c.run_id == run.pk]
    rounds = {
        r.number: r
        for r in Round.objects.filter(run=run).annotate(
            gated_at=Max("gate_decisions__evaluated_at")
        )
    }
    assert [p.round_number for p in shown.points] == sorted(rounds)[-len(shown.points) :]
    for point in shown.points:
        r = rounds[point.round_number]
        assert point.at == (r.gated_at or r.created_at)
        expected = consent_counts(dataset_names=names, purpose_id=run.purpose_id, at=point.at)
        assert [(c.dataset, c.granted, c.withdrawn, c.expired) for c in point.counts] == [
            (c.dataset, c.granted, c.withdrawn, c.expired) for c in expected
        ]


def test_consent_coverage_costs_the_same_queries_at_2_and_at_20_rounds(operator):
    run = _federation(3)
    _add_rounds(run, operator, 1, 2)
    two, at_two = _queries(lambda: selectors.consent_coverage(selectors.Filters()))
    _add_rounds(run, operator, 3, 20)

    twenty, at_twenty = _queries(lambda: selectors.consent_coverage(selectors.Filters()))

    assert [len(c.points) for c in two] == [2]
    assert [len(c.points) for c in twenty] == [20]
    assert at_twenty == at_two
    _assert_same_counts_as_one_query_per_round(twenty, run)
    # The counts move with the instants: withdrawn, expired and newly granted all show.
    seen = {(c.granted, c.withdrawn, c.expired) for p in twenty[0].points for c in p.counts}
    assert len(seen) > 2

    # Narrowed to one site and to the newest 4 rounds: the same queries, that site only.
    site = run.datasets.order_by("name").first().site
    narrowed, at_narrowed = _queries(
        lambda: selectors.consent_coverage(selectors.Filters(site_id=site.pk), rounds=4)
    )
    (shown,) = narrowed
    assert [p.round_number for p in shown.points] == [17, 18, 19, 20]
    assert shown.datasets == (run.datasets.get(site=site).name,)
    assert [p.counts for p in shown.points] == [
        tuple(c for c in p.counts if c.dataset in shown.datasets) for p in twenty[0].points[-4:]
    ]
    assert at_narrowed == at_two


def test_dashboard_page_costs_the_same_queries_at_2_and_at_20_rounds(client, operator):
    client.force_login(UserFactory(username="dpo", roles=["DPO"]))
    run = _federation(3)
    _add_rounds(run, operator, 1, 2)
    _, at_two = _page_queries(client, reverse("dashboard:index"))
    _add_rounds(run, operator, 3, 20)

    response, at_twenty = _page_queries(client, reverse("dashboard:index"))

    assert response.status_code == 200
    assert at_twenty == at_two


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_run_admin_page_costs_the_same_queries_at_2_and_at_20_sites(superuser_client):
    small, large = _federation(2, prefix="small"), _federation(20, prefix="large")
    pages = [reverse("admin:training_trainingrun_change", args=[r.pk]) for r in (small, large)]

    (_, at_two), (response, at_twenty) = (_page_queries(superuser_client, url) for url in pages)

    assert response.status_code == 200
    assert "large-019/" in response.content.decode()  # the datasets are listed by site
    assert at_twenty == at_two


def test_gate_decision_admin_page_costs_the_same_queries_at_2_and_at_20_sites(
    superuser_client, operator
):
    decisions = []
    for sites, prefix in ((2, "small"), (20, "large")):
        run = _federation(sites, prefix=prefix)
        decisions.append(round_gate(actor=operator, run=run, round_no=1))
    pages = [reverse("admin:training_gatedecision_change", args=[d.pk]) for d in decisions]

    (_, at_two), (response, at_twenty) = (_page_queries(superuser_client, url) for url in pages)

    assert response.status_code == 200
    assert GateDecision.objects.get(pk=decisions[1].pk).eligibilities.count() == 20
    assert at_twenty == at_two
