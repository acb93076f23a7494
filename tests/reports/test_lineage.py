"""Lineage (Art. 17 support): what a dataset or subject contributed to, and when it stopped."""

from __future__ import annotations

import pytest

from fedgov import roles
from reports.data import lineage
from tests.factories import UserFactory


@pytest.mark.django_db
def test_subject_lineage_stops_at_the_first_round_after_withdrawal(played_run):
    run, _sites, datasets, *_ = played_run

    found = lineage(subject_pseudonym="es-blogs-s0003")

    assert [(c.run_id, c.round_number) for c in found.contributions] == [(run.pk, 1)]
    assert found.contributions[0].aggregate_hash == "01".ljust(64, "f")
    assert found.final_models == ((run.pk, run.name, "02".ljust(64, "f")),)
    (exclusion,) = found.exclusions
    assert (exclusion.dataset_id, exclusion.round_number) == (datasets[1].pk, 2)


@pytest.mark.django_db
def test_dataset_lineage_lists_every_round_its_site_trained(played_run):
    _run, _sites, datasets, *_ = played_run

    found = lineage(dataset_id=datasets[0].pk)

    assert [c.round_number for c in found.contributions] == [1, 2]
    assert all(len(c.update_hash) == 64 for c in found.contributions)
    assert found.exclusions == ()


@pytest.mark.django_db
def test_subject_still_consenting_contributed_to_every_round(played_run):
    found = lineage(subject_pseudonym="es-blogs-s0004")

    assert [c.round_number for c in found.contributions] == [1, 2]
    assert found.exclusions == ()


@pytest.mark.django_db
def test_lineage_api_answers_dpo_and_refuses_bad_queries(played_run, api):
    client = api(UserFactory(roles=[roles.DPO]))

    ok = client.get("/api/v1/reports/lineage", {"subject": "es-blogs-s0003"})
    both = client.get("/api/v1/reports/lineage", {"subject": "x", "dataset": "1"})
    unknown = client.get("/api/v1/reports/lineage", {"subject": "nobody"})
    operator = api(UserFactory(roles=[roles.OPERATOR])).get(
        "/api/v1/reports/lineage", {"subject": "es-blogs-s0003"}
    )

    assert ok.status_code == 200 and ok.json()["exclusions"][0]["round_number"] == 2
    assert both.status_code == 400 and unknown.status_code == 404
    assert operator.status_code == 403
