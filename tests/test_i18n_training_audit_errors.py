"""Errors people reach in training, audit and reports, in their language (issue 19).

Each family is driven through its real entry point (the API with Accept-Language, the
admin with the reader's language) in de, es, pl and fr: the message is not the English
one, carries a word of that language's catalogue, and has its placeholders filled (the
run, policy, site or size it names, and no ``{...}`` left). The API's field names and
status codes stay as they are; what is stored (a report's error, the ledger) stays
English or a code.
"""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from audit.models import LedgerEntry
from fedgov import roles
from reports.models import Report
from sites.choices import PolicyStatus
from sites.models import SiteSteward
from tests.factories import (
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    PurposeFactory,
    RoundFactory,
    RunFactory,
    SiteFactory,
    UserFactory,
    login_verified,
    sha,
    verified,
)
from training.choices import DpiaStatus, RoundState, RunStatus

pytestmark = pytest.mark.django_db

LANGS = ("de", "es", "pl", "fr")


def _translated(text: str, english: str, word: str, *filled: str) -> None:
    """``text`` is not ``english``, has ``word`` from the catalogue and its values filled."""
    assert text != english
    assert word in text, text
    for value in filled:
        assert value in text, (value, text)
    assert not re.search(r"\{\w*(![rs])?\}|%\(\w+\)s", text), text


def _refused(response, status: int):
    """The body of a refusal, once its status is the expected one."""
    assert response.status_code == status, response.content
    return response.json()


def _page(response) -> str:
    return html.unescape(response.content.decode())


def _admin(lang: str, *role_names: str, superuser: bool = False) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    user = UserFactory(
        username=f"admin-{lang}", is_staff=True, is_superuser=superuser, roles=list(role_names)
    )
    login_verified(client, user)
    return client


# ------------------------------------------------------------------- runs (API and admin)


def _run_body(dataset, policy, **change):
    body = {
        "name": "topics-2027",
        "purpose": "topics",
        "datasets": [dataset.pk],
        "policy": policy.pk,
        "aggregator_country": "DE",
    }
    return {**body, **change}


@pytest.mark.parametrize(
    ("lang", "country", "dp"),
    [
        ("de", "ist kein Ländercode", "braucht einen DP-Mechanismus"),
        ("es", "no es un código de país", "necesita un mecanismo DP"),
        ("pl", "nie jest kodem kraju", "wymaga mechanizmu DP"),
        ("fr", "n'est pas un code de pays", "exige un mécanisme DP"),
    ],
)
def test_a_run_with_bad_facts_is_refused_field_by_field_in_the_readers_language(
    api, make_user, lang, country, dp
):
    purpose = PurposeFactory(code="topics")
    dataset = DatasetFactory(purposes=[purpose])
    body = _run_body(dataset, PolicyFactory(), aggregator_country="XX", dp_clipping_norm=1.0)
    client = api(make_user(roles.OPERATOR, username=f"op-{lang}"))
    response = client.post("/api/v1/runs", body, format="json", HTTP_ACCEPT_LANGUAGE=lang)
    errors = _refused(response, 400)
    assert set(errors) == {"aggregator_country", "dp_clipping_norm"}
    _translated(
        errors["aggregator_country"][0],
        "'XX' is not an ISO 3166-1 alpha-2 country code",
        country,
        "'XX'",
        "ISO 3166-1",
    )
    _translated(
        errors["dp_clipping_norm"][0], "needs a DP mechanism; with none nothing adds noise", dp
    )


@pytest.mark.parametrize(
    ("lang", "draft", "taken", "withdrawn"),
    [
        ("de", "ist ein Entwurf", "existiert bereits", "zurückgezogen"),
        ("es", "es un borrador", "ya existe", "retirados de la federación"),
        ("pl", "to wersja robocza", "już istnieje", "wycofane z federacji"),
        ("fr", "est un brouillon", "existe déjà", "retirés de la fédération"),
    ],
)
def test_a_run_on_a_draft_policy_with_a_taken_name_is_refused_in_the_readers_language(
    api, make_user, lang, draft, taken, withdrawn
):
    from django.utils import timezone

    purpose = PurposeFactory(code="topics")
    dataset = DatasetFactory(purposes=[purpose], withdrawn_at=timezone.now())
    RunFactory(name="topics-2027")
    policy = PolicyFactory(name="eu", version=4, status=PolicyStatus.DRAFT)
    client = api(make_user(roles.OPERATOR, username=f"op-{lang}"))
    before = LedgerEntry.objects.count()
    body = _run_body(dataset, policy)
    response = client.post("/api/v1/runs", body, format="json", HTTP_ACCEPT_LANGUAGE=lang)
    errors = _refused(response, 400)
    _translated(errors["policy"][0], "eu v4 is a draft; publish it first", draft, "eu v4")
    _translated(
        errors["name"][0], "a run named 'topics-2027' already exists", taken, "'topics-2027'"
    )
    english = f"withdrawn from federation: {dataset.pk}"
    _translated(errors["datasets"][0], english, withdrawn, str(dataset.pk))
    assert LedgerEntry.objects.count() == before  # a refusal writes nothing


@pytest.mark.parametrize(
    ("lang", "needed"),
    [
        ("de", "zulässige Standorte: mindestens 3"),
        ("es", "sedes admisibles: al menos 3"),
        ("pl", "kwalifikujących się ośrodków: co najmniej 3"),
        ("fr", "sites admissibles : au moins 3"),
    ],
)
def test_a_run_its_policy_can_never_pass_is_refused_in_the_readers_language(
    api, make_user, lang, needed
):
    purpose = PurposeFactory(code="topics")
    dataset = DatasetFactory(purposes=[purpose])
    policy = PolicyFactory(name="eu", version=2, min_eligible_sites=3)
    client = api(make_user(roles.OPERATOR, username=f"op-{lang}"))
    body = _run_body(dataset, policy)
    response = client.post("/api/v1/runs", body, format="json", HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 400
    english = "policy eu v2 needs at least 3 eligible sites; this run's datasets come from 1"
    _translated(response.json()["policy"][0], english, needed, "eu v2", ": 1")


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("de", "ein Lauf braucht eine veröffentlichte Richtlinienversion"),
        ("es", "una ejecución necesita una versión de política publicada"),
        ("pl", "przebieg wymaga opublikowanej wersji polityki"),
        ("fr", "une exécution exige une version de politique publiée"),
    ],
)
def test_the_run_admin_refuses_a_draft_policy_in_the_readers_language(lang, text):
    purpose = PurposeFactory(code="topics")
    dataset = DatasetFactory(purposes=[purpose])
    policy = PolicyFactory(status=PolicyStatus.DRAFT)
    form = {
        "name": "r",
        "purpose": purpose.pk,
        "datasets": [dataset.pk],
        "policy": policy.pk,
        "aggregator_country": "DE",
        "num_rounds": 3,
        "dp_mechanism": "none",
        "on_refusal": "skip",
    }
    response = _admin(lang, superuser=True).post("/admin/training/trainingrun/add/", form)
    assert response.status_code == 200
    assert text in _page(response)


# ------------------------------------------------------------------------- DPIAs (Art. 35)


@pytest.mark.parametrize(
    ("lang", "approved", "four_eyes"),
    [
        ("de", "ist genehmigt", "Vier-Augen-Freigabe"),
        ("es", "está aprobada", "aprobación por dos personas"),
        ("pl", "jest zatwierdzona", "zatwierdzenie na zasadzie dwóch par oczu"),
        ("fr", "est approuvée", "validation à quatre yeux"),
    ],
)
def test_dpia_refusals_read_in_the_readers_language(api, make_user, lang, approved, four_eyes):
    dpo = make_user(roles.DPO, username=f"dpo-{lang}")
    client = api(dpo)
    done = DpiaFactory(run=RunFactory(name=f"r-{lang}"))
    again = client.post(
        "/api/v1/dpias",
        {"run": done.run.pk, "reference": "D-2", "document_hash": sha("d2")},
        format="json",
        HTTP_ACCEPT_LANGUAGE=lang,
    )
    assert again.status_code == 409
    english = f"the DPIA of run r-{lang} is approved; it cannot change"
    _translated(again.json()["detail"], english, approved, f"r-{lang}")

    own = DpiaFactory(run=RunFactory(requested_by=dpo), status=DpiaStatus.DRAFT)
    response = client.post(
        f"/api/v1/dpias/{own.pk}/approve",
        {"valid_until": "2030-01-01"},
        format="json",
        HTTP_ACCEPT_LANGUAGE=lang,
    )
    assert response.status_code == 400
    english = "the run's requester may not approve its DPIA (four-eyes)"
    _translated(response.json()["non_field_errors"][0], english, four_eyes)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("de", "dieser Lauf hat bereits eine Datenschutz-Folgenabschätzung"),
        ("es", "esta ejecución ya tiene una evaluación de impacto relativa a la protección"),
        ("pl", "ten przebieg ma już ocenę skutków dla ochrony danych"),
        ("fr", "cette exécution a déjà une analyse d'impact relative à la protection"),
    ],
)
def test_the_dpia_admin_refuses_a_second_dpia_in_the_readers_language(lang, text):
    dpia = DpiaFactory()
    form = {"run": dpia.run.pk, "reference": "D-2", "document_hash": sha("d2")}
    response = _admin(lang, superuser=True).post("/admin/training/dpia/add/", form)
    assert response.status_code == 200
    assert text in _page(response)


@pytest.mark.parametrize(
    ("lang", "label", "status"),
    [
        ("de", "Datenschutz-Folgenabschätzung D-9 genehmigen", "kein Entwurf"),
        ("es", "aprobar la evaluación de impacto D-9", "no es un borrador"),
        ("pl", "zatwierdź ocenę skutków D-9", "nie jest wersją roboczą"),
        ("fr", "approuver l'analyse d'impact D-9", "pas un brouillon"),
    ],
)
def test_the_dpia_approve_action_names_the_dpia_and_the_refusal_in_the_readers_language(
    lang, label, status
):
    dpia = DpiaFactory(reference="D-9", status=DpiaStatus.APPROVED)
    response = _admin(lang, superuser=True).post(
        "/admin/training/dpia/",
        {"action": "approve_dpias", "_selected_action": [dpia.pk], "valid_until": ""},
        follow=True,
    )
    page = _page(response)
    # The admin's "action: reason" sentence may open with a capital in a language.
    assert label.lower() in page.lower() and status in page
    assert "approve DPIA D-9" not in page


# ------------------------------------------------------------------------------- the gate


@pytest.mark.parametrize(
    ("lang", "range_", "inactive", "planned"),
    [
        ("de", "muss für diesen Lauf zwischen 1 und 3 liegen", "ist finished", "nur eine geplante"),
        ("es", "debe estar entre 1 y 3 para esta ejecución", "está en finished", "planificada"),
        ("pl", "musi mieścić się między 1 a 3", "ma stan finished", "tylko zaplanowana"),
        ("fr", "doit être compris entre 1 et 3 pour", "est finished", "seul un tour planifié"),
    ],
)
def test_the_gate_api_refuses_in_the_readers_language(
    api, make_user, lang, range_, inactive, planned
):
    client = api(make_user(roles.OPERATOR, username=f"op-{lang}"))
    run = RunFactory(name=f"g-{lang}", num_rounds=3)
    outside = client.post(f"/api/v1/runs/{run.pk}/rounds/4/gate", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(
        _refused(outside, 400)["round_no"][0], "must be between 1 and 3 for this run", range_
    )

    RoundFactory(run=run, number=1, state=RoundState.GATED)
    gated = client.post(f"/api/v1/runs/{run.pk}/rounds/1/gate", HTTP_ACCEPT_LANGUAGE=lang)
    assert gated.status_code == 409
    english = f"round 1 of g-{lang} is gated; only a planned round can be gated"
    _translated(gated.json()["detail"], english, planned, f"g-{lang}", "gated")

    run.status = RunStatus.FINISHED
    run.save(update_fields=["status"])
    stopped = client.post(f"/api/v1/runs/{run.pk}/rounds/2/gate", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(
        _refused(stopped, 409)["detail"], f"run g-{lang} is finished", inactive, f"g-{lang}"
    )


@pytest.mark.parametrize(
    ("lang", "none_yet", "one_of"),
    [
        ("de", "noch keine Prüfentscheidung", "muss einer der Werte"),
        ("es", "todavía no tiene decisión del control", "debe ser uno de"),
        ("pl", "nie ma jeszcze decyzji bramki", "musi być jedną z wartości"),
        ("fr", "pas encore de décision du contrôle", "doit être l'une des valeurs"),
    ],
)
def test_the_gate_decision_api_says_what_is_missing_in_the_readers_language(
    api, make_user, lang, none_yet, one_of
):
    client = api(make_user(roles.DPO, username=f"dpo-{lang}"))
    run = RunFactory()
    missing = client.get(f"/api/v1/runs/{run.pk}/rounds/1/decision", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(_refused(missing, 404)["detail"], "this round has no gate decision yet", none_yet)
    bad = client.post(f"/api/v1/runs/{run.pk}/rounds/1/gate?lang=xx", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(
        _refused(bad, 400)["lang"][0], "must be one of en, de, es, pl, fr", one_of, "en, de"
    )


# ---------------------------------------------------------------------- Flower, per person


@pytest.mark.parametrize(
    ("lang", "reason", "unbound", "own"),
    [
        ("de", "warum der SuperNode", "keinen registrierten SuperNode", "ihres eigenen Standorts"),
        ("es", "por qué se excluye", "ningún SuperNode registrado", "de su propia sede"),
        ("pl", "dlaczego SuperNode", "nie ma zarejestrowanego SuperNode", "własnego ośrodka"),
        ("fr", "pourquoi le SuperNode", "aucun SuperNode enregistré", "de son propre site"),
    ],
)
def test_supernode_and_site_list_refusals_read_in_the_readers_language(
    api, make_user, lang, reason, unbound, own
):
    site = SiteFactory(slug=f"s-{lang}")
    operator = api(make_user(roles.OPERATOR, username=f"op-{lang}"))
    url = f"/api/v1/sites/{site.slug}/supernode"
    empty = operator.delete(url, {"reason": " "}, format="json", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(_refused(empty, 400)["reason"][0], "say why the SuperNode is locked out", reason)
    none = operator.delete(url, {"reason": "retired"}, format="json", HTTP_ACCEPT_LANGUAGE=lang)
    assert none.status_code == 409
    english = f"site s-{lang} has no registered SuperNode"
    _translated(none.json()["detail"], english, unbound, f"s-{lang}")

    steward = make_user(roles.SITE_STEWARD, username=f"stew-{lang}")
    SiteSteward.objects.create(user=steward, site=SiteFactory(slug=f"own-{lang}"))
    round_ = RoundFactory(number=1)
    response = api(steward).get(
        f"/api/v1/runs/{round_.run_id}/rounds/1/allowed?site={site.slug}",
        HTTP_ACCEPT_LANGUAGE=lang,
    )
    assert response.status_code == 403
    english = "a site steward reads only its own site's allow-list"
    _translated(response.json()["detail"], english, own)


# -------------------------------------------------------------------------------- reports


@pytest.mark.parametrize(
    ("lang", "unknown", "half", "reversed_"),
    [
        ("de", "existiert nicht", "geben Sie period_start und period_end an", "Beginn enden"),
        ("es", "no existe", "indique period_start y period_end", "después de empezar"),
        ("pl", "nie istnieje", "podaj zarówno period_start, jak i period_end", "po swoim"),
        ("fr", "n'existe pas", "indiquez period_start et period_end", "après son début"),
    ],
)
def test_a_report_request_is_refused_in_the_readers_language(api, lang, unknown, half, reversed_):
    client = api(verified(UserFactory(username=f"dpo-{lang}", roles=[roles.DPO])))

    def post(body):
        response = client.post("/api/v1/reports", body, format="json", HTTP_ACCEPT_LANGUAGE=lang)
        return _refused(response, 400)

    missing = post({"run": 999999})["run"][0]
    _translated(missing, "training run 999999 does not exist", unknown, "999999")
    start = "2026-02-01T00:00:00Z"
    halved = post({"period_start": start})["period"][0]
    _translated(halved, "give both period_start and period_end", half)
    backwards = post({"period_start": start, "period_end": "2026-01-01T00:00:00Z"})
    _translated(backwards["period"][0], "the period must end after it starts", reversed_)
    assert not Report.objects.exists()


@pytest.mark.parametrize(
    ("lang", "one_of", "exactly"),
    [
        ("de", "muss einer der Werte", "genau eines von dataset oder subject"),
        ("es", "debe ser uno de", "exactamente uno de dataset o subject"),
        ("pl", "musi być jedną z wartości", "dokładnie jedno z: dataset lub subject"),
        ("fr", "doit être l'une des valeurs", "exactement l'un de dataset ou subject"),
    ],
)
def test_report_reads_refuse_bad_parameters_in_the_readers_language(api, lang, one_of, exactly):
    client = api(UserFactory(username=f"aud-{lang}", roles=[roles.AUDITOR]))
    record = client.get("/api/v1/reports/art30?view=both", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(_refused(record, 400)["view"][0], "must be one of controller, processor", one_of)
    assert "controller, processor" in record.json()["view"][0]  # the values stay codes
    lineage = client.get("/api/v1/reports/lineage", HTTP_ACCEPT_LANGUAGE=lang)
    assert lineage.status_code == 400
    english = "give exactly one of dataset or subject"
    _translated(lineage.json()["non_field_errors"][0], english, exactly)
    gone = client.get("/api/v1/reports/lineage?dataset=999999", HTTP_ACCEPT_LANGUAGE=lang)
    assert "999999" in _refused(gone, 404)["detail"]
    assert gone.json()["detail"] != "dataset 999999 does not exist"


@pytest.mark.parametrize(
    ("lang", "neither", "not_requested"),
    [
        ("de", "Nennen Sie einen Lauf oder einen Zeitraum.", "Bericht nicht angefordert"),
        ("es", "Indique una ejecución o un periodo.", "Informe no solicitado"),
        ("pl", "Wskaż przebieg lub okres.", "Raportu nie zamówiono"),
        ("fr", "Indiquez une exécution ou une période.", "Rapport non demandé"),
    ],
)
def test_the_report_admin_refuses_in_the_readers_language(lang, neither, not_requested):
    client = _admin(lang, roles.DPO)
    page = _page(client.post("/admin/reports/report/add/", {"language": lang}))
    assert neither in page and "Name a run or a period." not in page
    # Signed in without the second factor: the service refuses, the admin says so.
    plain = Client(HTTP_ACCEPT_LANGUAGE=lang)
    plain.force_login(UserFactory(username=f"plain-{lang}", is_staff=True, roles=[roles.DPO]))
    run = RunFactory()
    response = plain.post("/admin/reports/report/add/", {"run": run.pk, "language": lang})
    page = _page(response)
    assert not_requested in page and "Report not requested" not in page
    assert not Report.objects.exists()


# ---------------------------------------------------------------------------- ledger API


@pytest.mark.parametrize(
    ("lang", "tree", "unknown", "flag"),
    [
        ("de", "der Baum hat 0 Einträge", "unbekannter Abfrageparameter", "muss true oder false"),
        ("es", "el árbol tiene 0 entradas", "parámetro de consulta desconocido", "debe ser true"),
        ("pl", "liczba wpisów w drzewie: 0", "nieznany parametr zapytania", "musi mieć wartość"),
        ("fr", "l'arbre compte 0 entrées", "paramètre de requête inconnu", "doit être true"),
    ],
)
def test_the_ledger_api_refuses_in_the_readers_language(api, lang, tree, unknown, flag):
    client = api(UserFactory(username=f"aud-{lang}", roles=[roles.AUDITOR]))
    proof = client.get("/api/v1/ledger/inclusion?seq=0&size=5", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(_refused(proof, 400)["size"][0], "the tree has 0 entries", tree)
    extra = client.get("/api/v1/ledger/checkpoints/latest?x=1", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(_refused(extra, 400)["x"][0], "unknown query parameter", unknown)
    holds = client.get("/api/v1/ledger/holds?active=maybe", HTTP_ACCEPT_LANGUAGE=lang)
    _translated(
        _refused(holds, 400)["active"][0], "must be true or false, got 'maybe'", flag, "'maybe'"
    )
