"""Gate reasons are data (a code with params), rendered in each reader's language (issue 19).

The English text stays the stored reason; evidence (snapshot hash, ledger) never depends
on who reads it; admin, dashboard and API render the same stored row in de and pl.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import rfc8785
from django.conf import settings
from django.test import Client
from django.utils import translation

from audit.models import LedgerEntry
from fedgov import roles
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    PurposeFactory,
    RunFactory,
    SiteFactory,
    UserFactory,
    login_verified,
    verified_actor,
)
from training.gate import replay, to_snapshot
from training.gate.builder import build_context
from training.gate.messages import TEMPLATES, Plural, msg, render
from training.models import GateResult
from training.reasons import reason_in, result_text
from training.services.gate import decision_snapshot, round_gate

pytestmark = pytest.mark.django_db

ENGLISH = "compute in US is outside the policy's areas (EEA)"
# Written out, not computed: a renderer that ignored the language would fail here.
RESIDENCY = {
    "de": "Rechenressourcen in US liegt außerhalb der Gebiete der Richtlinie (EEA)",
    "pl": "obliczenia w US poza obszarami polityki (EEA)",
}
ALLOWED = {
    "de": "zugelassen: 1 von 2 Standorten teilnahmeberechtigt",
    "pl": "dozwolona: dopuszczono 1 z 2 ośrodków",
}
PLACEHOLDER = re.compile(r"%\((\w+)\)")


def residency_split_run():
    """A run over two sites, de-legal computing in DE and nl-media in the US (which fails
    residency), each with one consenting subject."""
    purpose = PurposeFactory()
    run = RunFactory(purpose=purpose, num_rounds=3)
    DpiaFactory(run=run)
    for slug, compute in (("de-legal", "DE"), ("nl-media", "US")):
        ds = DatasetFactory(
            site=SiteFactory(slug=slug, compute_country=compute), purposes=[purpose]
        )
        run.datasets.add(ds)
        ConsentFactory(dataset=ds, purpose=purpose, subject_pseudonym=f"{slug}-s0001")
    return run


@pytest.fixture
def run():
    return residency_split_run()


@pytest.fixture
def operator_user():
    return UserFactory(username="op-i18n", is_staff=True, roles=[roles.OPERATOR, roles.DPO])


@pytest.fixture
def decided(run, operator_user):
    """Round 1 gated while the active language is English."""
    with translation.override("en"):
        decision = round_gate(actor=verified_actor(operator_user), run=run, round_no=1)
    return decision


def _residency(decision) -> GateResult:
    return decision.results.get(site_slug="nl-media", rule_id="residency")


# --- the stored form ---------------------------------------------------------------------


def test_a_rule_result_stores_its_code_and_params_and_english_is_their_rendering(decided):
    row = _residency(decided)
    assert row.reason == ENGLISH
    assert row.code == "residency.outside_policy"
    assert row.params == {
        "place": {"code": "residency.place.compute", "params": {}},
        "country": "US",
        "areas": "EEA",
    }
    assert render({"code": row.code, "params": row.params}) == row.reason
    # Every stored row, and the decision's own reason, re-render to their English text.
    for r in decided.results.all():
        assert r.code, r.rule_id
        assert render({"code": r.code, "params": r.params}) == r.reason
    assert decided.reason_code == "gate.refused"
    assert render({"code": decided.reason_code, "params": decided.reason_params}) == decided.reason


def test_params_are_json_data_without_text_of_any_language(decided):
    for r in decided.results.all():
        assert json.loads(json.dumps(r.params)) == r.params
    dumped = json.dumps([r.params for r in decided.results.all()], ensure_ascii=False)
    for text in (*RESIDENCY.values(), ENGLISH):
        assert text not in dumped


def test_the_gate_stores_english_whatever_language_is_active(run, operator_user):
    with translation.override("pl"):
        decision = round_gate(actor=verified_actor(operator_user), run=run, round_no=1)
    row = _residency(decision)
    assert row.reason == ENGLISH
    assert decision.reason.startswith("allowed: 1 of 2 sites eligible; refused: nl-media")


def test_snapshot_hash_is_the_same_whichever_language_reads_it(decided, run):
    stored = [(r.site_slug, r.rule_id, r.reason) for r in decided.results.order_by("pk")]
    with translation.override("pl"):
        assert result_text(_residency(decided)) == RESIDENCY["pl"]
        ctx, _ = build_context(run_id=run.pk, round_no=1, at=decided.evaluated_at)
        again = hashlib.sha256(rfc8785.dumps(to_snapshot(ctx))).hexdigest()
        verdict = replay(decision_snapshot(decided))
    assert again == decided.snapshot_hash
    # Re-running the rules in Polish gives the English text of record, unchanged.
    replayed = {(s.slug, r.rule_id): r.reason for s in verdict.sites for r in s.results}
    for slug, rule_id, reason in stored:
        if slug:
            assert replayed[(slug, rule_id)] == reason
    assert verdict.reason == decided.reason


def test_the_ledger_event_holds_no_reason_text_in_any_language(decided):
    entry = LedgerEntry.objects.get(seq=decided.ledger_seq)
    assert entry.event_type == "gate.decided"
    payload = json.loads(entry.payload) if isinstance(entry.payload, str) else entry.payload
    text = json.dumps(payload, ensure_ascii=False)
    rendered = [ENGLISH, decided.reason]
    for lang in ("de", "es", "pl", "fr"):
        rendered += [result_text_in(lang, r) for r in decided.results.all() if not r.ok]
    for reason in rendered:
        assert reason not in text
    # The language-neutral form: which rules failed, by id.
    assert "residency" in payload["failed_rules"][str(_residency(decided).site_id)]


def result_text_in(lang: str, row: GateResult) -> str:
    with translation.override(lang):
        return result_text(row)


# --- the catalogue -----------------------------------------------------------------------


@pytest.mark.parametrize("lang", [code for code, _ in settings.LANGUAGES if code != "en"])
def test_every_reason_template_is_translated_with_the_same_placeholders(lang):
    untranslated = []
    with translation.override(lang):
        for code, entry in TEMPLATES.items():
            if isinstance(entry, Plural):
                continue  # test_every_plural_reason_has_each_form_of_the_language
            template = entry
            translated = translation.gettext(template)
            assert sorted(PLACEHOLDER.findall(translated)) == sorted(
                PLACEHOLDER.findall(template)
            ), code
            # Templates that are only placeholders and punctuation may read the same.
            words = re.sub(r"%\(\w+\)[sgd.0-9]*|[\W]", "", template)
            if translated == template and words and not template.startswith("Art. %("):
                untranslated.append(code)
    assert untranslated == []


PLURALS = {code: t for code, t in TEMPLATES.items() if isinstance(t, Plural)}


def test_no_reason_writes_a_plural_as_s_in_brackets():
    templates = [t for entry in TEMPLATES.values() for t in _forms(entry)]
    assert PLURALS and not [t for t in templates if "(s)" in t or "(en)" in t]


def _forms(entry: str | Plural) -> list[str]:
    return [entry.one, entry.other] if isinstance(entry, Plural) else [entry]


# Counts that pick each form somewhere: Polish 1 / 2-4, 22 / 5, 12, 0; French 0 and 1
# together; Spanish a million.
COUNTS = (0, 1, 2, 4, 5, 12, 22, 1_000_000)


@pytest.mark.parametrize("lang", [code for code, _ in settings.LANGUAGES if code != "en"])
def test_every_plural_reason_has_each_form_of_the_language(lang):
    with translation.override(lang):
        for code, plural in PLURALS.items():
            texts = {translation.ngettext(plural.one, plural.other, n) for n in COUNTS}
            assert not texts & {plural.one, plural.other}, (code, texts)
            for text in texts:
                assert sorted(PLACEHOLDER.findall(text)) == sorted(
                    PLACEHOLDER.findall(plural.other)
                ), (code, text)
                assert "(s)" not in text and "(e)" not in text and "(en)" not in text, text


@pytest.mark.parametrize(
    ("lang", "count", "expected"),
    [
        ("en", 1, "1 site passes every rule; the policy needs 2"),
        ("en", 0, "0 sites pass every rule; the policy needs 2"),
        ("de", 1, "1 Standort erfüllt jede Regel; die Richtlinie verlangt 2"),
        ("de", 3, "3 Standorte erfüllen jede Regel; die Richtlinie verlangt 2"),
        ("es", 1, "1 sede cumple todas las reglas; la política exige 2"),
        ("es", 0, "0 sedes cumplen todas las reglas; la política exige 2"),
        ("fr", 0, "0 site respecte chaque règle ; la politique en exige 2"),
        ("fr", 3, "3 sites respectent chaque règle ; la politique en exige 2"),
        ("pl", 1, "1 ośrodek spełnia każdą regułę; polityka wymaga 2"),
        ("pl", 3, "3 ośrodki spełniają każdą regułę; polityka wymaga 2"),
        ("pl", 22, "22 ośrodki spełniają każdą regułę; polityka wymaga 2"),
        ("pl", 5, "5 ośrodków spełnia każdą regułę; polityka wymaga 2"),
        ("pl", 12, "12 ośrodków spełnia każdą regułę; polityka wymaga 2"),
    ],
)
def test_a_count_reads_in_the_form_its_language_gives_it(lang, count, expected):
    reason = msg("min_sites", passing=count, needed=2)
    assert reason_in(lang, reason["code"], reason["params"]) == expected
    if lang == "en":
        assert render(reason) == expected  # the stored English text


def test_a_row_stored_without_its_count_reads_in_the_plural():
    # privacy.unprotected_rounds carries "count" only since plurals; an older row's
    # params hold the rounds as text alone.
    params = {"rounds": "1, 2", "budget": 3.0}
    assert render({"code": "privacy.unprotected_rounds", "params": params}).startswith(
        "rounds 1, 2 released"
    )
    assert reason_in("de", "privacy.unprotected_rounds", params).startswith("Runden 1, 2 haben")


@pytest.mark.parametrize(
    ("lang", "controller", "processor"),
    [
        ("de", "Verantwortlicher", "Auftragsverarbeiter"),
        ("es", "responsable del tratamiento", "encargado del tratamiento"),
        ("pl", "administrator", "podmiot przetwarzający"),
        ("fr", "responsable du traitement", "sous-traitant"),
    ],
)
def test_scc_roles_read_in_the_regulations_terms(lang, controller, processor):
    wrong = msg(
        "scc.wrong_module",
        recorded=1,
        exporter_role=msg("role.controller"),
        importer_role=msg("role.processor"),
        module=2,
    )
    text = reason_in(lang, wrong["code"], wrong["params"])
    assert controller in text and processor in text
    assert "(EU) 2021/914" in text or "(UE) 2021/914" in text


def test_an_unknown_code_or_bad_params_fall_back_to_the_stored_english():
    assert reason_in("de", "no.such.code", {}, "stored English") == "stored English"
    assert reason_in("pl", "min_sites", {"passing": 1}, "stored") == "stored"
    assert reason_in("pl", "privacy.no_delta", {"budget": "x"}, "stored") == "stored"
    assert reason_in("pl", "", {}, "stored") == "stored"


# --- rendered per reader: admin, dashboard, API ------------------------------------------


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_the_admin_round_page_shows_the_reason_in_the_readers_language(decided, lang):
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    login_verified(client, UserFactory(username=f"reader-{lang}", is_staff=True, roles=[roles.DPO]))
    page = client.get(f"/admin/training/round/{decided.round_id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert RESIDENCY[lang] in html
    assert ALLOWED[lang] in html
    assert ENGLISH not in html.replace("&#x27;", "'")

    detail = client.get(f"/admin/training/gatedecision/{decided.pk}/change/")
    assert detail.status_code == 200
    assert ALLOWED[lang] in detail.content.decode()


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_the_dashboard_shows_the_reason_in_the_readers_language(decided, lang):
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    client.force_login(UserFactory(username=f"dash-{lang}", roles=[roles.DPO]))
    page = client.get("/dashboard/")
    assert page.status_code == 200
    html = page.content.decode()
    assert RESIDENCY[lang] in html
    assert ALLOWED[lang] in html


def test_the_api_is_neutral_unless_a_language_is_asked_for(api, decided, make_user):
    client = api(make_user(roles.DPO))
    url = f"/api/v1/runs/{decided.round.run_id}/rounds/1/decision"

    neutral = client.get(url).json()
    nl = next(s for s in neutral["sites"] if s["slug"] == "nl-media")
    row = next(r for r in nl["results"] if r["rule_id"] == "residency")
    assert "reason_rendered" not in row and "language" not in neutral
    assert (row["code"], row["reason"]) == ("residency.outside_policy", ENGLISH)
    assert neutral["reason_code"] == "gate.refused"

    for how, lang in ((("?lang=de",), {}), (("",), {"HTTP_ACCEPT_LANGUAGE": "pl-PL,pl;q=0.9"})):
        body = client.get(url + how[0], **lang).json()
        want = "de" if how[0] else "pl"
        assert body["language"] == want
        nl = next(s for s in body["sites"] if s["slug"] == "nl-media")
        row = next(r for r in nl["results"] if r["rule_id"] == "residency")
        assert row["reason_rendered"] == RESIDENCY[want]
        assert (row["code"], row["reason"]) == ("residency.outside_policy", ENGLISH)
        assert body["reason_rendered"].startswith(ALLOWED[want])
        assert body["reason"] == decided.reason


def test_the_api_refuses_a_language_it_does_not_offer_before_gating(api, run, make_user):
    client = api(make_user(roles.OPERATOR))
    response = client.post(f"/api/v1/runs/{run.pk}/rounds/1/gate?lang=xx")
    assert response.status_code == 400
    assert "lang" in response.json()
    assert not run.rounds.exists()


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_a_row_with_an_unknown_code_shows_its_stored_english_on_every_page(decided, lang, api):
    row = _residency(decided)
    GateResult.objects.filter(pk=row.pk).update(code="residency.retired_code")
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    login_verified(client, UserFactory(username=f"fb-{lang}", is_staff=True, roles=[roles.DPO]))
    page = client.get(f"/admin/training/round/{decided.round_id}/change/")
    assert page.status_code == 200
    assert ENGLISH in page.content.decode().replace("&#x27;", "'")
    dash = client.get("/dashboard/")
    assert dash.status_code == 200
    assert ENGLISH in dash.content.decode().replace("&#x27;", "'")


@pytest.mark.parametrize("app", ["training", "reports"])
@pytest.mark.parametrize("lang", ["de", "es", "pl", "fr"])
def test_the_app_catalogues_are_complete_and_compiled_from_their_po(app, lang):
    import gettext as stdlib_gettext
    from pathlib import Path

    import polib

    folder = Path(settings.BASE_DIR) / app / "locale" / lang / "LC_MESSAGES"
    po = [e for e in polib.pofile(str(folder / "django.po")) if e.msgid]
    entries = {(e.msgctxt, e.msgid): e.msgstr for e in po if not e.msgid_plural}
    plurals = {(e.msgid, e.msgid_plural): e.msgstr_plural for e in po if e.msgid_plural}
    assert len(entries) > 50, folder
    untranslated = [msgid for msgid, msgstr in entries.items() if not msgstr]
    untranslated += [key for key, forms in plurals.items() if not all(forms.values())]
    assert not untranslated, (app, lang, untranslated)
    with (folder / "django.mo").open("rb") as mo:
        compiled = stdlib_gettext.GNUTranslations(mo)
    for (context, msgid), msgstr in entries.items():
        shown = compiled.pgettext(context, msgid) if context else compiled.gettext(msgid)
        assert shown == msgstr, (app, lang, context, msgid)
    for (one, other), forms in plurals.items():
        shown = {compiled.ngettext(one, other, n) for n in COUNTS}
        assert shown == set(forms.values()) - {forms.get(3)} or shown == set(forms.values()), (
            app,
            lang,
            one,
        )
