"""Gate decisions in admin: they render with their results and refuse every change."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from fedgov.actors import Actor
from tests.factories import ConsentFactory, DatasetFactory, DpiaFactory, RunFactory, SiteFactory
from training.models import GateDecision
from training.services.gate import round_gate

pytestmark = pytest.mark.django_db


@pytest.fixture
def decision():
    run = RunFactory()
    DpiaFactory(run=run)
    ds = DatasetFactory(site=SiteFactory(slug="nl-media", compute_country="US"))
    run.datasets.add(ds)
    ConsentFactory(dataset=ds, purpose=run.purpose)
    return round_gate(actor=Actor.system("tests"), run=run, round_no=1)


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.org", "pw"))
    return client


def test_gate_decision_admin_renders_results_per_site_and_rule(admin_client, decision):
    listing = admin_client.get("/admin/training/gatedecision/")
    assert listing.status_code == 200
    page = admin_client.get(f"/admin/training/gatedecision/{decision.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Results per site and rule" in html
    assert "nl-media" in html and "Art. 44 + policy" in html
    assert "✗ fail" in html and "✓ pass" in html
    assert "compute in US is outside the policy" in html
    assert "Eligibility per site" in html


def test_gate_decision_admin_refuses_add_change_and_delete(admin_client, decision):
    assert admin_client.get("/admin/training/gatedecision/add/").status_code == 403
    url = f"/admin/training/gatedecision/{decision.pk}/change/"
    response = admin_client.post(url, {"outcome": "allowed", "reason": "edited"})
    assert response.status_code == 403
    delete = admin_client.post(
        f"/admin/training/gatedecision/{decision.pk}/delete/", {"post": "yes"}
    )
    assert delete.status_code == 403
    decision.refresh_from_db()
    assert (decision.outcome, GateDecision.objects.count()) == ("blocked", 1)
    assert 'name="_save"' not in admin_client.get(url).content.decode()
