"""Errors a person reads from fedgov's services, in their language (issue 19, item 2):
legal holds and the second factor; the API keeps its field names and status codes."""

from __future__ import annotations

import pytest
from django.utils import translation

from audit.retention import legal_hold_place, legal_hold_release
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, SecondFactorRequired, TransitionNotAllowed
from fedgov.second_factor import require_second_factor
from tests.factories import RunFactory, UserFactory
from training.choices import RoundState
from training.models import Round
from training.services.rounds import round_approve

pytestmark = pytest.mark.django_db

HOLDS = "/api/v1/ledger/holds"
SYSTEM = Actor.system("i18n-errors")


@pytest.mark.parametrize(
    ("lang", "reference", "reason"),
    [
        ("en", "a case or matter reference is required", "say why the entries must be kept"),
        ("de", "ein Aktenzeichen oder eine Verfahrensreferenz ist erforderlich", "geben Sie an"),
        ("es", "se requiere una referencia de caso o asunto", "indique por qué"),
        ("pl", "wymagana jest sygnatura sprawy", "podaj, dlaczego wpisy"),
        ("fr", "une référence d'affaire est requise", "indiquez pourquoi"),
    ],
)
def test_the_hold_api_names_each_field_in_the_readers_language(
    api, make_user, lang, reference, reason
):
    client = api(make_user(roles.LEGAL, username=f"legal-{lang}"))
    response = client.post(
        HOLDS,
        {"reference": " ", "reason": " ", "subject_type": "dataset"},
        format="json",
        HTTP_ACCEPT_LANGUAGE=lang,
    )
    assert response.status_code == 400
    body = response.json()
    # The machine part is stable: the field names; the words follow the reader.
    assert set(body) == {"reference", "reason", "subject_id"}
    assert body["reference"] == [reference]
    assert body["reason"][0].startswith(reason)


def test_a_hold_error_raised_in_one_language_reads_in_anothers():
    with translation.override("de"), pytest.raises(InvalidInput) as raised:
        legal_hold_place(actor=SYSTEM, reference="", reason="x")
    with translation.override("pl"):
        assert str(raised.value) == "reference: wymagana jest sygnatura sprawy"
    hold = legal_hold_place(actor=SYSTEM, reference="CASE-1", reason="court order")
    legal_hold_release(actor=SYSTEM, hold=hold, reason="case closed")
    with pytest.raises(TransitionNotAllowed) as again:
        legal_hold_release(actor=SYSTEM, hold=hold, reason="twice")
    with translation.override("fr"):
        assert str(again.value).startswith("la conservation légale CASE-1 a été levée le ")


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("de", "die Freigabe oder Ablehnung einer Runde erfordert einen zweiten Faktor"),
        ("es", "aprobar o rechazar una ronda requiere un segundo factor"),
        ("pl", "zatwierdzenie lub odrzucenie rundy wymaga drugiego składnika"),
        ("fr", "valider ou rejeter un tour exige un second facteur"),
    ],
)
def test_the_second_factor_refusal_reads_in_the_readers_language(lang, text):
    round_ = Round.objects.create(run=RunFactory(), number=1, state=RoundState.AWAITING_APPROVAL)
    person = Actor.of(UserFactory(username=f"op-{lang}", roles=[roles.OPERATOR]))
    with pytest.raises(SecondFactorRequired) as raised:
        round_approve(actor=person, round=round_, reason="ok")
    with translation.override(lang):
        assert str(raised.value).startswith(text)
        assert "/account/two-factor/" in str(raised.value)
    assert str(raised.value).startswith("approving or rejecting a round needs a second factor")


def test_processes_still_pass_without_a_second_factor():
    require_second_factor(SYSTEM, act="building a report")


# --------------------------------------------------------------------------- consent CSV

CONSENT_HEADER = "subject_pseudonym;purpose;kind;occurred_at;expires_at\n"


def _steward_upload(lang: str, content: str):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from sites.models import SiteSteward
    from tests.factories import DatasetFactory, PurposeFactory, SiteFactory

    purpose = PurposeFactory(code="topics")
    site = SiteFactory(slug=f"home-{lang}")
    dataset = DatasetFactory(site=site, purposes=[purpose])
    steward = UserFactory(username=f"stew-{lang}", is_staff=True, roles=[roles.SITE_STEWARD])
    SiteSteward.objects.create(user=steward, site=site)
    client = Client()
    client.force_login(steward)
    upload = SimpleUploadedFile("c.csv", content.encode(), "text/csv")
    response = client.post(
        "/admin/sites/consentevent/upload/",
        {"dataset": dataset.pk, "file": upload},
        HTTP_ACCEPT_LANGUAGE=lang,
    )
    assert response.status_code == 400
    import html

    return html.unescape(response.content.decode())


@pytest.mark.parametrize(
    ("lang", "short", "empty"),
    [
        ("en", "line 2: 3 cells, the header has 5", "line 3: empty purpose"),
        ("de", "Zeile 2: 3 Zellen, die Kopfzeile hat 5", "Zeile 3: leer: purpose"),
        ("es", "línea 2: 3 celdas, la cabecera tiene 5", "línea 3: vacío: purpose"),
        ("pl", "wiersz 2: 3 komórki, nagłówek ma 5", "wiersz 3: puste: purpose"),
        ("fr", "ligne 2 : 3 cellules, l'en-tête en a 5", "ligne 3 : vide : purpose"),
    ],
)
def test_a_semicolon_consent_file_with_bad_rows_is_refused_in_the_readers_language(
    lang, short, empty
):
    page = _steward_upload(
        lang,
        CONSENT_HEADER + "s1;topics;grant\n" + "s2;;grant;2026-01-05T09:00:00+00:00;\n",
    )
    assert short in page and empty in page


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("de", "Zeile 1: die Kopfzeile muss subject_pseudonym, purpose, kind, occurred_at"),
        ("pl", "wiersz 1: nagłówek musi zawierać subject_pseudonym, purpose, kind, occurred_at"),
    ],
)
def test_a_consent_file_with_a_wrong_header_names_its_columns_in_the_readers_sentence(lang, text):
    assert text in _steward_upload(lang, "pseudonym;purpose\nx;y\n")


def test_a_consent_file_over_the_limit_counts_its_bytes_as_the_reader_writes_numbers(settings):
    from sites.consent_csv import parse_consent_csv

    with translation.override("de"), pytest.raises(InvalidInput) as raised:
        parse_consent_csv(b"x" * 1_500, max_bytes=1_000)
    assert raised.value.errors["file"] == ["die Datei ist 1.500 Byte groß; die Grenze ist 1.000"]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "CSV header must be subject_pseudonym,purpose,kind,occurred_at,expires_at"),
        ("pl", "nagłówek CSV musi mieć postać subject_pseudonym,purpose,kind,occurred_at"),
        ("fr", "l'en-tête du CSV doit être subject_pseudonym,purpose,kind,occurred_at"),
    ],
)
def test_the_consent_api_refuses_a_bad_csv_header_in_the_readers_language(
    api, make_user, lang, text
):
    from tests.factories import DatasetFactory

    dataset = DatasetFactory()
    client = api(make_user(roles.DPO, username=f"dpo-{lang}"))
    response = client.post(
        f"/api/v1/datasets/{dataset.pk}/consent-events",
        "subject,purpose\nx,y\n",
        content_type="text/csv",
        HTTP_ACCEPT_LANGUAGE=lang,
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith(text)
    # The column names are the file's own words, in every language.
    assert "subject" in detail and "subject_pseudonym" in detail


def test_an_api_body_over_the_limit_is_counted_in_the_readers_numbers(api, make_user, settings):
    from tests.factories import DatasetFactory

    settings.FEDGOV_API_MAX_BODY_BYTES = 2_000
    dataset = DatasetFactory()
    client = api(make_user(roles.DPO, username="dpo-size"))
    response = client.post(
        f"/api/v1/datasets/{dataset.pk}/consent-events",
        "x" * 2_500,
        content_type="text/csv",
        HTTP_ACCEPT_LANGUAGE="pl",
    )
    assert response.status_code == 400
    assert response.json() == {"body": ["ma 2\xa0500 B; przyjmowanych jest najwyżej 2\xa0000 B"]}


def test_the_consent_services_row_refusals_read_in_the_uploaders_language():
    page = _steward_upload("pl", CONSENT_HEADER + "s1;topics;withdraw;2026-01-05T09:00:00+00:00;\n")
    assert "wiersz 2: subject_pseudonym: nie ma zgody na cel 'topics', którą można by wycofać" in (
        page
    )
    assert "odrzucono 1 z 1 wiersza (pierwszy: wiersz 2, subject_pseudonym)" in page


def test_the_consent_api_keeps_field_names_and_translates_the_reasons(api, make_user):
    from tests.factories import DatasetFactory, PurposeFactory

    dataset = DatasetFactory(purposes=[PurposeFactory(code="topics")])
    client = api(make_user(roles.DPO, username="dpo-rows"))
    event = {"subject_pseudonym": "s1", "purpose": "topics", "kind": "withdraw"}
    event["occurred_at"] = "2026-01-05T09:00:00+00:00"
    response = client.post(
        f"/api/v1/datasets/{dataset.pk}/consent-events",
        [event, event],
        format="json",
        HTTP_ACCEPT_LANGUAGE="de",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["events"]["1"]["non_field_errors"] == ["wiederholt events[0]"]
    assert body["events"]["0"]["subject_pseudonym"] == [
        "hat keine Einwilligung für den Zweck 'topics', die widerrufen werden könnte"
    ]


# --------------------------------------------------------------------------- adequacy list


def test_the_adequacy_list_admin_names_the_bad_entry_in_german():
    import html

    from django.test import Client

    from tests.factories import login_verified

    client = Client(HTTP_ACCEPT_LANGUAGE="de")
    login_verified(client, UserFactory(username="su-de", is_staff=True, is_superuser=True))
    content = (
        '{"version": "v-test", "decisions": [{"country": "XX", "reference": "r", '
        '"adopted_on": "2020-01-01", "scope": "country", "review_due": "2030-01-01"}]}'
    )
    response = client.post("/admin/sites/adequacylistversion/add/", {"content": content})
    page = html.unescape(response.content.decode())
    # The JSON path is the file's own, in every language; the reason is the reader's.
    assert "decisions[0].country: 'XX' ist kein Code nach ISO 3166-1 alpha-2" in page


def test_an_adequacy_list_refused_in_one_language_reads_in_another():
    from sites.services import adequacy_list_record

    with translation.override("de"), pytest.raises(InvalidInput) as raised:
        adequacy_list_record(actor=SYSTEM, content='{"version": "v", "decisions": []}')
    with translation.override("fr"):
        assert str(raised.value) == "content: decisions: doit être une liste non vide"
    assert str(raised.value) == "content: decisions: must be a non-empty list"


# ------------------------------------------- sites, datasets, purposes, policies (issue 19)


def _site_body(**change):
    from tests.factories import sha

    body = {
        "slug": "pl-news",
        "organisation": "Wiadomości Sp. z o.o.",
        "country": "PL",
        "contact_email": "iod@pl.example",
        "agreement_type": "processor",
        "agreement_document_hash": sha("a"),
        "agreement_valid_from": "2026-01-01",
        "agreement_valid_until": "2027-12-31",
        "compute_country": "PL",
    }
    return {**body, **change}


def _admin(lang: str):
    from django.test import Client

    from tests.factories import login_verified

    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    login_verified(client, UserFactory(username=f"su-{lang}", is_staff=True, is_superuser=True))
    return client


def _page(response) -> str:
    import html

    assert response.status_code == 200  # the form again, with its errors; nothing saved
    return html.unescape(response.content.decode())


@pytest.mark.parametrize(
    ("lang", "country", "until"),
    [
        (
            "en",
            "'XX' is not an ISO 3166-1 alpha-2 country code",
            "must not be before agreement_valid_from",
        ),
        (
            "pl",
            "'XX' nie jest kodem kraju ISO 3166-1 alpha-2",
            "nie może być wcześniejsze niż agreement_valid_from",
        ),
        (
            "de",
            "'XX' ist kein Ländercode nach ISO 3166-1 alpha-2",
            "darf nicht vor agreement_valid_from liegen",
        ),
    ],
)
def test_the_site_api_names_each_field_in_the_readers_language(
    api, make_user, lang, country, until
):
    client = api(make_user(roles.DPO, username=f"dpo-{lang}"))
    body = _site_body(country="XX", agreement_valid_until="2025-01-01")
    response = client.post("/api/v1/sites", body, format="json", HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 400
    errors = response.json()
    assert errors["country"] == [country]
    # The field name inside the sentence is the API's own and stays as it is spelt.
    assert errors["agreement_valid_until"] == [until]


def test_the_site_admin_shows_the_service_errors_in_spanish():
    form = {
        **_site_body(slug="es-sede", compute_country="ZZ", agreement_valid_until="2025-01-01"),
        "one_zone_id": 0,
    }
    page = _page(_admin("es").post("/admin/sites/site/add/", form))
    assert "no puede ser anterior a agreement_valid_from" in page
    assert "'ZZ' no es un código de país ISO 3166-1 alfa-2" in page


def test_a_site_refused_in_one_language_reads_in_another():
    from sites.services import site_register

    with translation.override("de"), pytest.raises(InvalidInput) as raised:
        site_register(actor=SYSTEM, **_site_body(contact_email="nobody"))
    with translation.override("fr"):
        assert str(raised.value) == "contact_email: doit être une adresse électronique"
    assert str(raised.value) == "contact_email: must be an e-mail address"


def _dataset_body(site, **change):
    body = {
        "site": site.pk,
        "name": "posts",
        "lawful_basis": "6(1)(a)",
        "purposes": ["topics"],
        "retention_until": "2030-01-01",
        "processing_countries": ["EEA"],
        "data_categories": ["text"],
    }
    return {**body, **change}


@pytest.mark.parametrize(
    ("lang", "suspended", "special"),
    [
        (
            "de",
            "Standort de-1 ist ausgesetzt; Datensätze brauchen einen aktiven Standort",
            "muss true sein: health sind besondere Kategorien personenbezogener Daten nach "
            "Art. 9(1)",
        ),
        (
            "pl",
            "ośrodek pl-1 jest zawieszony; zbiory danych wymagają aktywnego ośrodka",
            "musi mieć wartość true: health to szczególne kategorie danych osobowych "
            "w rozumieniu Art. 9(1)",
        ),
    ],
)
def test_the_dataset_api_refuses_in_the_readers_language(api, dpo, lang, suspended, special):
    from sites.choices import SiteStatus
    from tests.factories import PurposeFactory, SiteFactory

    PurposeFactory(code="topics")
    site = SiteFactory(slug=f"{lang}-1", status=SiteStatus.SUSPENDED)
    body = _dataset_body(site, data_categories=["text", "health"], special_category=False)
    response = api(dpo).post("/api/v1/datasets", body, format="json", HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 400
    errors = response.json()
    assert errors["site"] == [suspended]
    # Art. 9(1) is cited the same way in every language; the category is the data's name.
    assert errors["special_category"] == [special]


def test_the_dataset_admin_shows_the_service_errors_in_french():
    from tests.factories import PurposeFactory, SiteFactory

    purpose = PurposeFactory(code="topics")
    site = SiteFactory(slug="fr-1")
    form = {
        "site": site.pk,
        "name": "posts",
        "description": "",
        "data_categories": '["text", "health"]',
        "special_category": "on",
        "lawful_basis": "6(1)(a)",
        "purposes": [purpose.pk],
        "retention_until": "2030-01-01",
        "processing_countries": '["EEA", "Atlantis"]',
        "record_count": 0,
        "art9_condition": "",
        "art10_basis": "",
        "art10_reference": "",
    }
    page = _page(_admin("fr").post("/admin/sites/dataset/add/", form))
    assert (
        "les catégories particulières de données à caractère personnel exigent que leur "
        "condition de l'Art. 9(2) soit enregistrée" in page
    )
    assert "codes de pays ou régions inconnus : 'Atlantis'" in page


@pytest.mark.parametrize(
    ("lang", "taken"),
    [("es", "ya existe una finalidad 'topics'"), ("fr", "une finalité 'topics' existe déjà")],
)
def test_the_purpose_api_refuses_a_taken_code_in_the_readers_language(api, dpo, lang, taken):
    from tests.factories import PurposeFactory

    PurposeFactory(code="topics")
    response = api(dpo).post(
        "/api/v1/purposes",
        {"code": "topics", "name": "Topics"},
        format="json",
        HTTP_ACCEPT_LANGUAGE=lang,
    )
    assert response.status_code == 400
    assert response.json() == {"code": [taken]}


def test_the_purpose_admin_names_a_taken_code_in_polish():
    from tests.factories import PurposeFactory

    PurposeFactory(code="topics")
    page = _page(_admin("pl").post("/admin/sites/purpose/add/", {"code": "topics", "name": "T"}))
    assert "cel 'topics' już istnieje" in page


@pytest.mark.parametrize(
    ("lang", "areas", "delta"),
    [
        (
            "fr",
            "codes de pays ou régions inconnus : 'Atlantis'",
            "doit être strictement compris entre 0 et 1",
        ),
        ("pl", "nieznane kody krajów lub regiony: 'Atlantis'", "musi być większe niż 0 i mniejsze"),
    ],
)
def test_the_policy_api_refuses_in_the_readers_language(api, dpo, lang, areas, delta):
    body = {"name": "eu", "allowed_areas": ["EEA", "Atlantis"], "privacy_budget_delta": 2}
    response = api(dpo).post("/api/v1/policies", body, format="json", HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 400
    errors = response.json()
    assert errors["allowed_areas"] == [areas]
    assert errors["privacy_budget_delta"][0].startswith(delta)


def test_the_policy_admin_shows_the_service_errors_in_german():
    form = {
        "name": "eu",
        "allowed_areas": '["EEA", "EEA"]',
        "transfer_mechanisms": "{}",
        "min_eligible_sites": 2,
        "min_records_per_site": 1,
        "approvals_required": 1,
        "privacy_budget_epsilon": "",
        "aggregator_operator": '{"organisation": "Koord GmbH"}',
        "host_operator": "{}",
        "transfer_safeguards": "[]",
        "recipient_certifications": "[]",
        "dpf_listing_max_age_days": 90,
        "privacy_budget_delta": "",
        "dp_neighbouring_relation": "add-or-remove-one",
        "dp_required_mechanism": "",
    }
    page = _page(_admin("de").post("/admin/sites/residencypolicy/add/", form))
    assert "nennt ein Gebiet zweimal" in page
    # The missing keys are the JSON's own and stay as they are spelt.
    assert "es fehlt: country, role" in page


def test_a_refused_site_or_policy_transition_reads_in_the_readers_language():
    from sites.services import policy_create_draft, policy_publish, site_activate
    from tests.factories import SiteFactory

    site = SiteFactory(slug="waw")
    with translation.override("de"), pytest.raises(TransitionNotAllowed) as active:
        site_activate(actor=SYSTEM, site=site, reason="again")
    with translation.override("pl"):
        assert str(active.value) == "ośrodek waw jest już aktywny"
    assert str(active.value) == "site waw is already active"

    policy = policy_create_draft(actor=SYSTEM, name="eu", allowed_areas=["EEA"])
    with pytest.raises(TransitionNotAllowed) as draft:
        policy_create_draft(actor=SYSTEM, name="eu", allowed_areas=["EEA"])
    with translation.override("es"):
        assert str(draft.value) == (
            "la política eu ya tiene el borrador v1; edítelo o publíquelo primero"
        )
    policy_publish(actor=SYSTEM, policy=policy)
    with pytest.raises(TransitionNotAllowed) as published:
        policy_publish(actor=SYSTEM, policy=policy)
    with translation.override("fr"):
        assert str(published.value) == "eu v1 est déjà publiée"
