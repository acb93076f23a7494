"""Shared fixtures: users per role, API clients, and the PostgreSQL marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient

from fedgov import roles
from tests.factories import UserFactory

SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared"


def pytest_collection_modifyitems(config, items):
    # Django's connection vendor is only known once settings load; check it lazily.
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://…")
    for item in items:
        if "postgres" in item.keywords and "postgresql" not in engine:
            item.add_marker(skip_pg)


def require_shared(folder: Path = SHARED_DIR) -> Path:
    """``folder`` when it exists; else skip, or fail when the ``CI`` variable is set."""
    if not folder.is_dir():
        message = f"../shared is absent ({folder}); conformance data cannot be read"
        if os.environ.get("CI"):
            # In CI a missing checkout of the conformance data is a broken build, not a
            # reason to pass without checking the Merkle vectors and OpenNebula schemas.
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture
def shared_dir() -> Path:
    return require_shared()


# Event types the ledger tests append to exercise the ledger itself, not a domain event;
# registered for the test session only (audit/events.py refuses unknown types).
TEST_EVENT_TYPES = (
    "test.after",
    "test.concurrent",
    "test.copy",
    "test.happened",
    "test.leaf",
    "test.metrics",
    "test.parallel",
)


@pytest.fixture(autouse=True, scope="session")
def _test_event_types():
    from audit import events

    for name in TEST_EVENT_TYPES:
        events.register(events.EventType(name, "A test's own event.", required=()))
    yield
    for name in TEST_EVENT_TYPES:
        events.unregister(name)


@pytest.fixture(autouse=True)
def _language_reset():
    """Every test starts and ends in the default language.

    A request through LocaleMiddleware activates the reader's language on the thread and
    nothing deactivates it, so a Polish request in one test would otherwise make the next
    test's PDF Polish (seen: test_i18n_reasons before reports/test_one_truth)."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def make_user(db):
    def _make(*role_names: str, username: str | None = None):
        kwargs = {"roles": role_names}
        if username:
            kwargs["username"] = username
        return UserFactory(**kwargs)

    return _make


@pytest.fixture
def dpo(make_user):
    return make_user(roles.DPO, username="dpo")


@pytest.fixture
def operator(make_user):
    return make_user(roles.OPERATOR, username="operator")


@pytest.fixture
def api(db):
    def _client(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return _client


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(scope="session")
def tsa_server(tmp_path_factory):
    """A real RFC 3161 TSA on loopback (OpenSSL's ``ts -reply``), its own CA made at setup.

    A process of its own, as in the demo: a serving thread left in the test process for
    the whole session would stop later tests from forking (the ledger verifier's worker
    processes refuse to fork beside other threads).
    """
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("tsa")
    process = subprocess.Popen(
        [sys.executable, "-m", "audit.tsa_responder", "--dir", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # "listening http://127.0.0.1:PORT/ ca ..."
        url = line.split()[1] if line.startswith("listening ") else ""
        assert url, f"the TSA did not start: {line!r}"
        yield url, folder
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def tsa_dir(settings, tsa_server):
    """fedgov configured with the loopback TSA; yields its folder (``ca.pem`` pins it)."""
    url, folder = tsa_server
    settings.FEDGOV_TSA_URL = url
    settings.FEDGOV_TSA_CERT_FILES = [folder / "ca.pem"]
    settings.FEDGOV_TSA_TIMEOUT = 10.0
    return folder
