"""django-otp's device admin in the reader's language (issue 19): its columns, filters,
field labels, help texts and section titles, which django-otp writes in English only."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import UserFactory, login_verified

pytestmark = pytest.mark.django_db

# Written out: a label that fell back to English would fail here.
COLUMNS = {
    "de": {
        "user": "Benutzer",
        "name": "Name",
        "created_at": "Erstellt am",
        "last_used_at": "Zuletzt verwendet am",
        "confirmed": "Bestätigt",
    },
    "pl": {
        "user": "Użytkownik",
        "name": "Nazwa",
        "created_at": "Utworzono",
        "last_used_at": "Ostatnio użyto",
        "confirmed": "Potwierdzone",
    },
}
PAGE = {
    "de": (
        "Identität", "Zeitstempel", "Konfiguration", "Drosselung",
        "Ist dieses Gerät einsatzbereit?",
    ),
    "pl": (
        "Tożsamość", "Znaczniki czasu", "Konfiguracja", "Ograniczanie prób",
        "Czy to urządzenie jest gotowe do użycia?",
    ),
}  # fmt: skip
ENGLISH = ("Created at", "Last used at", "Confirmed", "Is this device ready for use?", "Identity")


def headers(page: str) -> dict[str, str]:
    """Column name -> header text of the change list (Django's ``column-<name>``)."""
    found = re.findall(
        r'<th scope="col" class="[^"]*column-(\w+)[^"]*">.*?<div class="text">(?:<a [^>]*>|<span>)'
        r"([^<]*)",
        page,
        re.S,
    )
    return {name: text.strip() for name, text in found}


@pytest.fixture
def superuser_in():
    def make(lang: str) -> tuple[Client, TOTPDevice]:
        client = Client(HTTP_ACCEPT_LANGUAGE=lang)
        user = UserFactory(username=f"otp-{lang}", is_staff=True, is_superuser=True)
        login_verified(client, user)
        return client, TOTPDevice.objects.get(user=user)

    return make


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_device_list_columns_and_filters_read_in_the_readers_language(superuser_in, lang):
    client, _device = superuser_in(lang)
    response = client.get("/admin/otp_totp/totpdevice/")
    assert response.status_code == 200
    page = html_lib.unescape(response.content.decode())
    shown = headers(page)
    for name, text in COLUMNS[lang].items():
        assert shown.get(name) == text, (name, shown)
    # The filters are named by the same fields.
    assert COLUMNS[lang]["confirmed"].lower() in page.lower().split('id="changelist-filter"')[1]
    for english in ENGLISH:
        assert english not in page


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_device_page_sections_labels_and_help_read_in_the_readers_language(superuser_in, lang):
    client, device = superuser_in(lang)
    response = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    assert response.status_code == 200
    page = html_lib.unescape(response.content.decode())
    for text in PAGE[lang]:
        assert text in page, text
    assert COLUMNS[lang]["confirmed"] in page
    for english in ENGLISH:
        assert english not in page


def test_english_keeps_django_otps_own_words(superuser_in):
    client, _device = superuser_in("en")
    page = client.get("/admin/otp_totp/totpdevice/").content.decode()
    assert headers(page)["created_at"] == "Created at"
    assert "qrcode_link" not in headers(page)  # the secret is never shown (settings)


def test_no_admin_sees_another_persons_totp_secret(superuser_in):
    """An adversary with full admin rights reads another operator's device: the page
    holds neither the key nor a QR code, and the secret's own pages are refused."""
    _victim_client, victim_device = superuser_in("en")
    admin_client, _own = superuser_in("de")
    page = admin_client.get(f"/admin/otp_totp/totpdevice/{victim_device.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert victim_device.key not in body and "otpauth://" not in body
    assert 'name="key"' not in body
    for view in ("config", "qrcode"):
        response = admin_client.get(f"/admin/otp_totp/totpdevice/{victim_device.pk}/{view}/")
        assert response.status_code == 403, view
        assert victim_device.key not in response.content.decode()
