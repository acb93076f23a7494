"""The API in the reader's language (issue 19): the OpenAPI schema's descriptions, DRF's
and fedgov's own refusals, and a consent upload whose messages name each row one way.

The reader's language is their profile's, else ``Accept-Language``; a token client has no
session, so its owner's profile is read when DRF authenticates the token.
"""

from __future__ import annotations

import html
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from fedgov import roles
from fedgov.models import Profile
from sites.models import Consent, SiteSteward
from tests.factories import DatasetFactory, PurposeFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db

SCHEMA = "/api/schema/?format=json"
UPLOAD = "/api/v1/datasets/{pk}/consent-events"

# A few named descriptions, each from another place: the settings' API description, an
# extend_schema summary, a serializer's help_text, a filter's choices, drf-spectacular's own.
DESCRIBED = {
    "en": {
        "info": "Governance, GDPR gating and tamper-evident audit for federated learning.",
        "summary": "Upload consent grants and withdrawals (JSON list or text/csv)",
        "purpose": "Purpose code",
        "digest": "SHA-256 of the canonical batch (RFC 8785)",
        "code": "the reason's stable code",
        "token": 'Token-based authentication with required prefix "Token"',
    },
    "de": {
        "info": "Governance, DSGVO-Prüfung und manipulationssicheres Prüfprotokoll für "
        "föderiertes Lernen.",
        "summary": "Erteilte und widerrufene Einwilligungen hochladen (JSON-Liste oder text/csv)",
        "purpose": "Code des Zwecks",
        "digest": "SHA-256 des kanonischen Stapels (RFC 8785)",
        "code": "stabiler Code des Grundes",
        "token": 'Token-Authentifizierung mit dem vorgeschriebenen Präfix "Token"',
    },
    "pl": {
        "info": "Nadzór, kontrola zgodności z RODO i odporny na manipulacje audyt uczenia "
        "federacyjnego.",
        "summary": "Prześlij udzielone i wycofane zgody (lista JSON lub text/csv)",
        "purpose": "Kod celu",
        "digest": "SHA-256 kanonicznej partii (RFC 8785)",
        "code": "stały kod przyczyny",
        "token": 'Uwierzytelnianie tokenem z wymaganym prefiksem "Token"',
    },
}


def _described(schema: dict) -> dict[str, str]:
    components = schema["components"]["schemas"]
    upload = schema["paths"]["/api/v1/datasets/{id}/consent-events"]["post"]
    return {
        "info": schema["info"]["description"],
        "summary": upload["summary"],
        "purpose": components["ConsentEventIn"]["properties"]["purpose"]["description"],
        "digest": components["ConsentBatchResult"]["properties"]["digest"]["description"],
        "code": components["RuleResult"]["properties"]["code"]["description"],
        "token": schema["components"]["securitySchemes"]["tokenAuth"]["description"],
    }


def _schema(client, lang: str) -> dict:
    response = client.get(SCHEMA, HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 200
    assert response.headers["Content-Language"] == lang
    assert "Accept-Language" in response.headers["Vary"]
    return json.loads(response.content)


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


# ---------------------------------------------------------------------------- the schema


def test_the_schema_is_described_in_the_language_of_each_request(api, dpo):
    """One process, one language after another: nothing of one reader's schema is kept
    for the next (the schema is built per request; no cache holds a language)."""
    client = api(dpo)
    for lang in ("de", "pl", "en", "de"):
        assert _described(_schema(client, lang)) == DESCRIBED[lang], lang


def test_the_schema_shows_no_developer_docstring(api, dpo):
    """View and serializer docstrings are English notes for developers: not descriptions."""
    text = json.dumps(_schema(api(dpo), "de"), ensure_ascii=False)
    for docstring in (
        "Federation participants. DPO writes",  # SiteViewSet
        "A serializer that only describes a response",  # OutputSerializer
        "Place a legal hold (Legal, DPO)",  # now a translated description, not English
    ):
        assert docstring not in text
    assert "Eine rechtliche Sicherung anordnen (Recht, DSB)" in text
    # A filter's choices, in the reader's words.
    assert "Erteilt, nicht abgelaufen, nicht widerrufen" in text


@pytest.mark.parametrize("signed_in", ["session", "token"])
def test_the_profile_language_wins_over_accept_language(make_user, signed_in):
    user = make_user(roles.DPO, username=f"dpo-{signed_in}")
    Profile.objects.update_or_create(user=user, defaults={"language": "pl"})
    if signed_in == "token":
        client = _token_client(user)
    else:
        client = Client()
        client.force_login(user)  # sign-in reads the profile into the session
    response = client.get(SCHEMA, HTTP_ACCEPT_LANGUAGE="de")
    assert response.status_code == 200
    assert _described(json.loads(response.content)) == DESCRIBED["pl"]


# ------------------------------------------------------------------ refusals of a request

# DRF's own wording (its shipped catalogues), fedgov's serializer check, fedgov's service.
REFUSALS = {
    "de": {
        "required": "Dieses Feld ist zwingend erforderlich.",
        "date": "Datum hat das falsche Format.",
        "unknown": "kein Feld, das dieser Endpunkt annimmt",
        "kind": "muss grant oder withdraw sein",
        "summary": "1 von 1 Ereignis abgelehnt (erstes: events[0], kind); nichts wurde erfasst",
    },
    "pl": {
        "required": "To pole jest wymagane.",
        "date": "Data ma zły format.",
        "unknown": "ten punkt końcowy nie przyjmuje takiego pola",
        "kind": "musi mieć wartość grant lub withdraw",
        "summary": "odrzucono 1 z 1 zdarzenia (pierwsze: events[0], kind); niczego nie zapisano",
    },
}


def _refusals(client, lang: str, **headers) -> dict[str, str]:
    dataset = DatasetFactory(purposes=[PurposeFactory(code=f"topics-{lang}")])
    shape = client.post(
        "/api/v1/datasets",
        {"name": "x", "retention_until": "31.12.2030"},
        format="json",
        HTTP_ACCEPT_LANGUAGE=lang,
        **headers,
    )
    unknown = client.post(
        "/api/v1/datasets", {"colour": "blue"}, format="json", HTTP_ACCEPT_LANGUAGE=lang
    )
    event = {"subject_pseudonym": "s1", "purpose": f"topics-{lang}", "kind": "revoke"}
    event["occurred_at"] = "2026-01-05T09:00:00+00:00"
    batch = client.post(
        UPLOAD.format(pk=dataset.pk), [event], format="json", HTTP_ACCEPT_LANGUAGE=lang
    )
    assert (shape.status_code, unknown.status_code, batch.status_code) == (400, 400, 400)
    return {
        "required": shape.json()["site"][0],
        "date": shape.json()["retention_until"][0],
        "unknown": unknown.json()["colour"][0],
        "kind": batch.json()["events"]["0"]["kind"][0],
        "summary": batch.json()["non_field_errors"][0],
    }


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_drfs_and_fedgovs_refusals_read_in_the_requests_language(api, dpo, lang):
    found = _refusals(api(dpo), lang)
    expected = REFUSALS[lang]
    assert found["date"].startswith(expected["date"])  # then the formats DRF accepts
    assert {k: v for k, v in found.items() if k != "date"} == {
        k: v for k, v in expected.items() if k != "date"
    }


def test_a_token_client_reads_refusals_in_its_owners_language(make_user):
    user = make_user(roles.DPO, username="dpo-token-pl")
    Profile.objects.create(user=user, language="pl")
    found = _refusals(_token_client(user), "de")
    assert found["required"] == REFUSALS["pl"]["required"]
    assert found["kind"] == REFUSALS["pl"]["kind"]


# ---------------------------------------------------------- one name for each refused row

CSV = (
    "subject_pseudonym,purpose,kind,occurred_at,expires_at\n"
    "s1,topics,grant,2026-01-05T09:00:00+00:00,\n"
    "s2,topics,grant,2026-01-05T09:00:00+00:00,\n"
    "s3,topics,revoke,2026-01-05T09:00:00+00:00,\n"  # the 3rd event: line 4 of the file
    "s1,topics,grant,2026-01-05T09:00:00+00:00,\n"  # line 5 repeats line 2
)


def _upload_in_admin(dataset, content: str) -> str:
    steward = UserFactory(username="stew-rows", is_staff=True, roles=[roles.SITE_STEWARD])
    SiteSteward.objects.create(user=steward, site=dataset.site)
    client = Client()
    client.force_login(steward)
    response = client.post(
        "/admin/sites/consentevent/upload/",
        {"dataset": dataset.pk, "file": SimpleUploadedFile("c.csv", content.encode(), "text/csv")},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 400
    return html.unescape(response.content.decode())


def test_every_message_about_a_bad_csv_row_names_its_file_line(api, dpo):
    dataset = DatasetFactory(
        site=SiteFactory(slug="rows"), purposes=[PurposeFactory(code="topics")]
    )
    response = api(dpo).post(UPLOAD.format(pk=dataset.pk), CSV, content_type="text/csv")
    assert response.status_code == 400
    body = response.json()
    assert body["events"] == {
        "4": {"kind": ["must be grant or withdraw"]},
        "5": {"non_field_errors": ["repeats line 2"]},
    }
    assert body["non_field_errors"] == [
        "2 of 4 rows refused (first: line 4, kind); nothing was recorded"
    ]
    page = _upload_in_admin(dataset, CSV)
    assert "line 4: kind: must be grant or withdraw" in page
    assert "line 5: non_field_errors: repeats line 2" in page
    assert "2 of 4 rows refused (first: line 4, kind); nothing was recorded" in page
    assert "row 0" not in page and "row 2" not in page and "line 3" not in page
    assert not Consent.objects.exists()


def test_a_blank_line_in_a_csv_file_still_counts(api, dpo):
    """The line a spreadsheet shows, not the event's position among the events."""
    dataset = DatasetFactory(purposes=[PurposeFactory(code="topics")])
    lines = CSV.splitlines(keepends=True)
    content = "".join([*lines[:2], "\n", *lines[2:4]])
    response = api(dpo).post(UPLOAD.format(pk=dataset.pk), content, content_type="text/csv")
    assert response.status_code == 400
    assert list(response.json()["events"]) == ["5"]
    assert "(first: line 5, kind)" in response.json()["non_field_errors"][0]


def test_a_json_upload_names_a_bad_event_by_its_index_everywhere(api, dpo):
    dataset = DatasetFactory(purposes=[PurposeFactory(code="topics")])
    event = {"subject_pseudonym": "s1", "purpose": "topics", "kind": "grant"}
    event["occurred_at"] = "2026-01-05T09:00:00+00:00"
    events = [event, {**event, "subject_pseudonym": "s2"}, {**event, "kind": "revoke"}, event]
    response = api(dpo).post(UPLOAD.format(pk=dataset.pk), events, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["events"] == {
        "2": {"kind": ["must be grant or withdraw"]},
        "3": {"non_field_errors": ["repeats events[0]"]},
    }
    assert body["non_field_errors"] == [
        "2 of 4 events refused (first: events[2], kind); nothing was recorded"
    ]


def _operation_descriptions(schema: dict) -> dict[str, str]:
    return {
        f"{method.upper()} {path}": operation.get("description", "")
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_every_operation_is_described_in_the_readers_language(api, dpo):
    """Docstrings are not descriptions (DISABLE_DOCSTRING_DESCRIPTIONS): each operation
    says what it does with its own translated description, so none is left blank."""
    client = api(dpo)
    english = _operation_descriptions(_schema(client, "en"))
    assert len(english) > 60  # the walk reaches every app's operations
    blank = sorted(name for name, text in english.items() if not text.strip())
    assert not blank, f"operations without a description: {blank}"
    for lang in ("de", "pl"):
        translated = _operation_descriptions(_schema(client, lang))
        assert translated.keys() == english.keys()
        same = sorted(name for name in english if translated[name] == english[name])
        assert not same, f"{lang}: described in English: {same}"
