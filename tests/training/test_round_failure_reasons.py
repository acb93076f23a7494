"""Failure, recovery and workload-step reasons are codes too (issue 19): stored with the
English text they always had, rendered in the reader's language in admin and API.

Real oned stand-in zones and real services, as in test_orchestrate and test_recovery.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import translation

from audit.models import LedgerEntry
from fedgov import roles
from tests.factories import UserFactory, login_verified
from tests.opennebula.conftest import one_settings, standin  # noqa: F401
from tests.training.test_orchestrate import ACTOR, federation  # noqa: F401
from tests.training.test_recovery import owner_record
from tests.training.test_round_progress import LIMIT, at, running  # noqa: F401
from training.choices import RoundState
from training.gate.messages import TEMPLATES, render, template_for
from training.models import Round
from training.reasons import round_reason_in
from training.services.orchestrate import round_advance, round_drive, round_start
from training.services.recovery import runs_recover_abandoned

pytestmark = pytest.mark.django_db
S = RoundState
LANGUAGES = ("de", "es", "pl", "fr")
NEW_CODES = [
    "round.no_ticket",
    "round.ticket_expired",
    "round.no_progress",
    "round.updates_no_aggregate",
    "round.no_update",
    "round.aggregated",
    "round.owner_killed",
    *(c for c in TEMPLATES if c.startswith("round.was")),
    "placement.no_country",
    "placement.cannot_provision",
]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("code", NEW_CODES)
def test_every_failure_and_recovery_reason_is_translated(code, lang):
    params = {"count": 2}  # picks a plural template's form; ignored by the others
    english = template_for(code, params)
    with translation.override(lang):
        assert template_for(code, params, translation.gettext, translation.ngettext) != english


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("de", "kein Fortschritt seit 900 s (Grenze 300 s): es wurde keine Aktualisierung"),
        ("es", "sin avance durante 900 s (límite 300 s): no se registró ninguna"),
        ("pl", "brak postępu od 900 s (limit 300 s): nie zarejestrowano żadnej"),
        ("fr", "aucune progression depuis 900 s (limite 300 s) : aucune mise à jour"),
    ],
)
def test_a_round_without_progress_fails_with_a_code_each_reader_reads(
    running,  # noqa: F811
    monkeypatch,
    lang,
    text,
):
    at(monkeypatch, running.updated_at + timedelta(seconds=LIMIT + 600))
    with translation.override("pl"):  # the worker's language never reaches the row
        round_advance(actor=ACTOR, round_id=running.pk)
    round_ = Round.objects.get(pk=running.pk)
    english = "no progress for 900 s (limit 300 s): no update was recorded"
    assert round_.state == S.FAILED
    assert round_.state_reason == english
    assert round_.state_reason_code == "round.no_progress"
    assert round_.state_reason_params == {
        "idle": 900,
        "limit": LIMIT,
        "found": {"code": "round.no_update", "params": {}},
    }
    entry = LedgerEntry.objects.filter(event_type="round.failed").latest("seq")
    assert json.loads(entry.payload)["reason"] == english  # the ledger: English, no code
    assert text in round_reason_in(lang, round_)
    assert "no update" not in round_reason_in(lang, round_)


def test_an_aggregated_round_says_so_in_the_readers_language():
    round_ = Round(
        state_reason="3 site updates aggregated",
        state_reason_code="round.aggregated",
        state_reason_params={"count": 3},
    )
    assert render({"code": "round.aggregated", "params": {"count": 3}}) == round_.state_reason
    assert round_reason_in("pl", round_) == "zagregowano 3 aktualizacje ośrodków"
    assert round_reason_in("de", round_) == "3 Aktualisierungen von Standorten aggregiert"


def test_recovery_fails_a_running_round_with_a_code(federation, standin, tmp_path):  # noqa: F811
    run, _sites = federation(num_rounds=1)
    round_ = round_drive(actor=ACTOR, round_id=round_start(actor=ACTOR, run=run, round_no=1).pk)
    assert round_.state == S.RUNNING
    owner_record(tmp_path, run)

    runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate")

    round_.refresh_from_db()
    assert round_.state == S.FAILED
    assert round_.state_reason == (
        "manage.py federate (process 999999999) driving it was killed; it was running"
    )
    assert round_.state_reason_code == "round.owner_killed"
    assert round_.state_reason_params["pid"] == "999999999"
    assert round_reason_in("de", round_) == (
        "manage.py federate (Prozess 999999999), das sie steuerte, wurde beendet; sie lief"
    )
    assert round_reason_in("pl", round_).endswith("został zabity; była w toku")


def test_recovery_aborts_a_round_awaiting_approval_with_a_code(
    federation,  # noqa: F811
    standin,  # noqa: F811
    tmp_path,
):
    run, _sites = federation(num_rounds=1, requires_approval=True)
    round_ = round_drive(actor=ACTOR, round_id=round_start(actor=ACTOR, run=run, round_no=1).pk)
    assert round_.state == S.AWAITING_APPROVAL
    owner_record(tmp_path, run)

    runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate")

    round_.refresh_from_db()
    assert round_.state == S.ABORTED
    assert round_.state_reason_code == "round.aborted_by"
    assert round_.state_reason.endswith("killed; it was awaiting approval")
    assert round_reason_in("es", round_).endswith("fue terminado; estaba pendiente de aprobación")
    assert round_reason_in("fr", round_).endswith("a été tué ; il attendait une validation")


@pytest.mark.parametrize(
    ("lang", "text"),
    [("de", "wurde beendet; sie lief"), ("pl", "został zabity; była w toku")],
)
def test_admin_shows_the_recovery_reason_in_the_readers_language(
    federation,  # noqa: F811
    standin,  # noqa: F811
    tmp_path,
    lang,
    text,
):
    run, _sites = federation(num_rounds=1)
    round_ = round_drive(actor=ACTOR, round_id=round_start(actor=ACTOR, run=run, round_no=1).pk)
    owner_record(tmp_path, run)
    runs_recover_abandoned(actor=ACTOR, root=tmp_path / "federate")
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    login_verified(client, UserFactory(username=f"rf-{lang}", is_staff=True, roles=[roles.DPO]))
    for url in (f"/admin/training/round/{round_.pk}/change/", "/admin/training/round/"):
        html = client.get(url).content.decode()
        assert text in html, url
        assert "it was running" not in html, url
