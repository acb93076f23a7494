"""Reports in the requested language (issue 19): the signed PDF and the Art. 30 record.

The PDF and the Art. 30 record are written in the language the request names, with the
GDPR's own terms (docs/glossary.md) and articles cited the same way; the evidence bundle
does not depend on the language. Text is taken back out of the PDFs with pdftotext.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile

import pytest
from django.test import Client
from django.utils import timezone, translation

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from fedgov.models import Profile
from reports.models import Report
from reports.services import _produce, report_build, report_generate
from sites.models import Site
from tests.factories import UserFactory, login_verified, verified, verified_actor
from tests.reports.test_pdf import build_pdf, pdf_text
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

# Organisation and run names stored with each language's letters.
NAMES = {
    "pl": "Sąd Okręgowy w Łodzi: źdźbło, gęś, koń, żółć",
    "de": "Landgericht Köln: Größe, Gerät, Prüfung",
    "es": "Editorial Española: año, señal",
    "fr": "Éditions Cœur: élève, père, garçon, sœur",
}
LETTERS = "ąęłńśźżäöüßñéèçœ"
# Headings and GDPR terms each language's PDF must carry, written out here.
HEADINGS = {
    "de": [
        "Prüfbericht",
        "Verantwortliche",
        "rechtlicher Rahmen",
        "Verantwortliche und Vereinbarungen",
        "Anhang: Ledger-Anker und Inklusionsnachweise",
        # The glossary's word (Vier-Augen-Freigabe), as the admin and dashboard say it.
        "Freigaben",
    ],
    "es": [
        "Informe de auditoría",
        "Responsables del tratamiento",
        "marco jurídico",
        "Responsables del tratamiento y acuerdos",
        "Anexo: anclaje del registro y pruebas de inclusión",
        "Aprobaciones",
    ],
    "pl": [
        "Raport z audytu",
        "Administratorzy",
        "ramy prawne",
        "Administratorzy i umowy",
        "Załącznik: kotwica rejestru i dowody włączenia",
        "Zatwierdzenia",
    ],
    "fr": [
        "Rapport d'audit",
        "Responsables du traitement",
        "cadre juridique",
        "Responsables du traitement et accords",
        "Annexe : ancrage du registre et preuves d'inclusion",
        "Validations",
    ],
}
ROLE_TERMS = {
    "de": ("Verantwortlicher", "Auftragsverarbeiter", "Gemeinsam Verantwortliche (Art. 26)"),
    "es": (
        "Responsable del tratamiento",
        "Encargado del tratamiento",
        "Corresponsables del tratamiento (Art. 26)",
    ),
    "pl": ("Administrator", "Podmiot przetwarzający", "Współadministratorzy (Art. 26)"),
    "fr": (
        "Responsable du traitement",
        "Sous-traitant",
        "Responsables conjoints du traitement (Art. 26)",
    ),
}
RECORD_TITLE = {
    "de": "Verzeichnis von Verarbeitungstätigkeiten",
    "es": "Registro de las actividades de tratamiento",
    "pl": "Rejestr czynności przetwarzania",
    "fr": "Registre des activités de traitement",
}


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def named_run(played_run):
    run, sites, *_ = played_run
    TrainingRun.objects.filter(pk=run.pk).update(name=NAMES["pl"])
    for site, lang in zip(sites, ["de", "es", "fr"], strict=False):
        Site.objects.filter(pk=site.pk).update(organisation=NAMES[lang])
    run.refresh_from_db()
    return run


def _pdf_in(lang: str, run, path) -> str:
    with translation.override(lang):
        build_pdf(run, path)
    return _flat(pdf_text(path))


@pytest.mark.parametrize("lang", ["de", "es", "pl", "fr"])
def test_the_pdf_is_written_in_the_requested_language_with_every_letter(named_run, tmp_path, lang):
    text = _pdf_in(lang, named_run, tmp_path / f"report-{lang}.pdf")
    for heading in HEADINGS[lang]:
        assert _flat(heading) in text, heading
    for other, headings in HEADINGS.items():
        if other != lang:
            assert headings[0] not in text
    assert "Audit report" not in text and "legal frame" not in text
    # Counts take their language's plural form, never a bracketed ending.
    assert not re.search(r"\w\((s|e|en|n|r|zy|i|y|es|ach)\)", text), text
    # The names keep their letters whatever the language; with them, all five alphabets.
    squeezed = "".join(text.split())
    for name in NAMES.values():
        assert "".join(name.split()) in squeezed, name
    for letter in LETTERS:
        assert letter in text, letter
    # A glyph the font lacks comes out of pdftotext as a black square.
    assert "\u25a0" not in text, text[max(0, text.find("\u25a0") - 80) : text.find("\u25a0") + 80]
    # Articles are cited the same way in every language.
    assert "Art. 26" in text and "Art. 9" in text


def test_the_gate_reasons_in_the_pdf_follow_its_language(named_run, tmp_path):
    pl = _pdf_in("pl", named_run, tmp_path / "pl.pdf")
    en = _pdf_in("en", named_run, tmp_path / "en.pdf")
    # The round rule's reason, rendered from its code: Polish in one, English in the other.
    assert re.search(r"\d+ ośrod\w+ spełnia(ją)? każdą regułę", pl)
    assert re.search(r"\d+ sites? pass(es)? every rule", en) and "every rule" not in pl
    # A rule's article too: the stored "Art. 44 + policy" names the policy in Polish.
    assert "Art. 44 + polityka" in pl and "Art. 44 + policy" not in pl
    assert "Art. 44 + policy" in en


def test_dates_in_the_pdf_use_the_house_format_of_the_language(named_run, tmp_path):
    today = timezone.now().astimezone(dt.UTC)
    de = _pdf_in("de", named_run, tmp_path / "de.pdf")
    en = _pdf_in("en", named_run, tmp_path / "en.pdf")
    assert today.strftime("%d.%m.%Y") in de
    assert today.strftime("%Y-%m-%d") in en


def _generated(run, language=None, username="lena"):
    legal = UserFactory(username=username, roles=[roles.LEGAL])
    report = report_generate(actor=verified_actor(legal), run=run, language=language)
    return report_build(actor=Actor.system("tests"), report_id=report.pk)


def test_a_report_request_names_its_language_and_the_signed_pdf_is_in_it(named_run, report_dirs):
    report = _generated(named_run, "es")
    assert Report.objects.get(pk=report.pk).language == "es"
    requested = LedgerEntry.objects.get(
        event_type="report.requested", subject_type="report", subject_id=str(report.pk)
    )
    assert json.loads(requested.payload)["language"] == "es"
    text = _flat(pdf_text(report_dirs / report.pdf_name))
    assert "Informe de auditoría" in text and "Audit report" not in text


def test_a_language_fedgov_does_not_offer_is_refused(named_run):
    legal = UserFactory(username="lena", roles=[roles.LEGAL])
    with pytest.raises(InvalidInput) as err:
        report_generate(actor=verified_actor(legal), run=named_run, language="ja")
    assert "language" in err.value.message
    assert not Report.objects.exists()


def test_without_a_language_the_report_follows_the_requesters_profile(named_run):
    legal = UserFactory(username="lena", roles=[roles.LEGAL])
    Profile.objects.update_or_create(user=legal, defaults={"language": "fr"})
    report = report_generate(actor=verified_actor(legal), run=named_run)
    assert report.language == "fr"


def test_the_api_takes_the_language_and_refuses_an_unknown_one(api, named_run):
    legal = UserFactory(username="lena", roles=[roles.LEGAL])
    client = api(verified(legal))
    bad = client.post("/api/v1/reports", {"run": named_run.pk, "language": "xx"}, format="json")
    assert bad.status_code == 400 and "language" in bad.json()
    ok = client.post("/api/v1/reports", {"run": named_run.pk, "language": "pl"}, format="json")
    assert ok.status_code == 202, ok.content
    assert ok.json()["language"] == "pl"
    assert Report.objects.get(public_id=ok.json()["id"]).language == "pl"


def test_the_admin_form_offers_the_languages_and_stores_the_choice(named_run):
    user = UserFactory(username="lena", is_staff=True, roles=[roles.LEGAL])
    client = Client()
    login_verified(client, user)
    page = client.get("/admin/reports/report/add/")
    assert page.status_code == 200
    html = page.content.decode()
    for code in ("en", "de", "es", "pl", "fr"):
        assert f'<option value="{code}"' in html
    client.post("/admin/reports/report/add/", {"run": named_run.pk, "language": "de"})
    assert Report.objects.get().language == "de"


def test_the_evidence_bundle_is_the_same_in_every_language(named_run):
    # Both reports are requested first and then produced against the same ledger state, so
    # the only thing that can tell their bundles apart is the language of their PDFs.
    legal = UserFactory(username="lena", roles=[roles.LEGAL])
    pl = report_generate(actor=verified_actor(legal), run=named_run, language="pl")
    es = report_generate(actor=verified_actor(legal), run=named_run, language="es")
    made = {r.language: _produce(Actor.system("tests"), r) for r in (pl, es)}
    (pl_pdf, pl_sha, pl_zip, *_), (es_pdf, es_sha, es_zip, *_) = made["pl"], made["es"]
    assert pl_sha != es_sha
    assert "Raport z audytu" in pdf_text(pl_pdf) and "Informe de auditoría" in pdf_text(es_pdf)
    with zipfile.ZipFile(pl_zip) as a, zipfile.ZipFile(es_zip) as b:
        assert a.namelist() == b.namelist()
        differing = {n for n in a.namelist() if a.read(n) != b.read(n)}
        statements = [json.loads(z.read("report/statement.json")) for z in (a, b)]
        manifests = [json.loads(z.read("manifest.json")) for z in (a, b)]
        data = a.read("report/data.jsonl").decode()
    # The statement names the PDF's hash (and its report), the signature signs the
    # statement, the manifest hashes both: nothing else differs, data byte for byte.
    assert differing <= {"report/statement.json", "report/signature.json", "manifest.json"}
    for statement in statements:
        statement.pop("pdf_sha256"), statement.pop("report_id")
    assert statements[0] == statements[1]
    assert _without(manifests[0]) == _without(manifests[1])
    for text in ("Informe", "Raport", "spełnia", "cumple", "Administrator"):
        assert text not in data


def _without(manifest: dict) -> dict:
    """The manifest less what names the PDF (two files' hashes, the report id) and the
    clock time the bundle was written at."""
    kept = {k: v for k, v in manifest.items() if k not in ("created_at", "report")}
    kept["files"] = {
        name: digest
        for name, digest in manifest["files"].items()
        if name not in ("report/statement.json", "report/signature.json")
    }
    return kept


@pytest.mark.parametrize("lang", ["de", "es", "pl", "fr"])
def test_the_art30_record_is_in_the_requested_language_csv_and_pdf(api, named_run, lang, tmp_path):
    client = api(UserFactory(username=f"dpo-{lang}", roles=[roles.DPO]))
    controller, processor, joint = ROLE_TERMS[lang]
    got = client.get(f"/api/v1/reports/art30?view=controller&output=csv&lang={lang}")
    assert got.status_code == 200
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0][0] == controller and joint in rows[0]
    assert any(NAMES["de"] in row for row in rows[1:])
    # The lawful-basis column cites the article as English does.
    assert all(row[7].startswith("Art. 6(1)") for row in rows[1:])

    proc = client.get(f"/api/v1/reports/art30?view=processor&output=csv&lang={lang}")
    assert next(csv.reader(io.StringIO(proc.content.decode("utf-8-sig"))))[0] == processor

    pdf = client.get(f"/api/v1/reports/art30?view=controller&output=pdf&lang={lang}")
    assert pdf.status_code == 200
    path = tmp_path / f"art30-{lang}.pdf"
    path.write_bytes(pdf.content)
    text = _flat(pdf_text(path))
    assert RECORD_TITLE[lang] in text
    assert "Art. 30(1)" in text and "Art. 32" in text
    assert "Record of processing activities" not in text


def test_the_art30_record_refuses_an_unknown_language(api):
    client = api(UserFactory(username="dpo", roles=[roles.DPO]))
    got = client.get("/api/v1/reports/art30?view=controller&output=csv&lang=xx")
    assert got.status_code == 400 and "lang" in got.json()


def test_english_stays_the_default_for_a_reader_without_a_language(api, named_run):
    client = api(UserFactory(username="dpo", roles=[roles.DPO]))
    got = client.get("/api/v1/reports/art30?view=controller&output=csv")
    assert got.content.decode("utf-8-sig").startswith("Controller,Role of the site")


# The gate's words for a leg to a US zone operator without a transfer ground, per language:
# (what goes to whom, the verdict), as the training catalogue translates them.
LEG_WORDS = {
    "de": ("Standortdaten an den Betreiber der Zone", "Drittland ohne Grundlage"),
    "pl": ("dane ośrodka do operatora strefy", "państwa trzeciego bez podstawy"),
    # French puts a space before the colon that joins head, flow and verdict.
    "fr": ("données du site vers l'opérateur de la zone", "pays tiers sans fondement"),
}


@pytest.fixture
def us_leg_run():
    """A run whose third site's zone is run by a US processor with no Chapter V ground."""
    from tests.training.flower.conftest import governed_scenario
    from training.services.gate import round_gate

    run, sites, _ = governed_scenario(subjects=3)
    Site.objects.filter(pk=sites[2].pk).update(
        zone_operator="Atlantic Cloud Hosting Inc.",
        zone_operator_country="US",
        zone_operator_role="processor",
    )
    round_gate(actor=Actor.system("t"), run=run, round_no=1)
    return run, sites


@pytest.mark.parametrize("lang", ["de", "pl", "fr"])
def test_transfer_legs_in_the_pdf_and_art30_are_in_the_reports_language(us_leg_run, tmp_path, lang):
    """The legs are rendered from the gate's code and params when the PDF is written, not
    parsed from its English: the facts are gathered outside the language (as the report
    service does) and only the rendering is in it."""
    from reports import art30
    from reports.assemble import report_input
    from reports.data import processing_activities, run_header
    from reports.pdf import render

    run, sites = us_leg_run
    what, verdict = LEG_WORDS[lang]
    doc = report_input(
        report_id="r-legs",
        run_ids=[run.pk],
        run_name=run.name,
        period=None,
        generated_at=timezone.now(),
        actor=Actor.system("tests"),
        on_round=lambda _facts: None,
    )
    path = tmp_path / f"legs-{lang}.pdf"
    with translation.override(lang):
        render(doc, str(path))
    text = _flat(pdf_text(path))
    for word in (*what.split(), *verdict.split()):
        assert word in text
    assert "site data to the zone operator" not in text and "without a ground" not in text

    activities = processing_activities()
    with translation.override(lang):
        rows = {r["dataset"].split("/")[0]: r for r in art30.controller_rows(activities)}
    listed = rows[sites[2].slug]["transfers"]
    assert "Atlantic Cloud Hosting Inc. (US)" in listed and verdict in listed
    # The ground alone: the head and the flow are the record's own columns.
    assert what not in listed and "(US, " not in listed
    assert "without a ground" not in listed
    # The evidence keeps the English and the code: neither depends on the reader.
    leg = next(t for t in run_header(run_id=run.pk).transfers if t.third_country)
    assert "without a ground" in leg.ground and leg.reason["code"] == "transfer.no_ground"


# The PDF's own prose (appendix, witnesses, trusted time) per language; the English it
# replaces, with the privacy and chart sentences, must be gone.
PROSE = {
    "de": [
        "Keine vertrauenswürdige Zeit.",
        "Jedes Ereignis, das dieser Bericht zitiert, ist ein Blatt des nur anhängbaren Ledgers",
        "Noch kein Zeuge hat diesen Checkpoint mitsigniert",
    ],
    "pl": [
        "Brak zaufanego czasu.",
        "Każde zdarzenie cytowane w tym raporcie jest liściem rejestru fedgov",
        "Żaden świadek nie współpodpisał jeszcze tego punktu kontrolnego",
    ],
}
ENGLISH_PROSE = [
    "No trusted time.",
    "Every event this report cites",
    "No witness has cosigned",
    "the same OpenNebula workloads",
    "this report claims no ε",
    "no accuracy was reported",
]


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_the_pdf_prose_is_in_the_reports_language(named_run, tmp_path, lang):
    text = _pdf_in(lang, named_run, tmp_path / f"prose-{lang}.pdf")
    for sentence in PROSE[lang]:
        assert sentence in text, sentence
    for sentence in ENGLISH_PROSE:
        assert sentence not in text, sentence


# Stored enum values by their choice labels (the admin's words), per language: the round
# state, the DPIA's status in the summary sentence, the policy's status.
LABELS = {
    "de": [
        "Rundenstatus Platzierung geprüft —",
        "ist freigegeben, gültig bis",
        "(veröffentlicht)",
    ],
    "pl": [
        "Stan rundy Lokalizacja zweryfikowana —",
        "ma status zatwierdzona, ważna do",
        "(opublikowana)",
    ],
}


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_stored_states_print_as_their_labels_in_the_reports_language(named_run, tmp_path, lang):
    text = _pdf_in(lang, named_run, tmp_path / f"labels-{lang}.pdf")
    for label in LABELS[lang]:
        assert label in text, label
    # (The appendix names the ledger's event types, which stay as they are.)
    assert "placement_verified." not in text and "(published)" not in text
    assert " approve anton " not in text


# The played run's accuracies are 0.61 then 0.74 (tests/reports/conftest.py).
ACCURACY = {
    "en": ("from 0.61 to 0.74", "0.7400"),
    "de": ("von 0,61 auf 0,74", "0,7400"),
    "es": ("de 0,61 a 0,74", "0,7400"),
    "pl": ("z 0,61 na 0,74", "0,7400"),
    "fr": ("de 0,61 à 0,74", "0,7400"),
}


@pytest.mark.parametrize("lang", sorted(ACCURACY))
def test_the_pdfs_numbers_use_the_reports_decimal_sign(named_run, tmp_path, lang):
    text = _pdf_in(lang, named_run, tmp_path / f"numbers-{lang}.pdf")
    summary, round_line = ACCURACY[lang]
    assert summary in text
    assert round_line in text  # the round's "Model accuracy" line
    if lang != "en":
        assert "0.61" not in text and "0.7400" not in text


NBSP = "\xa0"
GROUPED = {"en": "12,345", "de": "12.345", "es": f"12{NBSP}345", "pl": f"12{NBSP}345"}
GROUPED["fr"] = GROUPED["pl"]


@pytest.mark.parametrize("lang", sorted(GROUPED))
def test_the_summarys_counts_are_grouped_as_the_language_groups_them(named_run, lang):
    """Counts past a thousand in the summary sentence and its figures box."""
    import dataclasses

    from reportlab.platypus import Paragraph, Table

    from reports.data import round_series, run_header
    from reports.pdf import _summary

    series = [
        dataclasses.replace(p, excluded_subjects=12345 if i == 0 else 0)
        for i, p in enumerate(round_series(run_id=named_run.pk))
    ]
    with translation.override(lang):
        flowables = list(_summary(run_header(run_id=named_run.pk), series))
        sentence = next(f for f in flowables if isinstance(f, Paragraph) and "12" in f.text)
        (box,) = [f for f in flowables if isinstance(f, Table)]
    assert GROUPED[lang] in sentence.text
    assert "12345" not in sentence.text
    figures = [cell.text for cell in box._cellvalues[0]]
    assert figures[3] == GROUPED[lang]
