"""Role × admin page and action: what each role's group permissions let it do in the admin.

The expected sets are written out here by hand, not derived from the permissions
migration, so a change to either one fails this test. Every role's user is staff (as
``manage.py createuser`` makes them); a page a role may not open answers 403.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from fedgov import roles
from sites.choices import SiteStatus
from sites.models import Site, SiteSteward
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    PurposeFactory,
    RoundFactory,
    RunFactory,
    SiteFactory,
    UserFactory,
)
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

DPO, LEGAL, AUDITOR, OPERATOR = roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR
STEWARD, SERVICE = roles.SITE_STEWARD, roles.SERVICE
EVERY_ROLE = (DPO, LEGAL, AUDITOR, OPERATOR, STEWARD, SERVICE)
READ_ALL = {DPO, LEGAL, AUDITOR}

# admin page (app/model) → roles that may open its list
VIEW = {
    "sites/site": READ_ALL | {OPERATOR, STEWARD},
    "sites/sitesteward": READ_ALL,
    "sites/purpose": READ_ALL | {OPERATOR, STEWARD},
    "sites/dataset": READ_ALL | {OPERATOR, STEWARD},
    "sites/residencypolicy": READ_ALL | {OPERATOR},
    "sites/consent": READ_ALL | {STEWARD},
    "sites/consentevent": READ_ALL | {STEWARD},
    "training/trainingrun": READ_ALL | {OPERATOR},
    "training/round": READ_ALL | {OPERATOR},
    "training/gatedecision": READ_ALL | {OPERATOR},
    "training/dpia": READ_ALL | {OPERATOR},
    "audit/ledgerentry": READ_ALL | {OPERATOR},
    "audit/checkpoint": READ_ALL | {OPERATOR},
    "audit/legalhold": READ_ALL,
    "reports/report": READ_ALL,
    "dashboard/ledgerverification": READ_ALL,
    "opennebula/workload": READ_ALL | {OPERATOR},
    "sites/adequacylistversion": READ_ALL,
    "audit/trustedkey": READ_ALL | {OPERATOR},
    "audit/cosignature": READ_ALL | {OPERATOR},
    "auth/user": set(),
    "auth/group": set(),
    "authtoken/tokenproxy": set(),
    # Authenticator devices: an administrator's (superuser's) page, no role's.
    "otp_totp/totpdevice": set(),
}
# admin page → roles that may open its add form
ADD = {
    "sites/site": {DPO},
    "sites/sitesteward": {DPO},
    "sites/purpose": {DPO},
    "sites/dataset": {DPO},
    "sites/residencypolicy": {DPO},
    "training/trainingrun": {DPO, OPERATOR},
    "training/dpia": {DPO},
    "audit/legalhold": {DPO, LEGAL},
    "sites/adequacylistversion": {DPO},
    # "Add" a report is requesting one (the service then asks for the second factor).
    "reports/report": {DPO, LEGAL},
}
# (admin page, action) → roles offered the action
ACTIONS = {
    ("sites/site", "suspend_sites"): {DPO},
    ("sites/site", "activate_sites"): {DPO},
    ("sites/dataset", "withdraw_datasets"): {DPO},
    ("sites/residencypolicy", "publish_policies"): {DPO},
    ("sites/residencypolicy", "new_versions"): {DPO},
    ("training/dpia", "approve_dpias"): {DPO},
    ("training/trainingrun", "start_next_rounds"): {DPO, OPERATOR},
    ("training/round", "approve_rounds"): {DPO, OPERATOR},
    ("training/round", "reject_rounds"): {DPO, OPERATOR},
    ("training/round", "abort_rounds"): {DPO, OPERATOR},
    ("audit/legalhold", "release_holds"): {DPO, LEGAL},
}


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    # The users sign in with force_login; the default hasher costs ~0.3 s per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world():
    home, other = SiteFactory(slug="home"), SiteFactory(slug="other")
    purpose = PurposeFactory()
    home_data = DatasetFactory(site=home, name="home-data", purposes=[purpose])
    other_data = DatasetFactory(site=other, name="other-data", purposes=[purpose])
    policy = PolicyFactory(requires_dpia=False)
    run = RunFactory(policy=policy, purpose=purpose, datasets=[home_data, other_data])
    DpiaFactory(run=run)
    RoundFactory(run=run)
    ConsentFactory(dataset=home_data, purpose=purpose, subject_pseudonym="home-s0001")
    ConsentFactory(dataset=other_data, purpose=purpose, subject_pseudonym="other-s0001")
    users = {
        role: UserFactory(
            username=f"u-{role.lower().replace(' ', '-')}", is_staff=True, roles=[role]
        )
        for role in EVERY_ROLE
    }
    SiteSteward.objects.create(user=users[STEWARD], site=home)
    return {
        "users": users,
        "home": home,
        "other": other,
        "purpose": purpose,
        "policy": policy,
        "home_data": home_data,
        "other_data": other_data,
    }


def _client(client, world, role):
    client.force_login(world["users"][role])
    return client


def test_role_groups_hold_permissions_from_the_migration():
    # The bug: groups with no permissions. Each human role now holds some.
    for role in (DPO, LEGAL, AUDITOR, OPERATOR, STEWARD):
        assert Group.objects.get(name=role).permissions.exists(), role
    assert not Group.objects.get(name=SERVICE).permissions.exists()


def test_auditor_holds_only_view_permissions():
    codenames = Group.objects.get(name=AUDITOR).permissions.values_list("codename", flat=True)
    assert codenames and all(c.startswith("view_") for c in codenames)


@pytest.mark.parametrize("role", EVERY_ROLE)
@pytest.mark.parametrize("page", sorted(VIEW))
def test_changelist_matrix(client, world, role, page):
    response = _client(client, world, role).get(
        reverse(f"admin:{page.replace('/', '_')}_changelist")
    )
    expected = 200 if role in VIEW[page] else 403
    assert response.status_code == expected, (role, page, response.status_code)


@pytest.mark.parametrize("role", EVERY_ROLE)
@pytest.mark.parametrize("page", sorted(VIEW))
def test_add_page_matrix(client, world, role, page):
    response = _client(client, world, role).get(reverse(f"admin:{page.replace('/', '_')}_add"))
    expected = 200 if role in ADD.get(page, set()) else 403
    assert response.status_code == expected, (role, page, response.status_code)


@pytest.mark.parametrize("role", EVERY_ROLE)
@pytest.mark.parametrize(("page", "action"), sorted(ACTIONS))
def test_action_matrix(world, role, page, action):
    app_label, model_name = page.split("/")
    model_admin = next(
        a
        for m, a in admin.site._registry.items()
        if m._meta.app_label == app_label and m._meta.model_name == model_name
    )
    request = RequestFactory().get("/")
    request.user = world["users"][role]
    offered = action in model_admin.get_actions(request)
    assert offered == (role in ACTIONS[(page, action)]), (role, page, action)


@pytest.mark.parametrize("role", [AUDITOR, LEGAL, OPERATOR, STEWARD])
def test_a_posted_action_from_a_role_without_it_changes_nothing(client, world, role):
    home = world["home"]
    response = _client(client, world, role).post(
        reverse("admin:sites_site_changelist"),
        {"action": "suspend_sites", "_selected_action": [home.pk]},
    )
    assert response.status_code in (200, 302, 403)
    home.refresh_from_db()
    assert home.status == SiteStatus.ACTIVE


@pytest.mark.parametrize("role", [AUDITOR, LEGAL, OPERATOR])
def test_readers_cannot_change_a_site_by_posting_its_form(client, world, role):
    home = world["home"]
    url = reverse("admin:sites_site_change", args=[home.pk])
    response = _client(client, world, role).post(url, {"organisation": "Hijacked"})
    assert response.status_code == 403
    assert Site.objects.get(pk=home.pk).organisation != "Hijacked"


def test_the_operator_adds_a_training_run_in_the_admin(client, world):
    c = _client(client, world, OPERATOR)
    response = c.post(
        reverse("admin:training_trainingrun_add"),
        {
            "name": "admin-run",
            "purpose": world["purpose"].pk,
            "datasets": [world["home_data"].pk, world["other_data"].pk],
            "policy": world["policy"].pk,
            "aggregator_country": "DE",
            "num_rounds": 2,
            "dp_mechanism": "none",
            "on_refusal": "skip",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    run = TrainingRun.objects.get(name="admin-run")
    assert run.requested_by_name == world["users"][OPERATOR].username


@pytest.mark.parametrize("role", [OPERATOR, DPO, LEGAL, AUDITOR])
def test_the_dashboard_opens_for_operators_and_record_readers(client, world, role):
    assert _client(client, world, role).get("/dashboard/").status_code == 200


@pytest.mark.parametrize("role", [STEWARD, SERVICE])
def test_the_dashboard_refuses_stewards_and_the_service(client, world, role):
    assert _client(client, world, role).get("/dashboard/").status_code == 403


@pytest.mark.parametrize(
    ("page", "own", "foreign"),
    [
        ("sites_site", "home", "other"),
        ("sites_dataset", "home-data", "other-data"),
        ("sites_consent", "home-s0001", "other-s0001"),
    ],
)
def test_a_steward_sees_only_their_own_sites_rows(client, world, page, own, foreign):
    c = _client(client, world, STEWARD)
    html = c.get(reverse(f"admin:{page}_changelist")).content.decode()
    assert own in html and foreign not in html
    other_site = world["other"]
    assert c.get(reverse("admin:sites_site_change", args=[other_site.pk])).status_code == 302
    assert (
        c.get(reverse("admin:sites_dataset_change", args=[world["other_data"].pk])).status_code
        == 302
    )


def test_the_site_list_of_a_reader_shows_every_site(client, world):
    html = (
        _client(client, world, AUDITOR).get(reverse("admin:sites_site_changelist")).content.decode()
    )
    assert "home" in html and "other" in html
