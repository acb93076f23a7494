"""Property-based API tests from /api/schema/: no 5xx, and every response matches the schema.

schemathesis generates requests for every operation the OpenAPI schema describes and sends
them through Django's real WSGI stack (auth, permissions, services, exception handler),
authenticated as a DPO by token. The number of examples is bounded so CI stays within a
couple of minutes; raise ``FEDGOV_SCHEMATHESIS_EXAMPLES`` (and ``FEDGOV_SCHEMATHESIS_STEPS``
for the stateful workflows) locally for a deeper search.
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from fedgov import roles
from tests.factories import DatasetFactory, PolicyFactory, RunFactory, SiteFactory, UserFactory

EXAMPLES = int(os.environ.get("FEDGOV_SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(autouse=True)
def key_dir(settings, tmp_path):
    """Keys, certificates and reports the API may create go to tmp_path, never var/."""
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    settings.FEDGOV_REPORT_DIR = tmp_path / "reports"
    settings.FEDGOV_REPORT_CERT_FILE = ""
    settings.FEDGOV_REPORT_KEY_FILE = ""


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """Call the real WSGI handler without it closing the test's database connection.

    Django's own test client does the same: at the end of every request the handler
    closes "old" connections, which on PostgreSQL would end the test's transaction.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def dpo_token(db) -> str:
    user = UserFactory(username="schemathesis-dpo", roles=[roles.DPO])
    return Token.objects.create(user=user).key


@pytest.fixture
def seeded(db):
    """A few rows so generated ids sometimes hit something (ids 1, 2 … are common picks)."""
    site = SiteFactory(slug="st-site")
    dataset = DatasetFactory(site=site)
    RunFactory(policy=PolicyFactory(), datasets=[dataset])


def _load_schema() -> schemathesis.BaseSchema:
    """The schema exactly as /api/schema/ serves it, bound to Django's WSGI application.

    Built at collection (no database is needed to describe the API) because schemathesis'
    lazy ``from_fixture`` loader does not work with this pytest release.
    """
    rendered = OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True))
    loaded = schemathesis.openapi.from_dict(json.loads(rendered))
    loaded.app = get_wsgi_application()
    return loaded


schema = _load_schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db
def test_api_operation_never_fails_and_matches_its_schema(case, dpo_token, seeded):
    case.call_and_validate(headers={"Authorization": f"Token {dpo_token}"}, checks=CHECKS)


STEPS = int(os.environ.get("FEDGOV_SCHEMATHESIS_STEPS", "6"))


@pytest.mark.django_db
def test_api_workflows_along_inferred_links_never_fail(dpo_token, seeded):
    """Stateful: a response's ids feed the next request (create a site, then suspend it...).

    schemathesis infers the links between operations from the schema (a create's ``id``
    is a detail route's path parameter); a run that found none would test nothing.
    """
    from hypothesis.stateful import run_state_machine_as_test

    machine = schema.as_state_machine()
    assert schema.statistic.transitions.total >= 50, "schemathesis inferred almost no links"

    class AuthenticatedWorkflow(machine):
        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Token {dpo_token}"}}

        def validate_response(self, response, case, **kwargs):
            case.validate_response(response, checks=CHECKS)

    run_state_machine_as_test(
        AuthenticatedWorkflow,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
