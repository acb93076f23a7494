"""Services of the sites app: what they write, which ledger event, and what they refuse."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import rfc8785

from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from sites import services
from sites.choices import LawfulBasis, PolicyStatus, SiteStatus
from sites.models import Dataset, Purpose, ResidencyPolicy, Site
from tests.factories import DatasetFactory, PolicyFactory, PurposeFactory, SiteFactory, sha

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
TODAY = dt.date.today()


def last_event() -> LedgerEntry:
    return LedgerEntry.objects.order_by("-seq").first()


def events() -> int:
    return LedgerEntry.objects.count()


def site_kwargs(**overrides):
    values = {
        "slug": "de-legal",
        "organisation": "Legal Texts e.V.",
        "country": "DE",
        "contact_email": "dpo@legal.example",
        "agreement_type": "joint_controller",
        "agreement_document_hash": sha("agreement"),
        "agreement_valid_from": TODAY - dt.timedelta(days=10),
        "agreement_valid_until": TODAY + dt.timedelta(days=300),
        "compute_country": "DE",
    }
    values.update(overrides)
    return values


def dataset_kwargs(site, **overrides):
    values = {
        "site": site,
        "name": "contracts",
        "lawful_basis": LawfulBasis.CONSENT,
        "purposes": [PurposeFactory()],
        "retention_until": TODAY + dt.timedelta(days=365),
        "processing_countries": ["EEA"],
        "data_categories": ["text"],
    }
    values.update(overrides)
    return values


# ----------------------------------------------------------------------------- sites


def test_site_register_writes_site_and_ledger_event_without_contact_email():
    site = services.site_register(actor=SYSTEM, **site_kwargs())

    assert Site.objects.get(slug="de-legal").country == "DE"
    entry = last_event()
    assert entry.event_type == "site.registered"
    assert (entry.subject_type, entry.subject_id) == ("site", str(site.pk))
    payload = json.loads(entry.payload)
    assert payload["slug"] == "de-legal"
    assert payload["agreement_document_hash"] == sha("agreement")
    assert "legal.example" not in entry.payload  # personal data stays off the ledger


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("country", "XX"),
        ("country", "de"),
        ("compute_country", "EU"),
        ("agreement_document_hash", "abc"),
        ("agreement_valid_until", TODAY - dt.timedelta(days=30)),
        ("contact_email", "not-an-email"),
        ("one_credentials_ref", "s3cr3t-password"),
        ("one_zone_endpoint", "ftp://zone"),
        ("supernode_public_key", "not a key"),
        ("slug", "has spaces"),
        ("organisation", "  "),
    ],
)
def test_site_register_refuses_bad_field_and_writes_nothing(field, value):
    with pytest.raises(InvalidInput) as exc:
        services.site_register(actor=SYSTEM, **site_kwargs(**{field: value}))

    assert field in exc.value.errors
    assert not Site.objects.exists()
    assert events() == 0


def test_site_register_refuses_a_taken_slug():
    SiteFactory(slug="de-legal")
    with pytest.raises(InvalidInput) as exc:
        services.site_register(actor=SYSTEM, **site_kwargs())
    assert "already exists" in exc.value.errors["slug"][0]


def test_site_register_accepts_credentials_reference_and_pem_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    site = services.site_register(
        actor=SYSTEM,
        **site_kwargs(
            one_credentials_ref="env:ONE_DE_AUTH",
            one_zone_endpoint="http://127.0.0.1:2633/RPC2",
            supernode_public_key=pem,
        ),
    )
    assert site.one_credentials_ref == "env:ONE_DE_AUTH"


def test_site_update_changes_fields_and_names_them_in_the_ledger():
    site = SiteFactory(country="DE")
    site = services.site_update(actor=SYSTEM, site=site, compute_country="AT", organisation="New")

    site.refresh_from_db()
    assert site.compute_country == "AT"
    payload = json.loads(last_event().payload)
    assert last_event().event_type == "site.updated"
    assert payload["changed"] == ["compute_country", "organisation"]


def test_site_update_refuses_slug_and_status_changes():
    site = SiteFactory()
    with pytest.raises(InvalidInput) as exc:
        services.site_update(actor=SYSTEM, site=site, slug="other", status="suspended")
    assert set(exc.value.errors) == {"slug", "status"}


def test_site_suspend_and_activate_record_reason_and_refuse_repeats():
    site = SiteFactory()
    services.site_suspend(actor=SYSTEM, site=site, reason="agreement under review")
    site.refresh_from_db()
    assert site.status == SiteStatus.SUSPENDED
    assert site.status_reason == "agreement under review"
    payload = json.loads(last_event().payload)
    assert last_event().event_type == "site.suspended"
    assert payload["reason_sha256"] == sha("agreement under review")

    with pytest.raises(TransitionNotAllowed):
        services.site_suspend(actor=SYSTEM, site=site, reason="again")
    services.site_activate(actor=SYSTEM, site=site, reason="agreement renewed")
    site.refresh_from_db()
    assert site.status == SiteStatus.ACTIVE
    assert last_event().event_type == "site.activated"


def test_site_suspend_needs_a_reason():
    site = SiteFactory()
    with pytest.raises(InvalidInput) as exc:
        services.site_suspend(actor=SYSTEM, site=site, reason=" ")
    assert "reason" in exc.value.errors


# -------------------------------------------------------------------------- purposes


def test_purpose_create_and_duplicate_code():
    purpose = services.purpose_create(actor=SYSTEM, code="topic-classification", name="Topics")
    assert last_event().event_type == "purpose.created"
    assert json.loads(last_event().payload)["code"] == purpose.code

    with pytest.raises(InvalidInput) as exc:
        services.purpose_create(actor=SYSTEM, code="topic-classification", name="Again")
    assert "code" in exc.value.errors
    assert Purpose.objects.count() == 1


# -------------------------------------------------------------------------- datasets


def test_dataset_register_writes_dataset_with_purposes_and_event():
    site = SiteFactory()
    purpose = PurposeFactory(code="topics")
    dataset = services.dataset_register(
        actor=SYSTEM, **dataset_kwargs(site, purposes=[purpose], record_count=0)
    )

    assert list(dataset.purposes.values_list("code", flat=True)) == ["topics"]
    entry = last_event()
    assert entry.event_type == "dataset.registered"
    payload = json.loads(entry.payload)
    assert payload["purposes"] == ["topics"]
    assert payload["site_id"] == site.pk


def test_dataset_register_refuses_a_suspended_site():
    site = SiteFactory(status=SiteStatus.SUSPENDED)
    with pytest.raises(InvalidInput) as exc:
        services.dataset_register(actor=SYSTEM, **dataset_kwargs(site))
    assert "suspended" in exc.value.errors["site"][0]
    assert not Dataset.objects.exists()
    assert events() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"special_category": True}, "art9_condition"),
        ({"art9_condition": "9(2)(a)"}, "art9_condition"),
        ({"processing_countries": ["EEA", "ZZ"]}, "processing_countries"),
        ({"processing_countries": []}, "processing_countries"),
        ({"retention_until": "not a date"}, "retention_until"),
        ({"lawful_basis": "6(1)(z)"}, "lawful_basis"),
        ({"purposes": []}, "purposes"),
        ({"data_categories": []}, "data_categories"),
        ({"record_count": -1}, "record_count"),
    ],
)
def test_dataset_register_refuses_inconsistent_facts(overrides, field):
    site = SiteFactory()
    with pytest.raises(InvalidInput) as exc:
        services.dataset_register(actor=SYSTEM, **dataset_kwargs(site, **overrides))
    assert field in exc.value.errors
    assert not Dataset.objects.exists()


def test_a_past_retention_date_is_recorded_and_flagged_late_in_the_ledger():
    """Facts about the past: a DPO records a retention that already ended (Art. 5(1)(e));
    the gate refuses the dataset, and the ledger says the date was recorded late."""
    past = TODAY - dt.timedelta(days=1)
    dataset = services.dataset_register(
        actor=SYSTEM, **dataset_kwargs(SiteFactory(), retention_until=past)
    )
    assert dataset.retention_until == past
    entry = LedgerEntry.objects.filter(event_type="dataset.registered").last()
    assert json.loads(entry.payload)["recorded_late"] == ["retention_until"]
    assert entry.actor_repr and entry.created_at  # who recorded it, and when
    services.dataset_update(
        actor=SYSTEM, dataset=dataset, retention_until=TODAY + dt.timedelta(days=9)
    )
    entry = LedgerEntry.objects.filter(event_type="dataset.updated").last()
    assert json.loads(entry.payload)["recorded_late"] == []


def test_dataset_register_accepts_special_category_with_condition():
    dataset = services.dataset_register(
        actor=SYSTEM,
        **dataset_kwargs(SiteFactory(), special_category=True, art9_condition="9(2)(j)"),
    )
    assert dataset.art9_condition == "9(2)(j)"


def test_dataset_update_and_withdraw():
    dataset = DatasetFactory()
    other = PurposeFactory(code="summaries")
    services.dataset_update(actor=SYSTEM, dataset=dataset, purposes=[other], record_count=5)
    dataset.refresh_from_db()
    assert list(dataset.purposes.values_list("code", flat=True)) == ["summaries"]
    assert json.loads(last_event().payload)["changed"] == ["purposes", "record_count"]

    services.dataset_withdraw(actor=SYSTEM, dataset=dataset, reason="site left")
    dataset.refresh_from_db()
    assert dataset.withdrawn_at is not None
    assert last_event().event_type == "dataset.withdrawn"
    with pytest.raises(TransitionNotAllowed):
        services.dataset_withdraw(actor=SYSTEM, dataset=dataset, reason="again")
    with pytest.raises(TransitionNotAllowed):
        services.dataset_update(actor=SYSTEM, dataset=dataset, record_count=1)


# -------------------------------------------------------------------------- policies


def test_policy_versions_count_up_and_publish_sets_content_hash():
    SiteFactory(slug="us-site")
    draft = services.policy_create_draft(
        actor=SYSTEM,
        name="eu-federation",
        allowed_areas=["EEA"],
        transfer_mechanisms={"us-site": "scc"},
        privacy_budget_epsilon=8,
    )
    assert (draft.version, draft.status) == (1, PolicyStatus.DRAFT)
    assert last_event().event_type == "policy.drafted"

    published = services.policy_publish(actor=SYSTEM, policy=draft)
    expected = rfc8785.dumps(
        {
            "name": "eu-federation",
            "version": 1,
            "allowed_areas": ["EEA"],
            "transfer_mechanisms": {"us-site": "scc"},
            "min_eligible_sites": 1,
            "min_records_per_site": 1,
            "requires_approval": True,
            "approvals_required": 1,
            "requires_controller_dpo_approval": False,
            "requires_dpia": True,
            "privacy_budget_epsilon": 8.0,
            # The transfer register is part of what a published version fixes.
            "model_updates_personal_data": True,
            "aggregator_operator": {},
            "host_operator": {},
            "transfer_safeguards": [],
            "recipient_certifications": [],
            "dpf_listing_max_age_days": 90,
        }
    )
    import hashlib

    assert published.content_hash == hashlib.sha256(expected).hexdigest()
    assert published.published_at is not None
    assert last_event().event_type == "policy.published"
    assert json.loads(last_event().payload)["content_hash"] == published.content_hash

    v2 = services.policy_new_version(actor=SYSTEM, policy=published, min_eligible_sites=2)
    assert (v2.version, v2.status, v2.min_eligible_sites) == (2, PolicyStatus.DRAFT, 2)
    assert v2.allowed_areas == ["EEA"]
    assert json.loads(last_event().payload)["based_on"] == published.pk
    with pytest.raises(TransitionNotAllowed):
        services.policy_create_draft(actor=SYSTEM, name="eu-federation", allowed_areas=["EEA"])


def test_policy_update_draft_refuses_a_published_version_with_400_shape():
    policy = PolicyFactory(status=PolicyStatus.PUBLISHED, min_eligible_sites=1)
    before = events()
    with pytest.raises(InvalidInput) as exc:
        services.policy_update_draft(actor=SYSTEM, policy=policy, min_eligible_sites=3)
    assert "immutable" in exc.value.errors["status"][0]
    policy.refresh_from_db()
    assert policy.min_eligible_sites == 1
    assert events() == before


def test_policy_publish_twice_is_a_wrong_state():
    policy = PolicyFactory(status=PolicyStatus.PUBLISHED)
    with pytest.raises(TransitionNotAllowed):
        services.policy_publish(actor=SYSTEM, policy=policy)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"allowed_areas": ["EEA", "Atlantis"]}, "allowed_areas"),
        ({"transfer_mechanisms": {"nowhere": "scc"}}, "transfer_mechanisms"),
        ({"transfer_mechanisms": {"real-site": "handshake"}}, "transfer_mechanisms"),
        ({"min_eligible_sites": 0}, "min_eligible_sites"),
        ({"privacy_budget_epsilon": -1.0}, "privacy_budget_epsilon"),
        ({"privacy_budget_epsilon": float("inf")}, "privacy_budget_epsilon"),
        ({"requires_dpia": "yes"}, "requires_dpia"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_policy_create_draft_refuses_bad_rules(fields, field):
    SiteFactory(slug="real-site")
    fields = {"allowed_areas": ["EEA"], **fields}
    with pytest.raises(InvalidInput) as exc:
        services.policy_create_draft(actor=SYSTEM, name="p", **fields)
    assert field in exc.value.errors
    assert not ResidencyPolicy.objects.exists()


def test_every_service_event_continues_the_ledger_chain():
    site = services.site_register(actor=SYSTEM, **site_kwargs())
    purpose = services.purpose_create(actor=SYSTEM, code="topics", name="Topics")
    services.dataset_register(actor=SYSTEM, **dataset_kwargs(site, purposes=[purpose]))
    draft = services.policy_create_draft(actor=SYSTEM, name="eu", allowed_areas=["EEA"])
    services.policy_publish(actor=SYSTEM, policy=draft)

    seqs = list(LedgerEntry.objects.values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert [e.event_type for e in LedgerEntry.objects.all()] == [
        "site.registered",
        "purpose.created",
        "dataset.registered",
        "policy.drafted",
        "policy.published",
    ]
