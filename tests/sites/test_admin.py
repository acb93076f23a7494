"""Admin for the sites records: pages render, saves go through services, evidence is read-only."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse

from audit.models import LedgerEntry
from fedgov.actors import Actor
from sites.choices import PolicyStatus
from sites.models import ResidencyPolicy, Site, SiteSteward
from sites.services import consent_record_batch
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    PolicyFactory,
    PurposeFactory,
    SiteFactory,
    UserFactory,
    sha,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.fixture
def records():
    site = SiteFactory()
    dataset = DatasetFactory(site=site)
    consent = ConsentFactory(dataset=dataset)

    purpose = dataset.purposes.first()
    consent_record_batch(
        actor=Actor.system("t"),
        dataset=dataset,
        events=[
            {
                "subject_pseudonym": "evt-1",
                "purpose": purpose.code,
                "kind": "grant",
                "occurred_at": "2026-01-01T00:00:00Z",
            }
        ],
    )
    steward = SiteSteward.objects.create(user=UserFactory(), site=site)
    return {
        "site": site,
        "sitesteward": steward,
        "purpose": purpose,
        "dataset": dataset,
        "residencypolicy": PolicyFactory(status=PolicyStatus.DRAFT, published_at=None),
        "consent": consent,
        "consentevent": dataset.consent_events.first(),
    }


@pytest.mark.parametrize(
    "model",
    ["site", "sitesteward", "purpose", "dataset", "residencypolicy", "consent", "consentevent"],
)
def test_changelist_and_change_page_render(admin_client_, records, model):
    assert admin_client_.get(reverse(f"admin:sites_{model}_changelist")).status_code == 200
    obj = records[model]
    assert (
        admin_client_.get(reverse(f"admin:sites_{model}_change", args=[obj.pk])).status_code == 200
    )


@pytest.mark.parametrize("model", ["site", "sitesteward", "purpose", "dataset", "residencypolicy"])
def test_add_page_renders(admin_client_, model):
    assert admin_client_.get(reverse(f"admin:sites_{model}_add")).status_code == 200


@pytest.mark.parametrize("model", ["consent", "consentevent"])
def test_consents_and_events_cannot_be_added_changed_or_deleted(admin_client_, records, model):
    obj = records[model]
    assert admin_client_.get(reverse(f"admin:sites_{model}_add")).status_code == 403
    response = admin_client_.post(reverse(f"admin:sites_{model}_change", args=[obj.pk]), {})
    assert response.status_code == 403
    assert (
        admin_client_.get(reverse(f"admin:sites_{model}_delete", args=[obj.pk])).status_code == 403
    )


def test_published_policy_cannot_be_changed_in_admin(admin_client_):
    policy = PolicyFactory(status=PolicyStatus.PUBLISHED, min_eligible_sites=1)
    url = reverse("admin:sites_residencypolicy_change", args=[policy.pk])
    page = admin_client_.get(url)
    assert page.status_code == 200
    assert b'name="min_eligible_sites"' not in page.content  # shown read-only
    response = admin_client_.post(url, {"min_eligible_sites": 5, "allowed_areas": '["EEA"]'})
    assert response.status_code == 403
    policy.refresh_from_db()
    assert policy.min_eligible_sites == 1


def test_draft_policy_changes_and_publishes_through_services(admin_client_):
    policy = PolicyFactory(status=PolicyStatus.DRAFT, published_at=None, name="eu", version=1)
    url = reverse("admin:sites_residencypolicy_change", args=[policy.pk])
    form = {
        "allowed_areas": '["EEA", "CH"]',
        "transfer_mechanisms": "{}",
        "min_eligible_sites": 2,
        "min_records_per_site": 1,
        "approvals_required": 1,
        "requires_approval": "on",
        "requires_dpia": "on",
        "privacy_budget_epsilon": "",
        "model_updates_personal_data": "on",
        "aggregator_operator": json.dumps(
            {"organisation": "Koord GmbH", "country": "DE", "role": "controller"}
        ),
        "host_operator": "{}",
        "transfer_safeguards": "[]",
        "recipient_certifications": "[]",
        "dpf_listing_max_age_days": 90,
        "privacy_budget_delta": "",
        "dp_neighbouring_relation": "add-or-remove-one",
        "dp_required_mechanism": "",
    }
    response = admin_client_.post(url, form)
    assert response.status_code == 302, response.content[:2000]
    policy.refresh_from_db()
    assert policy.allowed_areas == ["EEA", "CH"]
    assert LedgerEntry.objects.filter(event_type="policy.draft_updated").count() == 1

    admin_client_.post(
        reverse("admin:sites_residencypolicy_changelist"),
        {"action": "publish_policies", "_selected_action": [policy.pk]},
    )
    policy.refresh_from_db()
    assert policy.status == PolicyStatus.PUBLISHED
    assert len(policy.content_hash) == 64


def test_bad_country_in_admin_shows_a_form_error_and_writes_nothing(admin_client_):
    today = dt.date.today()
    form = {
        "slug": "xx-site",
        "organisation": "Org",
        "country": "XX",
        "contact_email": "dpo@org.example",
        "agreement_type": "processor",
        "agreement_document_hash": sha("a"),
        "agreement_valid_from": today.isoformat(),
        "agreement_valid_until": (today + dt.timedelta(days=5)).isoformat(),
        "compute_country": "DE",
        "one_zone_id": 0,
    }
    response = admin_client_.post(reverse("admin:sites_site_add"), form)
    assert response.status_code == 200
    assert b"not an ISO 3166-1 alpha-2 country code" in response.content
    assert not Site.objects.exists()

    form["country"] = "FR"
    response = admin_client_.post(reverse("admin:sites_site_add"), form)
    assert response.status_code == 302
    assert Site.objects.get(slug="xx-site").country == "FR"
    assert LedgerEntry.objects.filter(event_type="site.registered").count() == 1


def test_purpose_added_in_admin_goes_through_the_service(admin_client_):
    response = admin_client_.post(
        reverse("admin:sites_purpose_add"), {"code": "summaries", "name": "Summaries"}
    )
    assert response.status_code == 302
    assert LedgerEntry.objects.filter(event_type="purpose.created").count() == 1
    assert PurposeFactory(code="summaries").name == "Summaries"  # get_or_create finds it


def test_no_record_can_be_deleted_in_admin(admin_client_, records):
    for model in ("site", "dataset", "residencypolicy", "purpose"):
        url = reverse(f"admin:sites_{model}_delete", args=[records[model].pk])
        assert admin_client_.get(url).status_code == 403
    assert ResidencyPolicy.objects.exists()
