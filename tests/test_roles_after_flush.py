"""Role groups keep their permissions after a flush, as they were migrated."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from fedgov.apps import role_permissions
from fedgov.roles import ALL_ROLES


def held(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


@pytest.mark.django_db
def test_the_table_is_what_the_migrations_granted():
    table = role_permissions()
    for role in ALL_ROLES:
        assert held(role) == set(table.get(role, [])), role


@pytest.mark.django_db(transaction=True)
def test_a_flush_leaves_every_role_with_its_migrated_permissions():
    before = {role: held(role) for role in ALL_ROLES}
    assert before["DPO"], "the migrations granted the DPO nothing: the test would prove nothing"

    call_command("flush", interactive=False, verbosity=0)

    assert {role: held(role) for role in ALL_ROLES} == before
