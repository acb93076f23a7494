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
