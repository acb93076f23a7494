"""Fixtures of the dashboard tests: keys in tmp_path and two runs played through the services."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from fedgov.actors import Actor
from sites.models import Dataset, ResidencyPolicy
from tests.factories import DatasetFactory, RunFactory, SiteFactory, UserFactory, verified_actor
from tests.reports.conftest import play_round
from tests.training.flower.conftest import governed_scenario
from training.models import Round
from training.services.gate import round_gate


@pytest.fixture(autouse=True)
def key_dir(settings, tmp_path):
    """Tests never write keys or reports into the repository's var/."""
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    settings.FEDGOV_REPORT_DIR = tmp_path / "reports"
    settings.FEDGOV_REPORT_CERT_FILE = ""
    settings.FEDGOV_REPORT_KEY_FILE = ""
    return settings.FEDGOV_KEY_DIR


@pytest.fixture
def browser_for(db):
    """``browser_for(*roles)``: a Django test client logged in as a fresh user with roles."""

    def _client(*role_names: str, username: str | None = None) -> Client:
        client = Client()
        user = UserFactory(roles=role_names, **({"username": username} if username else {}))
        client.force_login(user)
        return client

    return _client


@pytest.fixture
def two_runs(db):
    """Run "governed": two allowed rounds, the second after pl-news' retention ended.

    Run "orphan": one blocked round on site "lone-site" (no DPIA, no consent), dated
    2020-01-15 so period filters can leave it out. Returns ``(governed, orphan, sites)``.
    """
    operator = Actor.of(UserFactory(username="olga", roles=["Operator"]))
    approver = verified_actor(UserFactory(username="anton", roles=["Operator"]))
    governed, sites, datasets = governed_scenario(subjects=6, num_rounds=3)
    governed.name = "governed"
    governed.save(update_fields=["name"])
    ResidencyPolicy.objects.filter(pk=governed.policy_id).update(requires_approval=True)
    governed.refresh_from_db()
    play_round(governed, 1, operator=operator, approver=approver, accuracy=0.6)
    # The site's retention date is a fact the DPO recorded; it lapsed before round 2.
    Dataset.objects.filter(pk=datasets[2].pk).update(
        retention_until=dt.date.today() - dt.timedelta(days=1)
    )
    play_round(governed, 2, operator=operator, approver=approver, accuracy=0.7)

    lone = SiteFactory(slug="lone-site")
    orphan = RunFactory(
        name="orphan",
        purpose=governed.purpose,
        datasets=[DatasetFactory(site=lone, name="lone-corpus", purposes=[governed.purpose])],
    )
    decision = round_gate(actor=operator, run=orphan, round_no=1)
    Round.objects.filter(pk=decision.round_id).update(
        created_at=dt.datetime(2020, 1, 15, 12, tzinfo=dt.UTC)
    )
    return governed, orphan, sites
