"""The second factor: who may approve, reject or request a signed report without one (nobody).

Every door is tried the way an adversary would: the service with a plain actor, the API
with a session or a token that never passed a code, the admin action, a replayed code.
"""

from __future__ import annotations

import io
import re
import time
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.accounts import demo_accounts_issue
from fedgov.actors import Actor
from fedgov.errors import SecondFactorRequired
from fedgov.second_factor import actor_by_token, require_second_factor
from reports.models import Report
from reports.services import report_generate
from tests.factories import (
    PolicyFactory,
    RoundFactory,
    RunFactory,
    UserFactory,
    login_verified,
    totp_code,
    totp_device,
    verified,
    verified_actor,
)
from training.choices import RoundState
from training.management.output import scenario_person
from training.models import Approval, Round
from training.services.rounds import round_approve, round_reject

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "pw-for-tests-only"


@pytest.fixture(autouse=True)
def fast_hashes(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.FEDGOV_REPORT_DIR = tmp_path / "reports"


def staff(username: str, *role_names: str) -> User:
    return UserFactory(username=username, is_staff=True, roles=role_names)


@pytest.fixture
def awaiting() -> Round:
    requester = staff("alice", roles.OPERATOR)
    run = RunFactory(
        policy=PolicyFactory(requires_approval=True),
        requested_by=requester,
        requested_by_name="alice",
    )
    return RoundFactory(
        run=run,
        number=1,
        state=RoundState.AWAITING_APPROVAL,
        requested_by=requester,
        requested_by_name="alice",
    )


def _unchanged(round_: Round) -> None:
    round_.refresh_from_db()
    assert round_.state == RoundState.AWAITING_APPROVAL
    assert not Approval.objects.filter(round=round_).exists()
    assert not LedgerEntry.objects.filter(
        event_type__in=["round.approval_recorded", "round.approved", "round.rejected"]
    ).exists()


# -- services ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", [round_approve, round_reject])
def test_the_services_refuse_a_person_who_passed_no_second_factor(awaiting, service):
    bob = staff("bob", roles.OPERATOR)
    totp_device(bob)  # having a device is not enough: this session never gave its code
    with pytest.raises(SecondFactorRequired):
        service(actor=Actor.of(bob), round=awaiting, reason="looks fine")
    _unchanged(awaiting)


def test_a_verified_second_operator_approves(awaiting):
    round_approve(actor=verified_actor(staff("bob", roles.OPERATOR)), round=awaiting, reason="ok")
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.APPROVED


def test_requesting_a_signed_report_needs_a_second_factor():
    run = RunFactory()
    legal = staff("lena", roles.LEGAL)
    with pytest.raises(SecondFactorRequired):
        report_generate(actor=Actor.of(legal), run=run)
    assert not Report.objects.exists()
    assert report_generate(actor=verified_actor(legal), run=run).requested_by_name == "lena"


def test_fedgovs_own_processes_are_not_people_and_pass():
    require_second_factor(Actor.system("reports"), act="building a report")


def test_an_actor_from_a_device_of_someone_else_is_not_verified():
    bob, eve = staff("bob", roles.OPERATOR), staff("eve", roles.OPERATOR)
    eve.otp_device = totp_device(bob)  # a session pointing at another person's device
    assert not Actor.of(eve).second_factor


def test_an_unconfirmed_device_does_not_verify():
    bob = staff("bob", roles.OPERATOR)
    device = TOTPDevice.objects.create(user=bob, name="half-enrolled", confirmed=False)
    bob.otp_device = device
    assert not Actor.of(bob).second_factor
    with pytest.raises(SecondFactorRequired):
        actor_by_token(user=bob, token=totp_code(device))


def test_a_code_is_accepted_once_then_refused_as_a_replay():
    bob = staff("bob", roles.OPERATOR)
    code = totp_code(totp_device(bob))
    assert actor_by_token(user=bob, token=code).second_factor
    with pytest.raises(SecondFactorRequired, match="wrong or already used"):
        actor_by_token(user=bob, token=code)


def test_a_code_from_long_ago_is_refused():
    bob = staff("bob", roles.OPERATOR)
    stale = totp_code(totp_device(bob), at=time.time() - 10 * 60)
    with pytest.raises(SecondFactorRequired):
        actor_by_token(user=bob, token=stale)


# -- the API -------------------------------------------------------------------------------


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_the_api_refuses_a_decision_from_a_session_without_a_code(client, awaiting, decision):
    bob = staff("bob", roles.OPERATOR)
    totp_device(bob)
    client.force_login(bob)  # password only
    url = f"/api/v1/runs/{awaiting.run_id}/rounds/1/{decision}"
    response = client.post(url, {"reason": "ok"}, content_type="application/json")
    assert response.status_code == 403, response.content
    assert "second factor" in response.json()["detail"]
    _unchanged(awaiting)


def test_the_api_refuses_a_decision_by_token_which_never_carries_a_second_factor(awaiting):
    bob = staff("bob", roles.OPERATOR)
    totp_device(bob)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    url = f"/api/v1/runs/{awaiting.run_id}/rounds/1/approve"
    assert api.post(url, {"reason": "ok"}, format="json").status_code == 403
    _unchanged(awaiting)


def test_the_api_takes_a_decision_from_a_verified_session(client, awaiting):
    bob = staff("bob", roles.OPERATOR)
    login_verified(client, bob)
    url = f"/api/v1/runs/{awaiting.run_id}/rounds/1/approve"
    response = client.post(url, {"reason": "ok"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == RoundState.APPROVED


def test_the_api_refuses_a_report_request_without_a_code():
    run = RunFactory()
    api = APIClient()
    api.force_authenticate(staff("lena", roles.LEGAL))
    response = api.post("/api/v1/reports", {"run": run.pk}, format="json")
    assert response.status_code == 403
    assert not Report.objects.exists()
    api.force_authenticate(verified(User.objects.get(username="lena")))
    assert api.post("/api/v1/reports", {"run": run.pk}, format="json").status_code == 202


# -- the admin -----------------------------------------------------------------------------


def test_the_admin_action_refuses_an_unverified_approver_with_a_message(client, awaiting):
    bob = staff("bob", roles.OPERATOR)
    client.force_login(bob)
    page = client.post(
        "/admin/training/round/",
        {
            "action": "approve_rounds",
            "_selected_action": [awaiting.pk],
            "apply": "1",
            "reason": "gate table reviewed",
        },
        follow=True,
    )
    assert page.status_code == 200
    assert "needs a second factor" in page.content.decode()
    _unchanged(awaiting)


def test_legal_requests_a_report_in_the_admin_only_after_the_second_factor(client):
    run = RunFactory(name="run-for-legal")
    lena = staff("lena", roles.LEGAL)
    client.force_login(lena)
    page = client.post("/admin/reports/report/add/", {"run": run.pk}, follow=True)
    assert "needs a second factor" in page.content.decode()
    assert not Report.objects.exists()

    login_verified(client, lena)
    page = client.post("/admin/reports/report/add/", {"run": run.pk}, follow=True)
    assert page.redirect_chain[-1][0] == "/admin/reports/report/"
    assert Report.objects.get().run_name == "run-for-legal"


def test_the_report_request_form_names_what_is_missing(client):
    login_verified(client, staff("lena", roles.LEGAL))
    page = client.post("/admin/reports/report/add/", {})
    assert page.status_code == 200 and "Name a run or a period." in page.content.decode()
    assert not Report.objects.exists()


def _login(client, username: str, token: str | None = None):
    data = {"username": username, "password": PASSWORD}
    if token is not None:
        data["otp_token"] = token
    return client.post(LOGIN, data)


def test_login_asks_a_person_with_a_device_for_the_code(client, settings):
    # django-otp slows guessing down after a wrong code (2^n seconds); off here, so the
    # right code straight after the wrong one is judged on its own.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    bob = staff("bob", roles.OPERATOR)
    device = totp_device(bob)
    refused = _login(client, "bob")
    assert refused.status_code == 200 and "enter its current code" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert _login(client, "bob", "000000").status_code == 200
    assert "_auth_user_id" not in client.session
    assert _login(client, "bob", totp_code(device)).status_code == 302
    assert client.get("/admin/").wsgi_request.user.is_verified()


def test_a_code_used_to_sign_in_cannot_sign_in_again(client):
    bob = staff("bob", roles.OPERATOR)
    code = totp_code(totp_device(bob))
    assert _login(client, "bob", code).status_code == 302
    client.logout()
    assert _login(client, "bob", code).status_code == 200


def test_login_then_approve_in_the_admin_with_a_real_code(client, awaiting):
    bob = staff("bob", roles.OPERATOR)
    assert _login(client, "bob", totp_code(totp_device(bob))).status_code == 302
    client.post(
        "/admin/training/round/",
        {"action": "approve_rounds", "_selected_action": [awaiting.pk], "apply": "1",
         "reason": "gate table reviewed"},
    )  # fmt: skip
    awaiting.refresh_from_db()
    assert awaiting.state == RoundState.APPROVED


def test_the_dashboard_login_asks_for_the_code_too(client):
    dora = staff("dora", roles.DPO)
    device = totp_device(dora)
    form = {"username": "dora", "password": PASSWORD}
    refused = client.post("/dashboard/login/", form)
    assert refused.status_code == 200 and "enter its current code" in refused.content.decode()
    signed_in = client.post("/dashboard/login/", {**form, "otp_token": totp_code(device)})
    assert signed_in.status_code == 302
    assert client.get("/dashboard/").wsgi_request.user.is_verified()


def test_a_person_without_a_device_signs_in_with_the_password_and_can_read(client):
    staff("audrey", roles.AUDITOR)
    assert _login(client, "audrey").status_code == 302
    assert client.get("/admin/training/round/").status_code == 200


# -- enrolment -----------------------------------------------------------------------------


def _secret_on(page) -> str:
    return re.search(r'id="totp-secret">([A-Z2-7]+)<', page.content.decode()).group(1)


def _device_for_secret(user: User, secret: str) -> TOTPDevice:
    import base64

    key = base64.b32decode(secret + "=" * (-len(secret) % 8)).hex()
    return TOTPDevice(user=user, key=key)


def test_enrolment_shows_a_secret_once_and_confirms_it_with_a_code(client, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # as in the login test: judge each code alone
    bob = staff("bob", roles.OPERATOR)
    client.force_login(bob)
    first = client.get("/account/two-factor/")
    assert first.status_code == 200 and "<svg" in first.content.decode()
    reloaded = client.get("/account/two-factor/")
    secret = _secret_on(reloaded)
    assert secret != _secret_on(first)  # reloading voids the secret shown before
    assert TOTPDevice.objects.filter(user=bob).count() == 1

    wrong = client.post("/account/two-factor/", {"otp_token": "123456"})
    assert "does not match" in wrong.content.decode()
    assert not TOTPDevice.objects.get(user=bob).confirmed

    code = totp_code(_device_for_secret(bob, secret))
    done = client.post("/account/two-factor/", {"otp_token": code}, follow=True)
    assert TOTPDevice.objects.get(user=bob).confirmed
    page = done.content.decode()
    assert "confirmed authenticator" in page and 'id="totp-secret"' not in page
    assert done.wsgi_request.user.is_verified()


def test_enrolment_needs_a_login(client):
    response = client.get("/account/two-factor/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# -- issuing accounts ----------------------------------------------------------------------


def test_createuser_totp_prints_a_provisioning_uri_that_yields_valid_codes():
    out = io.StringIO()
    call_command("createuser", "olga", "--role", roles.OPERATOR, "--totp", stdout=out)
    uri = re.search(r"otpauth://\S+", out.getvalue()).group(0)
    parsed = urlparse(uri)
    assert parsed.netloc == "totp" and parse_qs(parsed.query)["issuer"] == ["fedgov"]
    olga = User.objects.get(username="olga")
    device = _device_for_secret(olga, parse_qs(parsed.query)["secret"][0])
    assert actor_by_token(user=olga, token=totp_code(device)).second_factor


def test_createuser_without_totp_says_where_to_enrol():
    out = io.StringIO()
    call_command("createuser", "lena", "--role", roles.LEGAL, stdout=out)
    assert "/account/two-factor/" in out.getvalue()
    assert not TOTPDevice.objects.exists()


def test_demo_accounts_get_an_authenticator_secret_once_where_their_role_needs_one():
    first = {login.username: login for login in demo_accounts_issue()}
    needing = {"demo-dpo", "demo-operator", "demo-operator-2", "demo-legal"}
    assert {name for name, login in first.items() if login.totp_secret} == needing
    assert first["demo-auditor"].totp_secret is None
    assert not any(login.totp_secret for login in demo_accounts_issue())


def test_the_demo_script_proves_a_code_and_leaves_no_device_behind():
    actor = scenario_person("demo-operator-2", roles.OPERATOR, second_factor=True)
    assert actor.second_factor
    assert not TOTPDevice.objects.filter(user__username="demo-operator-2").exists()
