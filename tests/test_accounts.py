"""Accounts people log in with: ``manage.py createuser`` and the demo's one-per-role logins."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from fedgov import roles
from fedgov.accounts import DEMO_ACCOUNTS, demo_accounts_issue
from sites.models import SiteSteward
from tests.factories import SiteFactory
from training.management.output import scenario_person

pytestmark = pytest.mark.django_db


def _createuser(*args: str, stdin: str | None = None, monkeypatch=None) -> str:
    out = io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command("createuser", *args, stdout=out)
    return out.getvalue()


def test_createuser_makes_a_staff_account_in_the_role_with_a_working_random_password():
    out = _createuser("alice", "--role", roles.LEGAL)
    password = out.split("password (shown once): ")[1].splitlines()[0].strip()
    user = User.objects.get(username="alice")
    assert user.check_password(password) and user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == [roles.LEGAL]


def test_createuser_binds_a_steward_to_exactly_their_site():
    site = SiteFactory(slug="de-legal")
    _createuser("stew", "--role", roles.SITE_STEWARD, "--site", "de-legal")
    assert SiteSteward.objects.get(user__username="stew").site == site


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("s", "--role", roles.SITE_STEWARD), "needs --site"),
        (("s", "--role", roles.SITE_STEWARD, "--site", "nowhere"), "no site with slug"),
        (("d", "--role", roles.DPO, "--site", "de-legal"), "only for the 'Site steward'"),
        (("   ", "--role", roles.DPO), "must not be empty"),
    ],
)
def test_createuser_refuses_bad_requests_with_the_reason_and_writes_nothing(args, reason):
    SiteFactory(slug="de-legal")
    with pytest.raises(CommandError, match=reason):
        _createuser(*args)
    assert not User.objects.exists()


def test_createuser_refuses_the_service_role_and_unknown_roles():
    for role in (roles.SERVICE, "Admin"):
        with pytest.raises(CommandError, match="invalid choice"):
            _createuser("x", "--role", role)
    assert not User.objects.exists()


def test_createuser_refuses_an_existing_name_and_a_weak_password(monkeypatch):
    _createuser("bob", "--role", roles.AUDITOR)
    with pytest.raises(CommandError, match="already exists"):
        _createuser("bob", "--role", roles.DPO)
    with pytest.raises(CommandError, match="password refused"):
        _createuser(
            "carol",
            "--role",
            roles.DPO,
            "--password-stdin",
            stdin="12345\n",
            monkeypatch=monkeypatch,
        )
    assert not User.objects.filter(username="carol").exists()


def test_demo_accounts_get_passwords_once_including_people_make_demo_created():
    # make demo's people exist with no usable password and are not staff.
    scenario_person("demo-dpo", roles.DPO)
    site = SiteFactory(slug="es-blogs")
    steward = scenario_person("steward-es-blogs", roles.SITE_STEWARD)
    SiteSteward.objects.create(user=steward.user, site=site)

    first = demo_accounts_issue()
    by_name = {login.username: login for login in first}
    assert set(by_name) == {name for name, _ in DEMO_ACCOUNTS} | {"steward-es-blogs"}
    assert {login.role for login in first} == {
        roles.DPO,
        roles.OPERATOR,
        roles.LEGAL,
        roles.AUDITOR,
        roles.SITE_STEWARD,
    }
    for login in first:
        user = User.objects.get(username=login.username)
        assert user.check_password(login.password) and user.is_staff, login.username
        assert user.groups.filter(name=login.role).exists()
    assert len({login.password for login in first}) == len(first)

    second = demo_accounts_issue()
    assert [login.password for login in second] == [None] * len(second)
    # The first passwords still work: a second start never rotates them silently.
    for login in first:
        assert User.objects.get(username=login.username).check_password(login.password)
