"""The admin names a model in the case its sentence needs (issue 19): Polish "Zobacz
rundę", not Django's "Zobacz runda"; "Dodaj użytkownika"; German
"Standortverantwortlichen hinzufügen"."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from tests.factories import RunFactory, UserFactory, login_verified
from training.choices import RoundState
from training.models import Round

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_in():
    def make(lang: str) -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE=lang)
        user = UserFactory(username=f"t-{lang}", is_staff=True, is_superuser=True)
        login_verified(client, user)
        return client

    return make


def title(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    page = html.unescape(response.content.decode())
    return re.search(r"<h1>([^<]*)</h1>", page).group(1).strip()


def test_polish_round_pages_name_the_round_in_the_accusative(superuser_in):
    round_ = Round.objects.create(run=RunFactory(), number=1, state=RoundState.PLANNED)
    client = superuser_in("pl")
    assert title(client, f"/admin/training/round/{round_.pk}/change/") in (
        "Zobacz rundę",
        "Zmień rundę",
    )
    assert title(client, "/admin/training/round/") in (
        "Wybierz rundę do zmiany",
        "Wybierz rundę do obejrzenia",
    )


@pytest.mark.parametrize(
    ("lang", "url", "expected"),
    [
        ("pl", "/admin/auth/user/add/", "Dodaj użytkownika"),
        ("pl", "/admin/auth/group/add/", "Dodaj grupę"),
        ("pl", "/admin/sites/sitesteward/add/", "Dodaj opiekuna ośrodka"),
        ("pl", "/admin/sites/residencypolicy/add/", "Dodaj politykę rezydencji danych"),
        ("pl", "/admin/audit/legalhold/", "Wybierz blokadę prawną do obejrzenia"),
        ("de", "/admin/sites/sitesteward/add/", "Standortverantwortlichen hinzufügen"),
        ("en", "/admin/sites/sitesteward/add/", "Add site steward"),
    ],
)
def test_add_and_list_titles_take_the_accusative(superuser_in, lang, url, expected):
    got = title(superuser_in(lang), url)
    # The hold list is view-only for some roles: either of Django's two list titles.
    assert got == expected or got == expected.replace("do obejrzenia", "do zmiany"), got


def test_the_add_button_names_the_model_in_the_accusative(superuser_in):
    page = html.unescape(superuser_in("pl").get("/admin/auth/user/").content.decode())
    button = re.search(r'class="addlink">\s*([^<]+?)\s*</a>', page).group(1)
    assert button == "Dodaj użytkownika"


@pytest.mark.parametrize(
    ("lang", "shown", "english"),
    [
        ("pl", ["Aplikacje uwierzytelniające (TOTP)", "Urządzenia TOTP", "Nieudane próby dostępu"],
         ["TOTP devices", "Access failures", "Otp_Totp"]),
        ("es", ["Aplicaciones de autenticación (TOTP)", "Dispositivos TOTP",
                "Intentos de acceso fallidos"], ["TOTP devices", "Access failures"]),
    ],
)  # fmt: skip
def test_other_packages_admin_entries_read_in_the_readers_language(
    superuser_in, lang, shown, english
):
    page = html.unescape(superuser_in(lang).get("/admin/").content.decode())
    for text in shown:
        assert text in page
    for text in english:
        assert text not in page


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/admin/auth/user/add/", "Ajout d'utilisateur"),
        ("/admin/auth/group/add/", "Ajout de groupe"),
    ],
)
def test_french_titles_elide_de_before_a_vowel(superuser_in, url, expected):
    assert title(superuser_in("fr"), url) == expected


def test_french_elision_knows_a_mute_h_from_an_aspirated_one():
    from django.utils import translation

    from fedgov.admin_titles import _name_in

    with translation.override("fr"):
        assert _name_in("Ajout de %s", "horodatage du point de contrôle") == (
            "Ajout d'horodatage du point de contrôle"
        )
        assert _name_in("Ajout de %s", "hachage de sous-arbre") == "Ajout de hachage de sous-arbre"
        assert _name_in("Affichage de %s", "échec de connexion") == "Affichage d'échec de connexion"
    with translation.override("es"):
        assert _name_in("Ver %s", "usuario") == "Ver usuario"
