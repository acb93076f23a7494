"""Sign-in hardening: login lockout (django-axes), session idle timeout, deploy checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

from fedgov import roles
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def _login(client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password})


def test_a_username_is_locked_out_after_too_many_failed_logins(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    UserFactory(username="victim", is_staff=True, roles=[roles.OPERATOR])
    UserFactory(username="bystander", is_staff=True, roles=[roles.OPERATOR])
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "victim", "wrong")

    # The right password no longer gets in: the account is locked, not the password wrong.
    locked = _login(client, "victim", "pw-for-tests-only")
    assert locked.status_code in (403, 429)
    assert "_auth_user_id" not in client.session
    # From a different address too: the lock is on the username.
    other = client.__class__(REMOTE_ADDR="10.9.8.7")
    assert _login(other, "victim", "pw-for-tests-only").status_code in (403, 429)
    # Another user at another address is not affected (this address is locked as well).
    elsewhere = client.__class__(REMOTE_ADDR="10.1.1.1")
    assert _login(elsewhere, "bystander", "pw-for-tests-only").status_code == 302


def test_a_success_before_the_limit_resets_the_count(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    UserFactory(username="typo", is_staff=True, roles=[roles.OPERATOR])
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "typo", "wrong")
    assert _login(client, "typo", "pw-for-tests-only").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "typo", "wrong")
    assert _login(client, "typo", "pw-for-tests-only").status_code == 302


def test_sessions_end_after_idle_time_and_with_the_browser():
    assert settings.SESSION_COOKIE_AGE <= 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST  # each request renews: an idle timeout
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    assert settings.SESSION_COOKIE_HTTPONLY


def _deploy_check(tmp_path, *, tags=("--tag", "security"), **env_changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDGOV_", "DEBUG"))}
    env.update(
        FEDGOV_VAR_DIR=str(tmp_path),
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="fedgov.example.org",
        DEBUG="0",
        **env_changes,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", *tags, "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = _deploy_check(tmp_path, FEDGOV_HTTPS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_full_check_deploy_is_clean_including_the_api_schema(tmp_path):
    # Every check, not only security: drf-spectacular's W002 ("unable to guess
    # serializer") is a warning here for any API view the schema cannot describe.
    result = _deploy_check(tmp_path, tags=(), FEDGOV_HTTPS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "W002" not in result.stdout + result.stderr


def test_check_deploy_fails_without_https_settings(tmp_path):
    # The same command must be able to fail: without FEDGOV_HTTPS cookies are not secure.
    result = _deploy_check(tmp_path)
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stderr + result.stdout


def test_one_address_trying_many_usernames_is_locked_out(client, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(client, f"guess{n}", "wrong")
    UserFactory(username="real", is_staff=True, roles=[roles.OPERATOR])
    assert _login(client, "real", "pw-for-tests-only").status_code in (403, 429)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "1.1.1.1", "127.0.0.1"),  # no proxy: the header is the client's own claim
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a spoofed entry left of the proxy's
        (2, "203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, "10.0.0.2", "127.0.0.1"),  # shorter than the proxy chain: not trusted
    ],
)
def test_the_client_address_trusts_only_the_configured_proxies(
    rf, settings, proxies, forwarded, expected
):
    from fedgov.client_ip import client_ip

    settings.FEDGOV_TRUSTED_PROXIES = proxies
    request = rf.get("/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="127.0.0.1")
    assert client_ip(request) == expected


@pytest.mark.parametrize("page", ["/admin/login/", "/dashboard/login/"])
def test_every_page_carries_a_same_site_content_security_policy(client, page):
    policy = client.get(page)["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no other host
    assert "http" not in policy and "*" not in policy
