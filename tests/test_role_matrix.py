"""The role × endpoint matrix: who may call what on the records API.

``OK`` means the role check let the call through (any status but 401/403/404/405, no
server error: validation may still say 400 or a state 409). A site steward belongs to
the site of ``{dataset}``; ``{other_dataset}`` belongs to another site.
"""

from __future__ import annotations

import datetime as dt

import pytest

from fedgov import roles
from sites.choices import PolicyStatus
from sites.models import SiteSteward
from tests.factories import (
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    PurposeFactory,
    RunFactory,
    SiteFactory,
    UserFactory,
)
from training.choices import DpiaStatus

pytestmark = pytest.mark.django_db

OK = "ok"
ANON = "anonymous"
DPO, LEGAL, AUDITOR, OPERATOR = roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR
STEWARD, SERVICE = roles.SITE_STEWARD, roles.SERVICE
EVERY_ROLE = (DPO, LEGAL, AUDITOR, OPERATOR, STEWARD, SERVICE, ANON)
RECORD_READERS = {DPO, LEGAL, AUDITOR, OPERATOR}
NEXT_YEAR = str(dt.date.today() + dt.timedelta(days=365))
GRANT = [
    {
        "subject_pseudonym": "s1",
        "purpose": "topics",
        "kind": "grant",
        "occurred_at": "2026-01-05T09:00:00Z",
    }
]

# (method, path, body, roles allowed, {role: other expected status})
MATRIX = [
    ("get", "/sites", None, RECORD_READERS | {STEWARD}, {}),
    ("get", "/sites/{other_site}", None, RECORD_READERS | {STEWARD}, {STEWARD: 404}),
    ("post", "/sites", {}, {DPO}, {}),
    ("patch", "/sites/{site}", {"organisation": "New name"}, {DPO}, {}),
    ("post", "/sites/{site}/suspend", {"reason": "review"}, {DPO}, {}),
    ("post", "/sites/{site}/activate", {"reason": "review"}, {DPO}, {}),
    ("get", "/purposes", None, RECORD_READERS | {STEWARD}, {}),
    ("post", "/purposes", {"code": "new", "name": "New"}, {DPO}, {}),
    ("get", "/datasets", None, RECORD_READERS | {STEWARD}, {}),
    ("get", "/datasets/{dataset}", None, RECORD_READERS | {STEWARD}, {}),
    ("get", "/datasets/{other_dataset}", None, RECORD_READERS | {STEWARD}, {STEWARD: 404}),
    ("post", "/datasets", {}, {DPO}, {}),
    ("patch", "/datasets/{dataset}", {"record_count": 3}, {DPO}, {}),
    ("post", "/datasets/{dataset}/withdraw", {"reason": "ends"}, {DPO}, {}),
    ("post", "/datasets/{dataset}/consent-events", GRANT, {DPO, STEWARD}, {}),
    ("post", "/datasets/{other_dataset}/consent-events", GRANT, {DPO, STEWARD}, {STEWARD: 404}),
    ("get", "/policies", None, RECORD_READERS, {}),
    ("get", "/policies/{published}", None, RECORD_READERS, {}),
    ("post", "/policies", {"name": "p2", "allowed_areas": ["EEA"]}, {DPO}, {}),
    ("patch", "/policies/{draft}", {"min_eligible_sites": 2}, {DPO}, {}),
    ("post", "/policies/{draft}/publish", None, {DPO}, {}),
    ("post", "/policies/{published}/new-version", {}, {DPO}, {}),
    ("get", "/consents", None, {DPO, LEGAL, AUDITOR, STEWARD}, {}),
    ("get", "/consent-events", None, {DPO, LEGAL, AUDITOR, STEWARD}, {}),
    ("get", "/runs", None, RECORD_READERS | {SERVICE}, {}),
    ("get", "/runs/{run}", None, RECORD_READERS | {SERVICE}, {}),
    ("post", "/runs", {}, {OPERATOR, DPO}, {}),
    ("get", "/dpias", None, RECORD_READERS, {}),
    ("post", "/dpias", {}, {DPO}, {}),
    ("post", "/dpias/{dpia}/approve", {"valid_until": NEXT_YEAR}, {DPO}, {}),
    ("get", "/rounds", None, RECORD_READERS | {SERVICE}, {}),
    # Engineer "gate"'s endpoint (training/api/gate.py); the row pins its roles.
    ("post", "/runs/{run}/rounds/1/gate", None, {OPERATOR, SERVICE, DPO}, {}),
]


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Every cell makes a user who never signs in with a password; the default hasher
    # costs about half a second each (over two minutes for this file).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world():
    purpose = PurposeFactory(code="topics")
    site, other_site = SiteFactory(slug="own-site"), SiteFactory(slug="other-site")
    dataset = DatasetFactory(site=site, purposes=[purpose])
    other_dataset = DatasetFactory(site=other_site, purposes=[purpose])
    published = PolicyFactory(name="eu", version=1, status=PolicyStatus.PUBLISHED)
    draft = PolicyFactory(name="draft-policy", version=1, status=PolicyStatus.DRAFT)
    run = RunFactory(purpose=purpose, policy=published, datasets=[dataset, other_dataset])
    dpia = DpiaFactory(run=run, status=DpiaStatus.DRAFT, approved_at=None, valid_until=None)
    return {
        "site": site.pk,
        "other_site": other_site.pk,
        "dataset": dataset.pk,
        "other_dataset": other_dataset.pk,
        "published": published.pk,
        "draft": draft.pk,
        "run": run.pk,
        "dpia": dpia.pk,
    }


def client_for(api, role: str, site_id: int):
    if role == ANON:
        return api()
    user = UserFactory(username=f"as-{role.lower().replace(' ', '-')}", roles=[role])
    if role == STEWARD:
        SiteSteward.objects.create(user=user, site_id=site_id)
    return api(user)


@pytest.mark.parametrize("role", EVERY_ROLE)
@pytest.mark.parametrize(
    ("method", "path", "body", "allowed", "special"),
    MATRIX,
    ids=[f"{m.upper()} {p}" for m, p, *_ in MATRIX],
)
def test_role_matrix(api, world, role, method, path, body, allowed, special):
    client = client_for(api, role, world["site"])
    url = "/api/v1" + path.format(**world)
    kwargs = {"format": "json"} if body is not None else {}
    response = getattr(client, method)(url, body, **kwargs)

    if role in special:
        assert response.status_code == special[role], response.content[:300]
    elif role in allowed:
        assert response.status_code not in (401, 403, 404, 405), response.content[:300]
        assert response.status_code < 500
    elif role == ANON:
        assert response.status_code in (401, 403)
    else:
        assert response.status_code == 403, response.content[:300]


def test_matrix_covers_every_records_route():
    covered = {path.split("/")[1] for _, path, *_ in MATRIX}
    prefixes = {
        "sites",
        "purposes",
        "datasets",
        "policies",
        "consents",
        "consent-events",
        "runs",
        "dpias",
        "rounds",
    }
    assert prefixes <= covered
