"""The full role × endpoint matrix (issue 7): every route under /api/v1/ and /dashboard/.

Each row names a method, a path template, a body, the roles the endpoint lets through and,
per role, any other exact status (a site steward gets a 404 for another site's object,
because the queryset hides it). Every (row, role) cell is one test:

* an allowed role gets past the role check: no 401/403/404/405 and no server error
  (a 400 for a body the endpoint refuses, or a 409 for a state, still means "allowed");
* an authenticated role that is not allowed gets exactly 403;
* anonymous gets exactly 403 from the API: SessionAuthentication is the first
  authentication class and sends no ``WWW-Authenticate`` header, so DRF answers
  "not authenticated" with 403, not 401;
* the dashboard sends anonymous visitors to its login page (302) and refuses other
  roles with 403.

``test_matrix_covers_every_route`` walks Django's URL resolver, so a new route or a new
method on an old route fails until a row covers it.

The objects every cell needs (a run played through the real gate and services, a signed
report, a ledger with a checkpoint) are built once for the module inside a transaction
that is rolled back at the end; each cell runs in its own savepoint on top of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import TestCase, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from audit import selectors as ledger_selectors
from audit.retention import legal_hold_place
from audit.services import checkpoint_create
from fedgov import roles
from fedgov.actors import Actor
from reports.services import report_build, report_generate
from sites.choices import PolicyStatus, SiteStatus
from sites.models import Consent, ConsentEvent, ResidencyPolicy, SiteSteward
from sites.services import consent_record_batch
from tests.factories import (
    DpiaFactory,
    PolicyFactory,
    RunFactory,
    SiteFactory,
    UserFactory,
    login_verified,
    verified,
    verified_actor,
)
from tests.reports.conftest import play_round
from tests.training.flower.conftest import governed_scenario
from training.choices import DpiaStatus, RoundState
from training.models import Round
from training.services.gate import round_gate
from training.services.rounds import round_route_after_gate

ANON = "anonymous"
DPO, LEGAL, AUDITOR, OPERATOR = roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR
STEWARD, SERVICE = roles.SITE_STEWARD, roles.SERVICE
EVERY_ROLE = (DPO, LEGAL, OPERATOR, STEWARD, AUDITOR, SERVICE, ANON)
PEOPLE = frozenset({DPO, LEGAL, AUDITOR, OPERATOR, STEWARD})
EVERYONE = frozenset(EVERY_ROLE)
RECORD_READERS = frozenset({DPO, LEGAL, AUDITOR, OPERATOR})
LEDGER_READERS = frozenset({AUDITOR, DPO, LEGAL})  # issue 3: read-only API
HOLD_KEEPERS = frozenset({LEGAL, DPO})  # issue 7: place and release legal holds
REPORT_ROLES = frozenset({LEGAL, DPO, AUDITOR})  # issue 7: reports, Art. 30, lineage
# Operators open the dashboard too (issue #18).
DASHBOARD_ROLES = frozenset({DPO, LEGAL, AUDITOR, OPERATOR})
ROUND_DECIDERS = frozenset({OPERATOR, DPO})

PURPOSE = "topic-classification"  # tests.factories.PurposeFactory's code
OWN_SLUG = "de-legal"  # the site the matrix's steward acts for
TODAY = dt.date.today()
NEXT_YEAR = str(TODAY + dt.timedelta(days=365))
GRANT = [
    {
        "subject_pseudonym": "de-legal-s0200",
        "purpose": PURPOSE,
        "kind": "grant",
        "occurred_at": "2026-01-05T09:00:00Z",
    }
]
REASON = {"reason": "reviewed for the role matrix"}
LOGIN_PAGE = "/dashboard/login/"


@dataclasses.dataclass(frozen=True)
class Row:
    """One endpoint (method + path) and who may call it.

    ``ok`` pins the exact status of an allowed call where "not refused" is not enough:
    the dashboard answers a refusal with a redirect, so a redirect alone proves nothing.
    ``location`` is where an allowed call's redirect must point.
    """

    method: str
    path: str
    allowed: frozenset[str]
    body: object = None
    special: dict[str, int] = dataclasses.field(default_factory=dict)
    ok: int | None = None
    location: str | None = None

    @property
    def dashboard(self) -> bool:
        return self.path.startswith("/dashboard/")

    @property
    def url_template(self) -> str:
        return self.path if self.dashboard else "/api/v1" + self.path

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path}"


def row(method: str, path: str, allowed, body=None, **kwargs) -> Row:
    return Row(method, path, frozenset(allowed), body, **kwargs)


SITE_BODY = {
    "slug": "new-site",
    "organisation": "New Organisation",
    "country": "FR",
    "compute_country": "FR",
    "contact_email": "dpo@new-site.example",
    "agreement_type": "joint_controller",
    "agreement_document_hash": "a" * 64,
    "agreement_valid_from": str(TODAY),
    "agreement_valid_until": NEXT_YEAR,
}
DATASET_BODY_KEYS = {
    "name": "new-corpus",
    "data_categories": ["text"],
    "lawful_basis": "6(1)(a)",
    "purposes": [PURPOSE],
    "retention_until": NEXT_YEAR,
    "processing_countries": ["EEA"],
}

# Path templates take their ids from the ``world`` fixture below.
MATRIX = [
    # --- the API root (DRF's DefaultRouter): any signed-in user may list the routes.
    row("get", "/", PEOPLE | {SERVICE}),
    # --- sites
    row("get", "/sites", RECORD_READERS | {STEWARD}),
    row("post", "/sites", {DPO}, SITE_BODY),
    row("get", "/sites/{site}", RECORD_READERS | {STEWARD}),
    row("get", "/sites/{other_site}", RECORD_READERS | {STEWARD}, special={STEWARD: 404}),
    row("patch", "/sites/{site}", {DPO}, {"organisation": "New name"}),
    row("post", "/sites/{site}/suspend", {DPO}, REASON),
    row("post", "/sites/{suspended_site}/activate", {DPO}, REASON),
    # --- purposes
    row("get", "/purposes", RECORD_READERS | {STEWARD}),
    row("post", "/purposes", {DPO}, {"code": "new", "name": "New"}),
    row("get", "/purposes/{purpose}", RECORD_READERS | {STEWARD}),
    # --- datasets
    row("get", "/datasets", RECORD_READERS | {STEWARD}),
    row("post", "/datasets", {DPO}, {"site": "{site}", **DATASET_BODY_KEYS}),
    row("get", "/datasets/{dataset}", RECORD_READERS | {STEWARD}),
    row("get", "/datasets/{other_dataset}", RECORD_READERS | {STEWARD}, special={STEWARD: 404}),
    row("patch", "/datasets/{dataset}", {DPO}, {"record_count": 3}),
    row("post", "/datasets/{dataset}/withdraw", {DPO}, REASON),
    row("post", "/datasets/{dataset}/consent-events", {DPO, STEWARD}, GRANT),
    row(
        "post",
        "/datasets/{other_dataset}/consent-events",
        {DPO, STEWARD},
        GRANT,
        special={STEWARD: 404},
    ),
    # --- residency policies
    row("get", "/policies", RECORD_READERS),
    row("post", "/policies", {DPO}, {"name": "p2", "allowed_areas": ["EEA"]}),
    row("get", "/policies/{published}", RECORD_READERS),
    row("patch", "/policies/{draft}", {DPO}, {"min_eligible_sites": 2}),
    row("post", "/policies/{draft}/publish", {DPO}),
    row("post", "/policies/{published}/new-version", {DPO}, {}),
    # --- consents: no Operator (data minimisation), a steward only its own site's
    row("get", "/consents", {DPO, LEGAL, AUDITOR, STEWARD}),
    row("get", "/consents/{consent}", {DPO, LEGAL, AUDITOR, STEWARD}),
    row("get", "/consents/{other_consent}", {DPO, LEGAL, AUDITOR, STEWARD}, special={STEWARD: 404}),
    row("get", "/consent-events", {DPO, LEGAL, AUDITOR, STEWARD}),
    row("get", "/consent-events/{consent_event}", {DPO, LEGAL, AUDITOR, STEWARD}),
    row(
        "get",
        "/consent-events/{other_consent_event}",
        {DPO, LEGAL, AUDITOR, STEWARD},
        special={STEWARD: 404},
    ),
    # --- runs, DPIAs, rounds
    row("get", "/runs", RECORD_READERS | {SERVICE}),
    row(
        "post",
        "/runs",
        {OPERATOR, DPO},
        {
            "name": "new-run",
            "purpose": PURPOSE,
            "datasets": ["{dataset}"],
            "policy": "{published}",
            "aggregator_country": "DE",
        },
    ),
    row("get", "/runs/{run}", RECORD_READERS | {SERVICE}),
    row("get", "/dpias", RECORD_READERS),
    row(
        "post",
        "/dpias",
        {DPO},
        {"run": "{undocumented_run}", "reference": "DPIA-new", "document_hash": "b" * 64},
    ),
    row("get", "/dpias/{dpia}", RECORD_READERS),
    row("post", "/dpias/{dpia}/approve", {DPO}, {"valid_until": NEXT_YEAR}),
    row("get", "/rounds", RECORD_READERS | {SERVICE}),
    row("get", "/rounds/{round}", RECORD_READERS | {SERVICE}),
    # --- the gate and round actions (issue 6: four-eyes by Operators and DPOs)
    row("post", "/runs/{fresh_run}/rounds/1/gate", {OPERATOR, SERVICE, DPO}),
    row("get", "/runs/{run}/rounds/1/decision", {OPERATOR, SERVICE, DPO, LEGAL, AUDITOR}),
    row("post", "/runs/{pending_run}/rounds/1/approve", ROUND_DECIDERS, REASON),
    row("post", "/runs/{pending_run}/rounds/1/reject", ROUND_DECIDERS, REASON),
    row("post", "/runs/{pending_run}/rounds/1/abort", ROUND_DECIDERS, REASON),
    # --- what the Flower strategy (Service) and the sites' client mods call (issue 4)
    row("post", "/runs/{fresh_run}/rounds/1/ticket", {SERVICE}),
    row("get", "/runs/{run}/rounds/1/updates", {DPO, AUDITOR, SERVICE}),
    row("post", "/runs/{run}/rounds/1/updates", {SERVICE}, {"updates": []}),
    # Issue 13: federated evaluation under its own ticket, and closing a `flwr run` round.
    row("post", "/runs/{run}/rounds/1/evaluations", {SERVICE}, {"evaluations": []}),
    row("post", "/runs/{run}/rounds/1/close", {SERVICE, OPERATOR}),
    row("get", "/runs/{run}/rounds/1/exclusions?site={site_slug}", {SERVICE, STEWARD, DPO}),
    # A steward reads only its own site's list; the view refuses another site's.
    row(
        "get",
        "/runs/{run}/rounds/1/exclusions?site={other_site_slug}",
        {SERVICE, STEWARD, DPO},
        special={STEWARD: 403},
    ),
    # The allow-list (issue 12): the same readers, a steward only its own site's.
    row("get", "/runs/{run}/rounds/1/allowed?site={site_slug}", {SERVICE, STEWARD, DPO}),
    row(
        "get",
        "/runs/{run}/rounds/1/allowed?site={other_site_slug}",
        {SERVICE, STEWARD, DPO},
        special={STEWARD: 403},
    ),
    row("post", "/sites/{site_slug}/supernode", {SERVICE, OPERATOR}, {"node_id": "4242"}),
    row("delete", "/sites/{site_slug}/supernode", {SERVICE, OPERATOR}, REASON),
    row("get", "/flower/public-key", PEOPLE | {SERVICE}),
    # --- the ledger (issue 3: read-only for Auditor, DPO and Legal)
    row("get", "/ledger/entries", LEDGER_READERS),
    row("get", "/ledger/checkpoints/latest", LEDGER_READERS),
    row("get", "/ledger/checkpoints/{checkpoint_size}", LEDGER_READERS),
    row("get", "/ledger/inclusion?seq=0&size={tree_size}", LEDGER_READERS),
    row("get", "/ledger/consistency?from=1&to={tree_size}", LEDGER_READERS),
    row("get", "/ledger/keys", LEDGER_READERS),
    # --- retention and legal holds (issue 7: Legal and DPO hold, Auditor reads too)
    row("get", "/ledger/retention", LEDGER_READERS, ok=200),
    row("get", "/ledger/holds", LEDGER_READERS, ok=200),
    row("get", "/ledger/holds?active=true", LEDGER_READERS, ok=200),
    row("post", "/ledger/holds", HOLD_KEEPERS, {"reference": "M-2", "reason": "matrix"}, ok=201),
    row("get", "/ledger/holds/{hold}", LEDGER_READERS, ok=200),
    row("post", "/ledger/holds/{hold}/release", HOLD_KEEPERS, REASON, ok=200),
    # --- reports (issue 7: Legal, DPO, Auditor)
    row("get", "/reports", REPORT_ROLES),
    row("post", "/reports", REPORT_ROLES, {"run": "{run}"}),
    row("get", "/reports/{report}", REPORT_ROLES),
    row("get", "/reports/{report}/download?file=pdf", REPORT_ROLES),
    row("get", "/reports/{report}/download?file=bundle", REPORT_ROLES),
    row("get", "/reports/art30?view=controller&output=json", REPORT_ROLES),
    row("get", "/reports/art30?view=processor&output=csv", REPORT_ROLES),
    row("get", "/reports/art30?view=controller&output=pdf", REPORT_ROLES),
    row("get", "/reports/lineage?dataset={dataset}", REPORT_ROLES),
    row("get", "/reports/lineage?subject=de-legal-s0001", REPORT_ROLES),
    # --- the DPO dashboard (server-rendered pages)
    row("get", "/dashboard/", DASHBOARD_ROLES, ok=200),
    row("post", "/dashboard/ledger/verify", DASHBOARD_ROLES, ok=302, location="/dashboard/#ledger"),
    # The login and logout pages are open to everyone, anonymous included.
    row("get", LOGIN_PAGE, EVERYONE, ok=200),
    # Wrong credentials: the form comes back with its error, nobody is logged in.
    row("post", LOGIN_PAGE, EVERYONE, {"username": "nobody", "password": "wrong"}, ok=200),
    # Django's form views take PUT like POST.
    row("put", LOGIN_PAGE, EVERYONE, ok=200),
    row("post", "/dashboard/logout/", EVERYONE, ok=302, location=LOGIN_PAGE),
]

# --------------------------------------------------------------------------- fixtures


def _fill(value, world: dict):
    """Put the world's ids into a body; a whole-string placeholder keeps the id's type."""
    if isinstance(value, str):
        match = re.fullmatch(r"\{(\w+)\}", value)
        return world[match.group(1)] if match else value
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


def _user(role: str):
    return UserFactory(username=f"matrix-{role.lower().replace(' ', '-')}", roles=[role])


def _build_world() -> dict:
    operator = Actor.of(UserFactory(username="olga", roles=[OPERATOR]))
    approver = verified_actor(UserFactory(username="anton", roles=[OPERATOR]))

    # A run played through the real gate, approvals, tickets and update records.
    run, sites, datasets = governed_scenario(subjects=4, num_rounds=2)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(requires_approval=True)
    run.refresh_from_db()
    own_site, other_site = sites[0], sites[1]
    own_dataset, other_dataset = datasets[0], datasets[1]
    consent_record_batch(
        actor=operator,
        dataset=own_dataset,
        events=[
            {
                "subject_pseudonym": "de-legal-s0100",
                "purpose": PURPOSE,
                "kind": "grant",
                "occurred_at": timezone.now(),
            }
        ],
    )
    consent_record_batch(
        actor=operator,
        dataset=other_dataset,
        events=[
            {
                "subject_pseudonym": "es-blogs-s0002",
                "purpose": PURPOSE,
                "kind": "withdraw",
                "occurred_at": timezone.now(),
            }
        ],
    )
    play_round(run, 1, operator=operator, approver=approver, accuracy=0.6)
    play_round(run, 2, operator=operator, approver=approver, accuracy=0.7)

    # Round 1 of this run waits for approval; olga asked for it, so anyone else may decide.
    pending_run = RunFactory(
        name="pending", purpose=run.purpose, policy=run.policy, datasets=datasets, num_rounds=2
    )
    DpiaFactory(run=pending_run)
    decision = round_gate(actor=operator, run=pending_run, round_no=1)
    pending_round = round_route_after_gate(
        actor=operator, round=Round.objects.get(pk=decision.round_id)
    )
    assert pending_round.state == RoundState.AWAITING_APPROVAL

    # No round yet and no approval needed: gating or ticketing round 1 succeeds.
    free_policy = PolicyFactory(name="no-approval", requires_approval=False)
    fresh_run = RunFactory(
        name="fresh", purpose=run.purpose, policy=free_policy, datasets=datasets, num_rounds=2
    )
    DpiaFactory(run=fresh_run)
    draft_dpia = DpiaFactory(
        run=RunFactory(name="dpia-draft", purpose=run.purpose, datasets=datasets),
        status=DpiaStatus.DRAFT,
        approved_at=None,
        valid_until=None,
    )
    undocumented_run = RunFactory(name="undocumented", purpose=run.purpose, datasets=datasets)
    suspended_site = SiteFactory(slug="dormant", status=SiteStatus.SUSPENDED)
    draft_policy = PolicyFactory(name="draft-policy", status=PolicyStatus.DRAFT, published_at=None)

    report = report_build(
        actor=Actor.system("tests"),
        report_id=report_generate(actor=Actor.system("tests"), run=run).pk,
    )
    assert report.status == "done", report.error
    hold = legal_hold_place(
        actor=Actor.system("tests"), reference="MATRIX-1", reason="kept for the role matrix"
    )
    checkpoint = checkpoint_create(actor=Actor.system("tests"))

    users = {role: _user(role) for role in EVERY_ROLE if role != ANON}
    SiteSteward.objects.create(user=users[STEWARD], site=own_site)

    def consent_of(dataset):
        return Consent.objects.filter(dataset=dataset).order_by("pk").first().pk

    def event_of(dataset):
        return ConsentEvent.objects.filter(dataset=dataset).order_by("pk").first().pk

    return {
        "users": users,
        "site": own_site.pk,
        "other_site": other_site.pk,
        "suspended_site": suspended_site.pk,
        "site_slug": own_site.slug,
        "other_site_slug": other_site.slug,
        "purpose": run.purpose_id,
        "dataset": own_dataset.pk,
        "other_dataset": other_dataset.pk,
        "consent": consent_of(own_dataset),
        "other_consent": consent_of(other_dataset),
        "consent_event": event_of(own_dataset),
        "other_consent_event": event_of(other_dataset),
        "published": run.policy_id,
        "draft": draft_policy.pk,
        "run": run.pk,
        "round": Round.objects.get(run=run, number=1).pk,
        "pending_run": pending_run.pk,
        "fresh_run": fresh_run.pk,
        "undocumented_run": undocumented_run.pk,
        "dpia": draft_dpia.pk,
        "report": str(report.public_id),
        "tree_size": ledger_selectors.tree_size(),
        "checkpoint_size": checkpoint.size,
        "hold": hold.pk,
    }


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[dict]:
    """The module's objects, built once in a transaction rolled back after the module.

    ``TestCase._enter_atomics`` is what ``setUpTestData`` runs in: its atomic blocks are
    marked as the test case's, so the services' ``durable=True`` blocks work inside, and
    each test's own atomic (pytest-django's ``db``) is a savepoint that undoes the cell.
    """
    with tempfile.TemporaryDirectory(prefix="role-matrix-") as tmp:
        var = Path(tmp)
        with (
            django_db_blocker.unblock(),
            override_settings(
                VAR_DIR=var,
                FEDGOV_KEY_DIR=var / "keys",
                FEDGOV_SIGNING_KEY_FILE="",
                FEDGOV_REPORT_DIR=var / "reports",
                FEDGOV_REPORT_CERT_FILE="",
                FEDGOV_REPORT_KEY_FILE="",
                # The users sign in with force_login, never with their password; the
                # default hasher would cost about half a second per user.
                PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            ),
        ):
            atomics = TestCase._enter_atomics()
            try:
                yield _build_world()
            finally:
                TestCase._rollback_atomics(atomics)


def client_for(world: dict, role: str, *, session: bool) -> APIClient:
    client = APIClient()
    if role != ANON:
        user = world["users"][role]
        # Every person here passed the second factor: this matrix is about roles; the
        # refusals without it are tests/test_second_factor.py's.
        if session:
            login_verified(client, user)
        else:
            client.force_authenticate(verified(user))
    return client


# ------------------------------------------------------------------------------ cells


def _head(response) -> bytes:
    """The start of the body, for failure messages.

    A download is read to its end: the test client then closes the file itself. Calling
    ``response.close()`` here would fire ``request_finished`` with Django's
    ``close_old_connections`` attached and close the PostgreSQL connection the module's
    transaction lives on.
    """
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content[:300]


@pytest.mark.parametrize("role", EVERY_ROLE)
@pytest.mark.parametrize("entry", MATRIX, ids=[r.id for r in MATRIX])
def test_role_matrix(world, db, entry: Row, role: str):
    client = client_for(world, role, session=entry.dashboard)
    url = entry.url_template.format(**world)
    body = _fill(entry.body, world)
    if entry.dashboard:
        response = getattr(client, entry.method)(url, body or {})
    elif body is None:
        response = getattr(client, entry.method)(url)
    else:
        response = getattr(client, entry.method)(url, body, format="json")
    shown = (response.status_code, response.get("Location"), _head(response))

    if role in entry.special:
        assert response.status_code == entry.special[role], shown
    elif role in entry.allowed:
        if entry.ok is not None:
            assert response.status_code == entry.ok, shown
        assert response.status_code not in (401, 403, 404, 405), shown
        assert response.status_code < 500, shown
        if entry.location is not None:
            assert response["Location"] == entry.location, shown
    elif entry.dashboard and role == ANON:
        assert response.status_code == 302, shown
        assert response["Location"] == f"{LOGIN_PAGE}?next={url}", shown
    else:
        assert response.status_code == 403, shown


# ------------------------------------------------------------------------ completeness

# Routes outside the matrix on purpose: the OpenAPI schema and its Swagger page describe
# the API for anyone and act on no record (schemathesis tests them in test_schemathesis).
NOT_ENDPOINTS = {"api/schema/", "api/docs/"}
MATRIX_PREFIXES = ("api/v1/", "dashboard/")
# HEAD answers like GET and OPTIONS describes the endpoint; both pass the same role check
# as GET, so a GET row covers them.
IMPLIED_METHODS = {"HEAD", "OPTIONS"}
# DRF's format-suffix twin of a route (``sites.json``, ``/api/v1/.json``) dispatches to
# the same view with the same permissions; it is the same endpoint.
FORMAT_SUFFIX = (re.compile(r"\\\.\(\?P<format>\[a-z0-9\]\+\)/\?\$$"), "$")
ROOT_FORMAT_SUFFIX = ("<drf_format_suffix:format>", "")


def _join(prefix: str, route: str) -> str:
    # As Django joins ResolverMatch.route: a regex child loses its leading "^".
    return prefix + (route[1:] if route.startswith("^") else route)


def _endpoint(route: str) -> str:
    route = FORMAT_SUFFIX[0].sub(FORMAT_SUFFIX[1], route)
    return route.replace(*ROOT_FORMAT_SUFFIX)


def _methods(pattern: URLPattern) -> set[str]:
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions:  # a DRF viewset route: exactly the methods the router mapped
        names = set(actions)
    else:
        view = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        names = {m for m in view.http_method_names if hasattr(view, m)}
    return {name.upper() for name in names} - IMPLIED_METHODS


def _routes(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        route = _join(prefix, str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        else:
            yield route, pattern


def served_endpoints() -> set[tuple[str, str]]:
    return {
        (method, _endpoint(route))
        for route, pattern in _routes(get_resolver().url_patterns)
        if route.startswith(MATRIX_PREFIXES) and route not in NOT_ENDPOINTS
        for method in _methods(pattern)
    }


def matrix_endpoints() -> set[tuple[str, str]]:
    # Any digit or uuid resolves like the real ids: only the route matters here.
    ids = {
        name: "00000000-0000-0000-0000-000000000001" if name == "report" else "1"
        for name in re.findall(r"\{(\w+)\}", " ".join(r.path for r in MATRIX))
    }
    return {
        (r.method.upper(), _endpoint(resolve(r.url_template.format(**ids).split("?")[0]).route))
        for r in MATRIX
    }


def test_matrix_covers_every_route():
    served = served_endpoints()

    missing = served - matrix_endpoints()

    assert not missing, "routes without a role-matrix row: " + ", ".join(
        f"{m} {r}" for m, r in sorted(missing, key=lambda e: (e[1], e[0]))
    )
    # The walk itself must see the API: a broken walk would make the check above vacuous.
    assert ("GET", "api/v1/ledger/keys") in served and ("POST", "dashboard/ledger/verify") in served


def test_matrix_has_no_row_for_a_route_that_is_not_served():
    assert matrix_endpoints() <= served_endpoints()


def test_every_cell_is_a_role_of_the_matrix():
    for entry in MATRIX:
        assert entry.allowed <= EVERYONE, entry.id
        assert set(entry.special) <= EVERYONE, entry.id
