"""Art. 9 and Art. 10 facts of a dataset: what the data is decides, and every bad value
is a 400 naming its field (through the service and the API)."""

from __future__ import annotations

import datetime as dt

import pytest

from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites import services
from tests.factories import PurposeFactory, SiteFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
CRIMINAL = "criminal-convictions-and-offences"


def register(**fields):
    base = {
        "name": "legal-texts",
        "lawful_basis": "6(1)(e)",
        "purposes": [PurposeFactory()],
        "retention_until": dt.date.today() + dt.timedelta(days=30),
        "processing_countries": ["EEA"],
        "data_categories": ["text"],
    }
    return services.dataset_register(actor=ACTOR, site=SiteFactory(), **{**base, **fields})


# (fields, field the 400 names, phrase) — Art. 9(1), 9(2), 10
BAD = [
    ({"data_categories": ["text", "health"]}, "special_category", "Art. 9(1)"),
    (
        {"data_categories": ["genetic"], "special_category": False, "art9_condition": ""},
        "special_category",
        "genetic",
    ),
    ({"data_categories": ["text", CRIMINAL]}, "art10_basis", "Art. 10 ground"),
    (
        {"data_categories": [CRIMINAL], "art10_basis": "member_state_law"},
        "art10_reference",
        "law",
    ),
    (
        {"data_categories": [CRIMINAL], "art10_basis": "custom", "art10_reference": "x"},
        "art10_basis",
        "not one of",
    ),
    ({"art10_basis": "union_law", "art10_reference": "Reg. X"}, "art10_basis", "only data"),
]


@pytest.mark.parametrize(
    ("fields", "key", "phrase"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)]
)
def test_contradictory_or_missing_art9_art10_facts_are_refused(fields, key, phrase):
    with pytest.raises(InvalidInput) as exc:
        register(**fields)
    assert key in exc.value.errors, exc.value.errors
    assert any(phrase in r for r in exc.value.errors[key])


def test_consistent_art9_and_art10_facts_are_recorded():
    ds = register(
        data_categories=["text", "health", CRIMINAL],
        special_category=True,
        art9_condition="9(2)(j)",
        art10_basis="member_state_law",
        art10_reference="§ 1 Forschungsgesetz",
    )
    assert (ds.art10_basis, ds.art10_reference) == ("member_state_law", "§ 1 Forschungsgesetz")


def test_api_names_the_art10_field(api, dpo):
    site = SiteFactory()
    purpose = PurposeFactory()
    body = {
        "site": site.pk,
        "name": "court-decisions",
        "data_categories": ["text", CRIMINAL],
        "lawful_basis": "6(1)(e)",
        "purposes": [purpose.code],
        "retention_until": str(dt.date.today() + dt.timedelta(days=30)),
        "processing_countries": ["EEA"],
    }
    response = api(dpo).post("/api/v1/datasets", body, format="json")
    assert response.status_code == 400
    assert "art10_basis" in response.json() and "art10_reference" in response.json()
    ok = api(dpo).post(
        "/api/v1/datasets",
        {**body, "art10_basis": "official_authority", "art10_reference": "Court order 1/2026"},
        format="json",
    )
    assert ok.status_code == 201, ok.json()
    assert ok.json()["art10_basis"] == "official_authority"
