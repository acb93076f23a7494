"""A rule's article reads in the reader's language (issue 19): "Art. 44 + policy" is
stored as the rule wrote it, and the admin, dashboard, API (on request) and report show
"Art. 44 + Richtlinie", "Art. 44 + polityka", ... The citation itself is the same in
every language; only the word for the run's policy is the reader's."""

from __future__ import annotations

import html as html_lib

import pytest
from django.test import Client
from django.utils import translation

from fedgov import roles
from tests.factories import UserFactory, login_verified, verified_actor
from tests.test_i18n_reasons import residency_split_run
from training.models import GateResult
from training.reasons import article_in, article_text
from training.services.gate import round_gate

pytestmark = pytest.mark.django_db

STORED = "Art. 44 + policy"
# Written out, each with the word its catalogue uses for the run's (residency) policy.
SHOWN = {
    "de": "Art. 44 + Richtlinie",
    "es": "Art. 44 + política",
    "pl": "Art. 44 + polityka",
    "fr": "Art. 44 + politique",
}


@pytest.fixture
def decided():
    """Round 1 gated while Polish is active: nl-media computes in the US and fails residency."""
    run = residency_split_run()
    user = UserFactory(username="op-articles", is_staff=True, roles=[roles.OPERATOR, roles.DPO])
    with translation.override("pl"):
        return round_gate(actor=verified_actor(user), run=run, round_no=1)


def _page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return html_lib.unescape(response.content.decode())


def test_the_stored_article_is_language_neutral_whatever_language_gated(decided):
    row = decided.results.get(site_slug="nl-media", rule_id="residency")
    assert row.article == STORED
    round_row = decided.results.get(site_slug="", rule_id="min-sites")
    assert round_row.article == "policy"


@pytest.mark.parametrize("lang", ["de", "es", "pl", "fr"])
def test_an_article_renders_in_each_language_and_english_stays_as_stored(lang):
    assert article_in(lang, STORED) == SHOWN[lang]
    assert article_in("en", STORED) == STORED
    # A citation without the word is the same in every language.
    assert article_in(lang, "Art. 5(1)(e)") == "Art. 5(1)(e)"
    with translation.override(lang):
        assert article_text("policy") == SHOWN[lang].removeprefix("Art. 44 + ")


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_admin_round_page_and_gate_decision_page_show_the_article_in_the_readers_language(
    decided, lang
):
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    login_verified(client, UserFactory(username=f"a-{lang}", is_staff=True, roles=[roles.DPO]))
    for url in (
        f"/admin/training/round/{decided.round_id}/change/",
        f"/admin/training/gatedecision/{decided.pk}/change/",
    ):
        page = _page(client, url)
        assert SHOWN[lang] in page, url
        assert STORED not in page, url


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_dashboard_failure_matrix_shows_the_article_in_the_readers_language(decided, lang):
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    client.force_login(UserFactory(username=f"d-{lang}", roles=[roles.DPO]))
    page = _page(client, "/dashboard/")
    matrix = page.split('id="gate-failures"', 1)[1].split("</table>", 1)[0]
    assert SHOWN[lang] in matrix
    assert STORED not in page


def test_english_pages_show_the_stored_form(decided):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    login_verified(client, UserFactory(username="a-en", is_staff=True, roles=[roles.DPO]))
    assert STORED in _page(client, f"/admin/training/round/{decided.round_id}/change/")


def test_the_api_keeps_the_stored_article_and_renders_it_only_when_asked(api, decided, make_user):
    client = api(make_user(roles.DPO))
    url = f"/api/v1/runs/{decided.round.run_id}/rounds/1/decision"

    def residency(body: dict) -> dict:
        nl = next(s for s in body["sites"] if s["slug"] == "nl-media")
        return next(r for r in nl["results"] if r["rule_id"] == "residency")

    neutral = residency(client.get(url).json())
    assert neutral["article"] == STORED and "article_rendered" not in neutral
    for lang in ("es", "fr"):
        row = residency(client.get(f"{url}?lang={lang}").json())
        assert row["article"] == STORED
        assert row["article_rendered"] == SHOWN[lang]
    row = residency(client.get(url, HTTP_ACCEPT_LANGUAGE="pl-PL,pl;q=0.9").json())
    assert row["article_rendered"] == SHOWN["pl"]
    assert GateResult.objects.filter(article=STORED).exists()
