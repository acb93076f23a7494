"""django-axes in the reader's language (issue 19): every text its admin shows and the
message a locked-out person reads, in es and pl (axes ships no Spanish, and no Polish for
part of it) as in de and fr. fedgov's catalogue supplies what axes' own lacks."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import axes
import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.test import Client
from django.utils import timezone, translation

from fedgov import catalogue, roles
from tests.factories import UserFactory, login_verified

pytestmark = pytest.mark.django_db

LANGUAGES = ("de", "es", "pl", "fr")
# The same word in English and in that language: not a gap.
SAME_WORD = {("es", "No")}
# Written out for the pages: a label that fell back to English would fail here.
ATTEMPT_COLUMNS = {
    "es": {
        "attempt_time": "Momento del intento",
        "ip_address": "Dirección IP",
        "user_agent": "Agente de usuario",
        "path_info": "Ruta",
        "failures_since_start": "Inicios de sesión fallidos",
        "status": "Estado",
    },
    "pl": {
        "attempt_time": "Czas próby",
        "ip_address": "Adres IP",
        "user_agent": "Identyfikator przeglądarki",
        "path_info": "Ścieżka",
        "failures_since_start": "Nieudane logowania",
        "status": "Status",
    },
}
STATUS = {"es": "quedan 3 intentos", "pl": "pozostały 3 próby"}
LOCKED = {"es": "Bloqueado", "pl": "Zablokowany"}
LOG_COLUMNS = {
    "es": {"logout_time": "Momento del cierre de sesión", "locked_out": "Acceso bloqueado"},
    "pl": {"logout_time": "Czas wylogowania", "locked_out": "Dostęp zablokowany"},
}
SECTIONS = {"es": ("Datos del formulario", "Metadatos"), "pl": ("Dane formularza", "Metadane")}
LOCKOUT = {
    "es": "Cuenta bloqueada: demasiados intentos de inicio de sesión. "
    "Inténtelo de nuevo más tarde.",
    "pl": "Konto zablokowane: zbyt wiele prób logowania. Spróbuj ponownie później.",
}
CLEANED = {
    "es": "Se eliminaron 0 intentos de acceso caducados.",
    "pl": "Usunięto 0 wygasłych prób dostępu.",
}
ENGLISH = ("Attempt Time", "IP Address", "User Agent", "Failed Logins", "Locked Out", "Meta Data")


def axes_msgids() -> set[str]:
    found = set()
    for path in Path(axes.__file__).parent.rglob("*.py"):
        found |= {msgid for _ctx, msgid, _plural in catalogue.python_msgids(path.read_text())}
    return found


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_text_axes_marks_reads_in_each_language(lang):
    msgids = axes_msgids()
    assert {"User Agent", "Locked Out", "access logs"} <= msgids  # the walk found axes' texts
    with translation.override(lang):
        english = sorted(
            m for m in msgids if translation.gettext(m) == m and (lang, m) not in SAME_WORD
        )
    assert not english, f"{lang} shows axes' English: {english}"


def headers(page: str) -> dict[str, str]:
    found = re.findall(
        r'<th scope="col" class="[^"]*column-(\w+)[^"]*">.*?<div class="text">(?:<a [^>]*>|<span>)'
        r"([^<]*)",
        page,
        re.S,
    )
    return {name: text.strip() for name, text in found}


@pytest.fixture
def superuser_in():
    def make(lang: str) -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE=lang)
        login_verified(
            client, UserFactory(username=f"axes-{lang}", is_staff=True, is_superuser=True)
        )
        return client

    return make


def _get(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return html_lib.unescape(response.content.decode())


def _attempt(failures: int) -> AccessAttempt:
    return AccessAttempt.objects.create(
        user_agent="curl/8",
        ip_address="10.0.0.9",
        username="mallory",
        http_accept="*/*",
        path_info="/admin/login/",
        get_data="",
        post_data="username=mallory",
        failures_since_start=failures,
    )


@pytest.mark.parametrize("lang", ["es", "pl"])
def test_access_attempt_list_page_and_action_read_in_the_readers_language(
    superuser_in, lang, settings
):
    client = superuser_in(lang)
    attempt = _attempt(settings.AXES_FAILURE_LIMIT - 3)
    page = _get(client, "/admin/axes/accessattempt/")
    shown = headers(page)
    for name, text in ATTEMPT_COLUMNS[lang].items():
        assert shown.get(name) == text, (name, shown)
    assert STATUS[lang] in page
    assert LOCKED[lang] in page.split('id="changelist-filter"')[1]  # the filter's title
    for english in (*ENGLISH, "Attempt Remaining", "Clean up expired attempts"):
        assert english not in page

    detail = _get(client, f"/admin/axes/accessattempt/{attempt.pk}/change/")
    for section in SECTIONS[lang]:
        assert section in detail
    for english in ENGLISH:
        assert english not in detail

    done = client.post(
        "/admin/axes/accessattempt/",
        {"action": "cleanup_expired_attempts", "_selected_action": [attempt.pk]},
        follow=True,
    )
    assert CLEANED[lang] in html_lib.unescape(done.content.decode())


@pytest.mark.parametrize("lang", ["es", "pl"])
def test_access_log_and_failure_log_lists_read_in_the_readers_language(superuser_in, lang):
    client = superuser_in(lang)
    AccessLog.objects.create(
        user_agent="curl/8", ip_address="10.0.0.9", username="mallory", http_accept="*/*",
        path_info="/admin/login/", logout_time=timezone.now(),
    )  # fmt: skip
    AccessFailureLog.objects.create(
        user_agent="curl/8", ip_address="10.0.0.9", username="mallory", http_accept="*/*",
        path_info="/admin/login/", locked_out=True,
    )  # fmt: skip
    for url, columns in (
        ("/admin/axes/accesslog/", ("logout_time",)),
        ("/admin/axes/accessfailurelog/", ("locked_out",)),
    ):
        page = _get(client, url)
        shown = headers(page)
        assert shown.get("ip_address") == ATTEMPT_COLUMNS[lang]["ip_address"], url
        assert shown.get("user_agent") == ATTEMPT_COLUMNS[lang]["user_agent"], url
        for name in columns:
            assert shown.get(name) == LOG_COLUMNS[lang][name], (url, shown)
        for english in ENGLISH:
            assert english not in page, (url, english)


def test_polish_titles_name_the_failure_log_in_the_accusative(superuser_in):
    page = _get(superuser_in("pl"), "/admin/axes/accessfailurelog/")
    assert re.search(r"<h1>\s*Wybierz nieudaną próbę dostępu do", page)


def test_a_locked_out_person_reads_the_lockout_in_their_language(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    login = "/admin/login/?next=/admin/"
    for n, lang in enumerate(("es", "pl")):  # (axes itself has Polish, no Spanish)
        UserFactory(username=f"locked-{lang}", is_staff=True, roles=[roles.OPERATOR])
        client = Client(HTTP_ACCEPT_LANGUAGE=lang, REMOTE_ADDR=f"10.7.7.{n + 1}")
        for _ in range(settings.AXES_FAILURE_LIMIT):
            client.post(login, {"username": f"locked-{lang}", "password": "wrong"})
        locked = client.post(login, {"username": f"locked-{lang}", "password": "pw-for-tests-only"})
        assert locked.status_code in (403, 429)
        assert locked.content.decode() == LOCKOUT[lang]
