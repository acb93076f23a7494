"""The event catalogue: ledger_append refuses what it does not list, docs/events.md follows it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction

from audit import events
from audit.models import LedgerEntry
from audit.services import LedgerEvent, ledger_append, ledger_append_many

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def test_append_refuses_an_event_type_the_catalogue_does_not_list(system_actor):
    with pytest.raises(events.UnknownEvent, match="not in the catalogue"), transaction.atomic():
        ledger_append(
            event_type="site.teleported",
            actor=system_actor,
            subject_type="site",
            subject_id=1,
            payload={"site_id": 1},
        )
    assert not LedgerEntry.objects.exists()


def test_append_refuses_a_payload_without_a_required_key(system_actor):
    payload = {"site_id": 1, "slug": "a"}  # reason_sha256 is missing
    with pytest.raises(events.UnknownEvent, match="reason_sha256"), transaction.atomic():
        ledger_append(
            event_type="site.suspended",
            actor=system_actor,
            subject_type="site",
            subject_id=1,
            payload=payload,
        )
    assert not LedgerEntry.objects.exists()


def test_append_accepts_a_catalogued_event_with_its_keys(system_actor):
    with transaction.atomic():
        entry = ledger_append(
            event_type="site.suspended",
            actor=system_actor,
            subject_type="site",
            subject_id=1,
            payload={"site_id": 1, "slug": "a", "reason_sha256": "0" * 64},
        )
    assert entry.seq == 0


def test_a_batch_with_one_unknown_event_writes_nothing(system_actor):
    good = LedgerEvent("test.happened", "thing", 1, {})
    bad = LedgerEvent("round.teleported", "round", 1, {})
    with pytest.raises(events.UnknownEvent), transaction.atomic():
        ledger_append_many(actor=system_actor, events=[good, bad])
    assert not LedgerEntry.objects.exists()


def test_unknown_event_is_a_value_error_so_existing_callers_keep_handling_it():
    assert issubclass(events.UnknownEvent, ValueError)


def test_every_literal_event_type_in_the_code_is_catalogued():
    """Every ``event_type="..."`` / ``LedgerEvent("...")`` literal in the apps is listed."""
    found: dict[str, str] = {}
    for folder in ("audit", "sites", "training", "opennebula", "reports", "dashboard", "fedgov"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                value = None
                if name in ("ledger_append", "_claim"):
                    value = next((k.value for k in node.keywords if k.arg == "event_type"), None)
                elif name == "LedgerEvent" and node.args:
                    value = node.args[0]
                elif name in ("_site_set_status", "_policy_write_draft"):
                    value = next((k.value for k in node.keywords if k.arg == "event"), None)
                if value is None or isinstance(value, ast.JoinedStr):
                    continue  # round.<state>: the next test covers the state machine
                for const in ast.walk(value):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        found[const.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    assert found, "the scan found no event types; it no longer matches the code"
    missing = {name: where for name, where in found.items() if name not in events.CATALOGUE}
    assert not missing


def test_every_round_state_a_transition_can_enter_is_catalogued():
    from training.choices import RoundState
    from training.statemachine import sources_of

    for state in RoundState.values:
        if sources_of(state):
            assert f"round.{state}" in events.CATALOGUE or state == RoundState.PLANNED


def test_docs_events_md_is_generated_from_the_catalogue():
    generated = subprocess.run(
        [sys.executable, "-m", "audit.events"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    checked_in = (ROOT / "docs" / "events.md").read_text()
    assert checked_in == generated, "run: python -m audit.events > docs/events.md"
    for name in events.CATALOGUE:
        if not name.startswith("test."):
            assert f"`{name}`" in checked_in


def test_the_catalogue_imports_no_django():
    code = "import sys, audit.events; print(any(m.startswith('django') for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_register_refuses_a_duplicate_type():
    with pytest.raises(ValueError, match="twice"):
        events.register(events.EventType("site.suspended", "again", required=()))
