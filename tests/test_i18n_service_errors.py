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
    assert "odrzucono 1 z 1 wiersza (pierwszy: wiersz 0, subject_pseudonym)" in page


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
    assert body["events"]["1"]["non_field_errors"] == ["wiederholt Zeile 0"]
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
