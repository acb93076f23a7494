"""The DPF listing age has one bound: the service's, which the API's serializer reads.

The API must bound every integer it takes (tests/test_hostile_input.py), and the service
must bound it too (scenarios and the admin call it directly). Both read
``MAX_DPF_LISTING_AGE_DAYS``; this checks that they refuse the same values, naming the
same field with the same reason, and accept the same values.
"""

from __future__ import annotations

import pytest

from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites import services
from sites.serializers import PolicyChangesSerializer

FIELD = "dpf_listing_max_age_days"
LIMIT = services.MAX_DPF_LISTING_AGE_DAYS

# JSON values a caller can send. Strings of digits and integral floats ("12", 12.0) are
# left out on purpose: DRF's IntegerField reads them as numbers before the service sees
# them, so the API accepts what a direct service call with the raw value would refuse.
VALUES = [
    -(2**63),
    -1,
    0,
    1,
    2,
    90,
    LIMIT - 1,
    LIMIT,
    LIMIT + 1,
    400,
    2**31 - 1,
    2**31,
    2**63,
    10**30,
    1.5,
    True,
    False,
    None,
    "abc",
    "",
    "x" * 2000,
    [],
    {},
]


def service_errors(value):
    try:
        services.policy_create_draft(
            actor=Actor.system("tests"), name="eu", allowed_areas=["EEA"], **{FIELD: value}
        )
    except InvalidInput as exc:
        return exc.errors.get(FIELD)
    return None


def api_errors(api, dpo, value):
    response = api(dpo).post(
        "/api/v1/policies",
        {"name": "eu-api", "allowed_areas": ["EEA"], FIELD: value},
        format="json",
    )
    if response.status_code == 201:
        return None
    assert response.status_code == 400, response.content
    return response.json().get(FIELD)


def test_the_serializer_reads_the_services_bound():
    field = PolicyChangesSerializer().fields[FIELD]
    assert (field.min_value, field.max_value) == (1, LIMIT)


@pytest.mark.django_db
@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:20] for v in VALUES])
def test_api_and_service_refuse_the_same_ages_with_the_same_reason(api, dpo, value):
    from_service = service_errors(value)
    from_api = api_errors(api, dpo, value)
    assert from_api == from_service, (value, from_api, from_service)


@pytest.mark.django_db
def test_the_bound_is_the_one_in_force(api, dpo):
    assert service_errors(LIMIT) is None
    assert api_errors(api, dpo, LIMIT + 1) == [f"must be at most {LIMIT}"]
