"""A site steward uploads consent CSV in the admin: own site only, `,` or `;`, errors by line."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fedgov import roles
from fedgov.errors import InvalidInput
from sites.consent_csv import parse_consent_csv
from sites.models import Consent, ConsentEvent, SiteSteward
from tests.factories import DatasetFactory, PurposeFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/sites/consentevent/upload/"
HEADER = "subject_pseudonym,purpose,kind,occurred_at,expires_at\n"
GOOD = (
    HEADER
    + "home-s0001,topics,grant,2026-01-05T09:00:00+00:00,\n"
    + "home-s0002,topics,grant,2026-01-05T09:00:00+00:00,2027-01-01T00:00:00+00:00\n"
)


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world():
    purpose = PurposeFactory(code="topics")
    home, other = SiteFactory(slug="home"), SiteFactory(slug="other")
    home_data = DatasetFactory(site=home, purposes=[purpose])
    other_data = DatasetFactory(site=other, purposes=[purpose])
    steward = UserFactory(username="stew", is_staff=True, roles=[roles.SITE_STEWARD])
    SiteSteward.objects.create(user=steward, site=home)
    return {"steward": steward, "home_data": home_data, "other_data": other_data}


def _upload(client, user, dataset, content: str | bytes, name="c.csv"):
    client.force_login(user)
    data = content.encode() if isinstance(content, str) else content
    return client.post(
        URL, {"dataset": dataset.pk, "file": SimpleUploadedFile(name, data, "text/csv")}
    )


def test_the_steward_uploads_a_comma_separated_file_for_their_site(client, world):
    response = _upload(client, world["steward"], world["home_data"], GOOD)
    assert response.status_code == 302
    assert Consent.objects.filter(dataset=world["home_data"]).count() == 2
    assert set(ConsentEvent.objects.values_list("recorded_by_name", flat=True)) == {"stew"}


def test_a_semicolon_separated_file_is_detected(client, world):
    response = _upload(client, world["steward"], world["home_data"], GOOD.replace(",", ";"))
    assert response.status_code == 302
    assert Consent.objects.filter(dataset=world["home_data"]).count() == 2


def test_the_steward_cannot_upload_for_another_site(client, world):
    response = _upload(client, world["steward"], world["other_data"], GOOD)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not ConsentEvent.objects.exists()


def test_the_upload_form_lists_only_the_stewards_datasets(client, world):
    client.force_login(world["steward"])
    html = client.get(URL).content.decode()
    assert world["home_data"].name in html and world["other_data"].name not in html


@pytest.mark.parametrize("role", [roles.AUDITOR, roles.LEGAL, roles.OPERATOR])
def test_roles_without_the_permission_get_403(client, world, role):
    user = UserFactory(username=f"x-{role}", is_staff=True, roles=[role])
    assert _upload(client, user, world["home_data"], GOOD).status_code == 403
    assert not ConsentEvent.objects.exists()


def test_a_bad_row_names_its_csv_line_and_nothing_is_recorded(client, world):
    # Line 3 has an unknown purpose; lines 4-5 are one record (a quoted cell holding a
    # line break), line 6 is blank, so the bad kind is on CSV line 7, not "row 4".
    content = (
        HEADER
        + "home-s0001,topics,grant,2026-01-05T09:00:00+00:00,\n"
        + "home-s0002,nonsense,grant,2026-01-05T09:00:00+00:00,\n"
        + '"home-s0003",topics,grant,2026-01-05T09:00:00+00:00,"\n"\n'
        + "\n"
        + "home-s0004,topics,revoke,2026-01-05T09:00:00+00:00,\n"
    )
    response = _upload(client, world["steward"], world["home_data"], content)
    html = response.content.decode()
    assert response.status_code == 400
    assert "line 3: purpose" in html
    assert "line 7: kind" in html
    assert not ConsentEvent.objects.exists()


def test_a_row_with_too_many_cells_is_named_by_line(client, world):
    content = HEADER + "home-s0001,topics,grant,2026-01-05T09:00:00+00:00,,extra\n"
    html = _upload(client, world["steward"], world["home_data"], content).content.decode()
    assert "line 2: 6 cells, the header has 5" in html
    assert not ConsentEvent.objects.exists()


def test_the_size_limit_is_checked_before_parsing(client, world, settings, monkeypatch):
    settings.FEDGOV_CONSENT_CSV_MAX_BYTES = 100
    parsed = []
    monkeypatch.setattr(
        "sites.admin_steward.parse_consent_csv",
        lambda *a, **k: parsed.append(1) or pytest.fail("parsed an oversized file"),
    )
    response = _upload(client, world["steward"], world["home_data"], GOOD + "x" * 200)
    assert response.status_code == 400
    assert "the limit is 100" in response.content.decode()
    assert not parsed and not ConsentEvent.objects.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"a,b,c\nx,y,z\n", "line 1: the header must name"),
        (b"subject_pseudonym|purpose|kind|occurred_at\n", "line 1: the header must name"),
        (
            HEADER.encode() + b"s\xff,topics,grant,2026-01-05T09:00:00+00:00,\n",
            "line 2: the file must be UTF-8",
        ),
        (HEADER.encode(), "no events"),
        (
            (HEADER + ",topics,grant,2026-01-05T09:00:00+00:00,\n").encode(),
            "line 2: empty subject_pseudonym",
        ),
        ((HEADER + '"unterminated,topics,grant,x,\n').encode(), "line 2"),
    ],
)
def test_parse_refusals_name_the_reason(content, reason):
    with pytest.raises(InvalidInput) as caught:
        parse_consent_csv(content, max_bytes=10_000)
    assert any(reason in message for message in caught.value.errors["file"]), caught.value.errors


def test_the_separator_comes_from_the_header_and_events_keep_their_lines():
    parsed = parse_consent_csv(GOOD.encode(), max_bytes=10_000)
    assert parsed.delimiter == "," and parsed.lines == [2, 3]
    parsed = parse_consent_csv(GOOD.replace(",", ";").encode(), max_bytes=10_000)
    assert parsed.delimiter == ";"
