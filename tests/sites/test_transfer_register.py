"""The transfer register through the services, API and admin; the adequacy list as data.

Chapter V facts are recorded once and read by the gate: who operates each zone (on the
site), who operates the aggregator and fedgov's host, the Art. 46/47/49 grounds and the
recipients' qualifying facts (on the policy version), and the Art. 45 adequacy list
(shipped file, or a version a DPO recorded). Every bad value is a 400 naming its field.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites import services
from sites.adequacy import ADEQUACY_FILE, current_adequacy, parse_adequacy, shipped_adequacy
from sites.models import AdequacyListVersion
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    PurposeFactory,
    RunFactory,
    SiteFactory,
    sha,
)
from training.gate import from_snapshot, replay
from training.gate.context import to_snapshot
from training.services.gate import round_gate

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
US_CLOUD = {"organisation": "Acme Cloud Inc.", "country": "US", "role": "processor"}


def draft(**fields):
    return services.policy_create_draft(actor=ACTOR, name="eu", allowed_areas=["EEA"], **fields)


SCC_OK = {
    "exporter": "de-legal",
    "importer": "Acme Cloud Inc.",
    "mechanism": "scc",
    "scc_module": 2,
    "signed_on": "2026-01-10",
    "tia_reference": "TIA-1",
}

# (field values, the error key the 400 must name, a phrase of the reason)
BAD_POLICY = [
    (
        {"aggregator_operator": {"organisation": "X", "country": "US"}},
        "aggregator_operator",
        "missing role",
    ),
    (
        {"host_operator": {"organisation": "X", "country": "XX", "role": "processor"}},
        "host_operator.country",
        "not an ISO",
    ),
    (
        {"host_operator": {"organisation": "X", "country": "DE", "role": "owner"}},
        "host_operator.role",
        "not one of",
    ),
    ({"host_operator": "Hetzner"}, "host_operator", "must be an object"),
    (
        {"transfer_safeguards": [{**SCC_OK, "scc_module": 5}]},
        "transfer_safeguards[0].scc_module",
        "1, 2, 3 or 4",
    ),
    (
        {"transfer_safeguards": [{**SCC_OK, "signed_on": "soon"}]},
        "transfer_safeguards[0].signed_on",
        "date",
    ),
    (
        {"transfer_safeguards": [{**SCC_OK, "tia_reference": ""}]},
        "transfer_safeguards[0].tia_reference",
        "must not be empty",
    ),
    (
        {"transfer_safeguards": [{**SCC_OK, "exporter": "nowhere"}]},
        "transfer_safeguards[0]",
        "not a registered site",
    ),
    ({"transfer_safeguards": [SCC_OK, SCC_OK]}, "transfer_safeguards[1]", "listed twice"),
    (
        {"transfer_safeguards": [{**SCC_OK, "mechanism": "handshake"}]},
        "transfer_safeguards[0].mechanism",
        "not one of",
    ),
    (
        {
            "transfer_safeguards": [
                {"exporter": "de-legal", "importer": "Y", "mechanism": "bcr", "tia_reference": "T"}
            ]
        },
        "transfer_safeguards[0].reference",
        "must not be empty",
    ),
    (
        {
            "transfer_safeguards": [
                {
                    "exporter": "de-legal",
                    "importer": "Y",
                    "mechanism": "derogation",
                    "ground": "49(2)",
                    "reason": "r",
                }
            ]
        },
        "transfer_safeguards[0].ground",
        "not one of",
    ),
    (
        {
            "transfer_safeguards": [
                {
                    "exporter": "de-legal",
                    "importer": "Y",
                    "mechanism": "derogation",
                    "ground": "49(1)(a)",
                    "reason": " ",
                }
            ]
        },
        "transfer_safeguards[0].reason",
        "must not be empty",
    ),
    (
        {"transfer_safeguards": [{**SCC_OK, "extra": 1}]},
        "transfer_safeguards[0]",
        "unknown field(s) extra",
    ),
    (
        {
            "recipient_certifications": [
                {
                    "organisation": "A",
                    "country": "US",
                    "scheme": "iso27001",
                    "listing": "L",
                    "checked_on": "2026-01-01",
                }
            ]
        },
        "recipient_certifications[0].scheme",
        "not one of",
    ),
    (
        {
            "recipient_certifications": [
                {
                    "organisation": "A",
                    "country": "US",
                    "scheme": "dpf",
                    "listing": "L",
                    "checked_on": "yesterday",
                }
            ]
        },
        "recipient_certifications[0].checked_on",
        "date",
    ),
    ({"dpf_listing_max_age_days": 0}, "dpf_listing_max_age_days", "at least 1"),
    ({"dpf_listing_max_age_days": 400}, "dpf_listing_max_age_days", "at most 366"),
    ({"model_updates_personal_data": "yes"}, "model_updates_personal_data", "true or false"),
]


@pytest.mark.parametrize(("fields", "key", "phrase"), BAD_POLICY, ids=[b[1] for b in BAD_POLICY])
def test_a_bad_transfer_register_is_refused_naming_the_field(fields, key, phrase):
    SiteFactory(slug="de-legal")
    before = LedgerEntry.objects.count()
    with pytest.raises(InvalidInput) as exc:
        draft(**fields)
    assert key in exc.value.errors, exc.value.errors
    assert any(phrase in r for r in exc.value.errors[key]), exc.value.errors[key]
    assert LedgerEntry.objects.count() == before


def test_a_valid_register_is_part_of_the_published_content_hash():
    SiteFactory(slug="de-legal")
    policy = draft(
        aggregator_operator=US_CLOUD,
        transfer_safeguards=[SCC_OK],
        recipient_certifications=[
            {
                "organisation": "Acme Cloud Inc.",
                "country": "US",
                "scheme": "dpf",
                "listing": "DPF-1",
                "checked_on": "2026-05-01",
            }
        ],
        model_updates_personal_data=False,
    )
    published = services.policy_publish(actor=ACTOR, policy=policy)
    event = json.loads(LedgerEntry.objects.filter(event_type="policy.published").last().payload)
    assert event["aggregator_operator"] == US_CLOUD
    assert event["transfer_safeguards"] == [SCC_OK]
    assert event["model_updates_personal_data"] is False
    other = services.policy_new_version(actor=ACTOR, policy=published, transfer_safeguards=[])
    assert services.policy_content_hash(other) != published.content_hash


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"zone_operator": "Acme Cloud Inc."}, "zone_operator_country"),
        (
            {"zone_operator": "Acme", "zone_operator_country": "US", "zone_operator_role": "x"},
            "zone_operator_role",
        ),
        # The site's own name is the site: its country must be the site's country.
        (
            {
                "zone_operator": "Blogs S.L.",
                "zone_operator_country": "US",
                "zone_operator_role": "joint_controller",
            },
            "zone_operator_country",
        ),
    ],
)
def test_zone_operator_is_all_three_facts_or_none(fields, key):
    with pytest.raises(InvalidInput) as exc:
        services.site_register(
            actor=ACTOR,
            slug="es-blogs",
            organisation="Blogs S.L.",
            country="ES",
            contact_email="dpo@blogs.example",
            agreement_type="processor",
            agreement_document_hash=sha("a"),
            agreement_valid_from="2026-01-01",
            agreement_valid_until="2027-01-01",
            compute_country="ES",
            **fields,
        )
    assert key in exc.value.errors


def test_api_refuses_a_bad_safeguard_with_400_naming_the_entry(api, dpo):
    SiteFactory(slug="de-legal")
    body = {
        "name": "eu",
        "allowed_areas": ["EEA"],
        "transfer_safeguards": [{**SCC_OK, "tia_reference": ""}],
    }
    response = api(dpo).post("/api/v1/policies", body, format="json")
    assert response.status_code == 400
    assert "transfer_safeguards[0].tia_reference" in response.json()
    ok = api(dpo).post(
        "/api/v1/policies",
        {**body, "transfer_safeguards": [SCC_OK], "aggregator_operator": US_CLOUD},
        format="json",
    )
    assert ok.status_code == 201, ok.json()
    assert ok.json()["transfer_safeguards"] == [SCC_OK]
    assert ok.json()["aggregator_operator"] == US_CLOUD


def test_api_site_carries_its_zone_operator(api, dpo):
    body = {
        "slug": "nl-media",
        "organisation": "Mediahuis Noord B.V.",
        "country": "NL",
        "contact_email": "dpo@nl.example",
        "agreement_type": "joint_controller",
        "agreement_document_hash": sha("a"),
        "agreement_valid_from": "2026-01-01",
        "agreement_valid_until": "2027-12-31",
        "compute_country": "US",
        "zone_operator": "Atlantic Cloud Hosting Inc.",
        "zone_operator_country": "US",
        "zone_operator_role": "processor",
    }
    response = api(dpo).post("/api/v1/sites", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["zone_operator_country"] == "US"
    bad = api(dpo).post(
        "/api/v1/sites", {**body, "slug": "nl-2", "zone_operator_role": "boss"}, format="json"
    )
    assert bad.status_code == 400 and "zone_operator_role" in bad.json()


# ------------------------------------------------------------------ adequacy list


def _list_text(version: str, **change) -> str:
    data = json.loads(ADEQUACY_FILE.read_text())
    data["version"] = version
    for decision in data["decisions"]:
        decision.update(change.get(decision["country"], {}))
    return json.dumps(data)


def test_the_shipped_list_is_valid_and_scopes_the_us_and_canada():
    shipped = shipped_adequacy()
    scopes = {d.country: d.scope for d in shipped.decisions}
    assert scopes["US"] == "dpf" and scopes["CA"] == "pipeda" and scopes["CH"] == "country"
    us = next(d for d in shipped.decisions if d.country == "US")
    assert "C(2023) 4745" in us.reference and us.adopted_on == "2023-07-10"


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("[]", "JSON object"),
        ('{"version": "v", "decisions": []}', "non-empty list"),
        ('{"version": "v", "decisions": [{"country": "US"}]}', "missing"),
        (_list_text("v", US={"scope": "everyone"}), "scope"),
        (_list_text("v", US={"adopted_on": "2023-13-01"}), "not a date"),
        (_list_text("v", US={"country": "XX"}), "ISO 3166"),
        (_list_text("v", US={"country": "CH"}), "listed twice"),
        ("{not json", "not JSON"),
    ],
)
def test_a_bad_adequacy_list_is_refused_and_nothing_is_written(text, phrase):
    with pytest.raises(InvalidInput) as exc:
        services.adequacy_list_record(actor=ACTOR, content=text)
    assert phrase in exc.value.errors["content"][0]
    assert not AdequacyListVersion.objects.exists()
    assert not LedgerEntry.objects.filter(event_type="adequacy.updated").exists()


def test_a_recorded_list_is_in_force_ledgered_and_cited_by_the_gate():
    text = _list_text("2026-12-01.1", US={"scope": "country"})
    row = services.adequacy_list_record(actor=ACTOR, content=text)
    event = LedgerEntry.objects.get(event_type="adequacy.updated")
    payload = json.loads(event.payload)
    assert payload["version"] == "2026-12-01.1"
    assert payload["sha256"] == parse_adequacy(text).sha256 == row.sha256
    assert current_adequacy().version == "2026-12-01.1"
    with pytest.raises(InvalidInput, match="already recorded"):
        services.adequacy_list_record(actor=ACTOR, content=text)
    with pytest.raises(InvalidInput, match="already recorded"):
        services.adequacy_list_record(actor=ACTOR, content=_list_text(shipped_adequacy().version))


def _gated_site(*, zone_operator=US_CLOUD, **policy):
    purpose = PurposeFactory()
    run = RunFactory(purpose=purpose, policy=PolicyFactory(**policy))
    DpiaFactory(run=run)
    site = SiteFactory(
        slug="nl-media",
        country="NL",
        zone_operator=zone_operator["organisation"],
        zone_operator_country=zone_operator["country"],
        zone_operator_role=zone_operator["role"],
    )
    ds = DatasetFactory(site=site, purposes=[purpose])
    run.datasets.add(ds)
    ConsentFactory(
        dataset=ds,
        purpose=purpose,
        subject_pseudonym="nl-s1",
        granted_at=timezone.now() - timezone.timedelta(days=1),
    )
    return run


def test_gate_denies_data_to_an_uncertified_us_processor_and_records_the_list_version():
    run = _gated_site()
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    assert decision.outcome == "blocked"
    snapshot = json.loads(decision.snapshot)
    assert snapshot["adequacy"]["version"] == shipped_adequacy().version
    assert snapshot["adequacy"]["sha256"] == shipped_adequacy().sha256
    assert snapshot["policy"]["model_updates_personal_data"] is True
    assert snapshot["sites"][0]["zone_operator"] == US_CLOUD
    transfer = next(r for r in replay(snapshot).sites[0].results if r.rule_id == "transfer")
    assert not transfer.ok
    assert "Organisation of nl-media (NL) → Acme Cloud Inc. (US, processor)" in transfer.reason


def test_gate_allows_the_same_processor_once_its_dpf_listing_is_recorded():
    today = timezone.now().date().isoformat()
    run = _gated_site(
        recipient_certifications=[
            {
                "organisation": "Acme Cloud Inc.",
                "country": "US",
                "scheme": "dpf",
                "listing": "DPF-42",
                "checked_on": today,
            }
        ]
    )
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    assert decision.outcome == "allowed", decision.reason


def test_an_old_snapshot_replays_under_its_own_list_after_an_update():
    run = _gated_site()
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    # The DPO records a list where the US decision covers everyone: old decisions keep
    # the list they cited.
    services.adequacy_list_record(actor=ACTOR, content=_list_text("x.2", US={"scope": "country"}))
    stored = json.loads(decision.snapshot)
    assert replay(stored).outcome == "blocked"
    assert to_snapshot(from_snapshot(stored)) == stored


def test_a_schema_1_snapshot_is_refused_not_misread():
    run = _gated_site()
    stored = json.loads(round_gate(actor=ACTOR, run=run, round_no=1).snapshot)
    with pytest.raises(ValueError, match="unknown snapshot schema 1"):
        replay({**stored, "schema": 1})


def test_admin_records_a_new_list_through_the_service(admin_client):
    url = reverse("admin:sites_adequacylistversion_add")
    assert admin_client.get(url).status_code == 200
    bad = admin_client.post(url, {"content": "{}"})
    assert bad.status_code == 200 and not AdequacyListVersion.objects.exists()
    response = admin_client.post(url, {"content": _list_text("2027-01-01.1")})
    assert response.status_code == 302
    row = AdequacyListVersion.objects.get()
    assert row.version == "2027-01-01.1"
    assert LedgerEntry.objects.filter(event_type="adequacy.updated").count() == 1
    change = reverse("admin:sites_adequacylistversion_change", args=[row.pk])
    assert admin_client.post(change, {"content": _list_text("other")}).status_code == 403
