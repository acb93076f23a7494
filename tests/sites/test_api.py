"""The sites API: writes go through services, bad input is a 400 naming the field, stewards
see only their own site."""

from __future__ import annotations

import datetime as dt

import pytest

from audit.models import LedgerEntry
from fedgov import roles
from sites.choices import PolicyStatus, SiteStatus
from sites.models import Consent, ConsentEvent, Dataset, ResidencyPolicy, Site, SiteSteward
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    PolicyFactory,
    PurposeFactory,
    SiteFactory,
    sha,
)

pytestmark = pytest.mark.django_db

TODAY = dt.date.today()
CSV_HEADER = "subject_pseudonym,purpose,kind,occurred_at,expires_at\n"


@pytest.fixture
def dpo_api(api, dpo):
    return api(dpo)


def site_body(**overrides):
    body = {
        "slug": "es-blogs",
        "organisation": "Blogs S.L.",
        "country": "ES",
        "contact_email": "dpo@blogs.example",
        "agreement_type": "processor",
        "agreement_document_hash": sha("dpa"),
        "agreement_valid_from": str(TODAY - dt.timedelta(days=1)),
        "agreement_valid_until": str(TODAY + dt.timedelta(days=100)),
        "compute_country": "ES",
    }
    body.update(overrides)
    return body


def steward_of(make_user, site, username="steward"):
    user = make_user(roles.SITE_STEWARD, username=username)
    SiteSteward.objects.create(user=user, site=site)
    return user


# ------------------------------------------------------------------------- bad input


def test_register_site_with_unknown_country_is_400_naming_the_field(dpo_api):
    response = dpo_api.post("/api/v1/sites", site_body(country="XX"), format="json")
    assert response.status_code == 400
    assert "country" in response.json()
    assert not Site.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_register_dataset_at_a_suspended_site_is_400_naming_the_site(dpo_api):
    site = SiteFactory(status=SiteStatus.SUSPENDED)
    PurposeFactory(code="topics")
    body = {
        "site": site.pk,
        "name": "posts",
        "lawful_basis": "6(1)(a)",
        "purposes": ["topics"],
        "retention_until": str(TODAY + dt.timedelta(days=30)),
        "processing_countries": ["EEA"],
        "data_categories": ["text"],
    }
    response = dpo_api.post("/api/v1/datasets", body, format="json")
    assert response.status_code == 400
    assert "suspended" in response.json()["site"][0]
    assert not Dataset.objects.exists()


def test_editing_a_published_policy_is_400_and_changes_nothing(dpo_api):
    policy = PolicyFactory(status=PolicyStatus.PUBLISHED, min_eligible_sites=1)
    response = dpo_api.patch(
        f"/api/v1/policies/{policy.pk}", {"min_eligible_sites": 4}, format="json"
    )
    assert response.status_code == 400
    assert "immutable" in response.json()["status"][0]
    policy.refresh_from_db()
    assert policy.min_eligible_sites == 1
    assert not LedgerEntry.objects.exists()


def test_consent_expiring_before_its_grant_is_400(dpo_api):
    dataset = DatasetFactory(purposes=[PurposeFactory(code="topics")])
    rows = [
        {
            "subject_pseudonym": "s1",
            "purpose": "topics",
            "kind": "grant",
            "occurred_at": "2026-03-01T00:00:00Z",
            "expires_at": "2026-02-01T00:00:00Z",
        }
    ]
    response = dpo_api.post(f"/api/v1/datasets/{dataset.pk}/consent-events", rows, format="json")
    assert response.status_code == 400
    assert "expires_at" in response.json()["events"]["0"]
    assert not Consent.objects.exists()


def test_withdrawing_a_missing_consent_via_api_is_400(dpo_api):
    dataset = DatasetFactory(purposes=[PurposeFactory(code="topics")])
    rows = [
        {
            "subject_pseudonym": "nobody",
            "purpose": "topics",
            "kind": "withdraw",
            "occurred_at": "2026-03-01T00:00:00Z",
        }
    ]
    response = dpo_api.post(f"/api/v1/datasets/{dataset.pk}/consent-events", rows, format="json")
    assert response.status_code == 400
    assert "subject_pseudonym" in response.json()["events"]["0"]
    assert not ConsentEvent.objects.exists()


def test_csv_upload_with_one_bad_row_among_many_refuses_all_and_names_the_row(dpo_api):
    dataset = DatasetFactory(purposes=[PurposeFactory(code="topics")])
    lines = [f"s{i:05d},topics,grant,2026-01-05T09:00:00Z," for i in range(1500)]
    lines[777] = "s00777,topics,grant,not-a-date,"
    response = dpo_api.generic(
        "POST",
        f"/api/v1/datasets/{dataset.pk}/consent-events",
        CSV_HEADER + "\n".join(lines) + "\n",
        content_type="text/csv",
    )
    assert response.status_code == 400
    body = response.json()
    # Named by its line in the file: the header is line 1, the 778th event line 779.
    assert list(body["events"]) == ["779"]
    assert "occurred_at" in body["events"]["779"]
    assert "(first: line 779, occurred_at)" in body["non_field_errors"][0]
    assert not Consent.objects.exists()
    assert not LedgerEntry.objects.exists()


# ----------------------------------------------------------------------- happy paths


def test_dpo_registers_site_then_dataset_and_uploads_json_and_csv_consents(dpo_api):
    response = dpo_api.post("/api/v1/sites", site_body(), format="json")
    assert response.status_code == 201, response.content
    site_id = response.json()["id"]
    assert (
        dpo_api.post(
            "/api/v1/purposes", {"code": "topics", "name": "Topic classification"}, format="json"
        ).status_code
        == 201
    )
    response = dpo_api.post(
        "/api/v1/datasets",
        {
            "site": site_id,
            "name": "posts",
            "lawful_basis": "6(1)(a)",
            "purposes": ["topics"],
            "retention_until": str(TODAY + dt.timedelta(days=30)),
            "processing_countries": ["EEA"],
            "data_categories": ["text", "opinions"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    dataset_id = response.json()["id"]
    assert response.json()["purposes"] == ["topics"]

    rows = [
        {
            "subject_pseudonym": f"es-blogs-s{i:04d}",
            "purpose": "topics",
            "kind": "grant",
            "occurred_at": "2026-01-05T09:00:00+01:00",
        }
        for i in range(1, 4)
    ]
    response = dpo_api.post(f"/api/v1/datasets/{dataset_id}/consent-events", rows, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["granted"] == 3

    csv_body = CSV_HEADER + "es-blogs-s0002,topics,withdraw,2026-02-01T10:00:00Z,\n"
    response = dpo_api.generic(
        "POST",
        f"/api/v1/datasets/{dataset_id}/consent-events",
        csv_body,
        content_type="text/csv",
    )
    assert response.status_code == 201, response.content
    assert response.json()["withdrawn"] == 1

    response = dpo_api.get(f"/api/v1/consents?dataset={dataset_id}&state=withdrawn")
    assert [c["subject_pseudonym"] for c in response.json()["results"]] == ["es-blogs-s0002"]
    response = dpo_api.get(f"/api/v1/consents?dataset={dataset_id}&state=active")
    assert response.json()["count"] == 2
    response = dpo_api.get("/api/v1/consents?subject=es-blogs-s0003")
    assert response.json()["count"] == 1
    history = dpo_api.get("/api/v1/consent-events?subject=es-blogs-s0002").json()["results"]
    assert [e["kind"] for e in history] == ["grant", "withdraw"]


def test_csv_with_a_wrong_header_is_400(dpo_api):
    dataset = DatasetFactory()
    response = dpo_api.generic(
        "POST",
        f"/api/v1/datasets/{dataset.pk}/consent-events",
        "who,what\nx,y\n",
        content_type="text/csv",
    )
    assert response.status_code == 400
    assert "header" in response.json()["detail"]


def test_json_object_instead_of_list_is_400(dpo_api):
    dataset = DatasetFactory()
    response = dpo_api.post(
        f"/api/v1/datasets/{dataset.pk}/consent-events", {"kind": "grant"}, format="json"
    )
    assert response.status_code == 400
    assert "events" in response.json()


def test_policy_lifecycle_draft_patch_publish_new_version(dpo_api):
    response = dpo_api.post(
        "/api/v1/policies",
        {"name": "eu-federation", "allowed_areas": ["EEA"], "min_eligible_sites": 2},
        format="json",
    )
    assert response.status_code == 201, response.content
    policy_id = response.json()["id"]
    response = dpo_api.patch(
        f"/api/v1/policies/{policy_id}", {"privacy_budget_epsilon": 6.0}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["privacy_budget_epsilon"] == 6.0

    response = dpo_api.post(f"/api/v1/policies/{policy_id}/publish")
    assert response.status_code == 200
    assert response.json()["status"] == "published"
    assert len(response.json()["content_hash"]) == 64
    assert dpo_api.post(f"/api/v1/policies/{policy_id}/publish").status_code == 409

    response = dpo_api.post(
        f"/api/v1/policies/{policy_id}/new-version", {"min_eligible_sites": 3}, format="json"
    )
    assert response.status_code == 201
    assert (response.json()["version"], response.json()["status"]) == (2, "draft")
    assert ResidencyPolicy.objects.get(pk=policy_id).min_eligible_sites == 2
    response = dpo_api.get("/api/v1/policies?name=eu-federation&status=draft")
    assert [p["version"] for p in response.json()["results"]] == [2]


def test_site_suspend_action_and_filter(dpo_api):
    site = SiteFactory(slug="pl-news", country="PL")
    SiteFactory(slug="de-legal", country="DE")
    response = dpo_api.post(f"/api/v1/sites/{site.pk}/suspend", {"reason": "audit"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "suspended"
    assert dpo_api.post(f"/api/v1/sites/{site.pk}/suspend", {"reason": "x"}).status_code == 409
    response = dpo_api.get("/api/v1/sites?status=suspended")
    assert [s["slug"] for s in response.json()["results"]] == ["pl-news"]


def test_dataset_withdraw_action(dpo_api):
    dataset = DatasetFactory()
    response = dpo_api.post(
        f"/api/v1/datasets/{dataset.pk}/withdraw", {"reason": "contract ended"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["withdrawn_at"] is not None
    assert dpo_api.get("/api/v1/datasets?withdrawn=true").json()["count"] == 1
    assert dpo_api.get("/api/v1/datasets?withdrawn=false").json()["count"] == 0


def test_no_delete_on_records(dpo_api):
    site = SiteFactory()
    assert dpo_api.delete(f"/api/v1/sites/{site.pk}").status_code == 405
    assert Site.objects.filter(pk=site.pk).exists()


# ------------------------------------------------------------------- site stewards


def test_steward_sees_only_its_own_site_datasets_and_consents(api, make_user):
    mine, theirs = SiteFactory(slug="mine"), SiteFactory(slug="theirs")
    my_dataset, their_dataset = DatasetFactory(site=mine), DatasetFactory(site=theirs)
    ConsentFactory(dataset=my_dataset, subject_pseudonym="mine-1")
    their_consent = ConsentFactory(dataset=their_dataset, subject_pseudonym="theirs-1")
    client = api(steward_of(make_user, mine))

    assert [s["slug"] for s in client.get("/api/v1/sites").json()["results"]] == ["mine"]
    assert client.get(f"/api/v1/sites/{theirs.pk}").status_code == 404
    assert [d["id"] for d in client.get("/api/v1/datasets").json()["results"]] == [my_dataset.pk]
    assert client.get(f"/api/v1/datasets/{their_dataset.pk}").status_code == 404
    subjects = [c["subject_pseudonym"] for c in client.get("/api/v1/consents").json()["results"]]
    assert subjects == ["mine-1"]
    assert client.get(f"/api/v1/consents/{their_consent.pk}").status_code == 404
    assert client.get(f"/api/v1/consents?dataset={their_dataset.pk}").json()["count"] == 0
    assert client.get(f"/api/v1/consent-events?dataset={their_dataset.pk}").json()["count"] == 0


def test_steward_uploads_to_its_own_dataset_but_not_to_another_sites(api, make_user):
    mine, theirs = SiteFactory(slug="mine"), SiteFactory(slug="theirs")
    purpose = PurposeFactory(code="topics")
    my_dataset = DatasetFactory(site=mine, purposes=[purpose])
    their_dataset = DatasetFactory(site=theirs, purposes=[purpose])
    client = api(steward_of(make_user, mine))
    rows = [
        {
            "subject_pseudonym": "s1",
            "purpose": "topics",
            "kind": "grant",
            "occurred_at": "2026-01-05T09:00:00Z",
        }
    ]

    ok = client.post(f"/api/v1/datasets/{my_dataset.pk}/consent-events", rows, format="json")
    assert ok.status_code == 201
    refused = client.post(
        f"/api/v1/datasets/{their_dataset.pk}/consent-events", rows, format="json"
    )
    assert refused.status_code == 404
    assert not Consent.objects.filter(dataset=their_dataset).exists()
    # A steward reads and uploads; it does not change the dataset's legal facts.
    patch = client.patch(f"/api/v1/datasets/{my_dataset.pk}", {"record_count": 9}, format="json")
    assert patch.status_code == 403


def test_steward_role_without_a_site_link_sees_nothing(api, make_user):
    DatasetFactory()
    client = api(make_user(roles.SITE_STEWARD, username="orphan"))
    assert client.get("/api/v1/datasets").json()["count"] == 0


def test_patch_with_a_field_the_endpoint_does_not_take_is_400(dpo_api):
    site = SiteFactory(slug="fixed")
    response = dpo_api.patch(f"/api/v1/sites/{site.pk}", {"slug": "renamed"}, format="json")
    assert response.status_code == 400
    assert "slug" in response.json()
    site.refresh_from_db()
    assert site.slug == "fixed"


def test_semicolon_csv_from_a_de_es_fr_pl_spreadsheet_is_read_like_the_comma_one(dpo_api):
    """Issue 19: spreadsheets in de/es/fr/pl locales save CSV with semicolons. The API reads
    the separator off the header, as the admin upload does; a semicolon header whose rows
    are cut by commas is refused by line, not half-read."""
    dataset = DatasetFactory(purposes=[PurposeFactory(code="topics")])
    url = f"/api/v1/datasets/{dataset.pk}/consent-events"
    body = (
        "subject_pseudonym;purpose;kind;occurred_at;expires_at\n"
        "s1;topics;grant;2026-01-05T09:00:00Z;\n"
        "s2;topics;grant;2026-01-05T09:00:00Z;2027-01-05T09:00:00Z\n"
    )
    response = dpo_api.generic("POST", url, body, content_type="text/csv")
    assert response.status_code == 201, response.content
    assert response.json()["granted"] == 2
    assert sorted(Consent.objects.values_list("subject_pseudonym", flat=True)) == ["s1", "s2"]

    mixed = "subject_pseudonym;purpose;kind;occurred_at\ns3,topics,grant,2026-01-05T09:00:00Z\n"
    response = dpo_api.generic("POST", url, mixed, content_type="text/csv")
    assert response.status_code == 400
    assert Consent.objects.count() == 2
