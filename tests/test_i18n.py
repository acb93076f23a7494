"""The reader's language (issue 19): profile, then switcher cookie, then Accept-Language.

Each test asks the running Django stack (middleware, templates, Django's own admin
catalogues and ours), not a helper in isolation.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import formats, translation

from fedgov.models import Profile

LOGIN = "/admin/login/"
# Django's own admin catalogue for the login button: proof the language really switched.
LOG_IN = {
    "en": "Log in",
    "de": "Anmelden",
    "es": "Iniciar sesión",
    "pl": "Zaloguj się",
    "fr": "Connexion",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("de-DE,de;q=0.9", "de"),
        ("pl-PL", "pl"),
        ("es-ES,es;q=0.8,en;q=0.5", "es"),
        ("fr-FR", "fr"),
        ("ja-JP", "en"),
        ("", "en"),
    ],
)
def test_accept_language_picks_the_admin_language(header, lang):
    response = Client(HTTP_ACCEPT_LANGUAGE=header).get(LOGIN)
    assert response.status_code == 200
    assert response.headers["Content-Language"] == lang
    assert LOG_IN[lang] in response.content.decode()


@pytest.mark.django_db
def test_the_switcher_remembers_the_choice_on_the_profile_over_the_browser(dpo):
    client = Client(HTTP_ACCEPT_LANGUAGE="de-DE")
    client.force_login(dpo)
    response = client.post("/i18n/setlang/", {"language": "pl", "next": "/admin/"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert Profile.objects.get(user=dpo).language == "pl"

    # A new browser, still asking for German, signed in as the same user: Polish.
    other = Client(HTTP_ACCEPT_LANGUAGE="de-DE")
    other.force_login(dpo)
    page = other.get("/dashboard/")
    assert page.headers["Content-Language"] == "pl"
    assert 'lang="pl"' in page.content.decode()


@pytest.mark.django_db
def test_the_switcher_refuses_a_language_fedgov_does_not_offer(dpo):
    client = Client()
    client.force_login(dpo)
    client.post("/i18n/setlang/", {"language": "xx", "next": "/admin/"})
    assert not Profile.objects.filter(user=dpo).exists()
    # A redirect elsewhere is not followed off the site (Django's url_has_allowed_host).
    response = client.post("/i18n/setlang/", {"language": "fr", "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"


@pytest.mark.django_db
def test_the_switcher_is_on_the_admin_login_and_the_dashboard(dpo):
    assert 'action="/i18n/setlang/"' in Client().get(LOGIN).content.decode()
    client = Client(HTTP_ACCEPT_LANGUAGE="fr-FR")
    client.force_login(dpo)
    page = client.get("/dashboard/").content.decode()
    assert 'action="/i18n/setlang/"' in page and '<html lang="fr">' in page
    assert all(f'value="{code}"' in page for code, _ in settings.LANGUAGES)


@pytest.mark.parametrize("lang", [code for code, _ in settings.LANGUAGES])
def test_every_language_shows_a_24_hour_clock_with_its_zone(lang):
    evening = dt.datetime(2026, 12, 6, 22, 58, tzinfo=dt.UTC)
    with translation.override(lang):
        for name in ("DATETIME_FORMAT", "SHORT_DATETIME_FORMAT"):
            text = formats.date_format(evening, name)
            assert "22:58" in text and "UTC" in text, (lang, name, text)
            assert not re.search(r"[ap]\.?m\.?", text), (lang, name, text)


def test_polish_dates_use_the_genitive_month():
    with translation.override("pl"):
        assert formats.date_format(dt.date(2026, 12, 7), "DATE_FORMAT") == "7 grudnia 2026"


@pytest.mark.parametrize("lang", ["de", "es", "pl", "fr"])
def test_the_compiled_catalogue_says_what_the_po_file_says(lang):
    # A real .po parser (polib): wrapped msgids and msgstrs, plurals, contexts.
    import polib

    po = polib.pofile(str(Path(settings.BASE_DIR) / "locale" / lang / "LC_MESSAGES" / "django.po"))
    entries = [e for e in po if not e.obsolete and not e.msgctxt]
    assert len(entries) > 300
    assert not po.untranslated_entries() and not po.fuzzy_entries()
    with translation.override(lang):
        for entry in entries:
            if entry.msgid_plural:
                assert translation.ngettext(entry.msgid, entry.msgid_plural, 1) in (
                    entry.msgstr_plural.values()
                ), (lang, entry.msgid)
            else:
                assert translation.gettext(entry.msgid) == entry.msgstr, (lang, entry.msgid)


@pytest.mark.django_db
def test_a_request_reads_the_chosen_language_from_the_session_not_the_profile_table(dpo):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_ACCEPT_LANGUAGE="de-DE")
    client.force_login(dpo)
    client.post("/i18n/setlang/", {"language": "es", "next": "/dashboard/"})
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/dashboard/")
    assert page.headers["Content-Language"] == "es"
    assert not [q for q in queries if "fedgov_profile" in q["sql"]]
