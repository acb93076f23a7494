"""The project boots: settings load, migrations apply, roles exist, the schema renders."""

import pytest
from django.contrib.auth.models import Group

from fedgov import roles


@pytest.mark.django_db
def test_every_role_exists_as_a_group():
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ALL_ROLES)


@pytest.mark.django_db
def test_openapi_schema_renders(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content
