"""Retention removes old entries' contents, never their place in the tree; legal holds stop it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import integrity, keys, merkle, selectors
from audit.bundle import bundle_write
from audit.models import LedgerEntry
from audit.retention import legal_hold_place, legal_hold_release, retention_apply
from audit.services import LedgerEvent, checkpoint_create, ledger_append_many
from audit.tasks import apply_retention
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from tests.audit.test_bundle import run_verifier

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]
DPO = Actor.system("dpo-tests")
YEARS_AGO = timedelta(days=11 * 365)


@pytest.fixture
def at(monkeypatch):
    """``at(moment)`` pins fedgov's clock; ``at(None)`` lets it run again."""

    def _at(moment):
        if moment is None:
            monkeypatch.undo()
        else:
            monkeypatch.setattr("fedgov.clock.now", lambda: moment)

    return _at


def write(count: int, start: int, subject_type: str = "thing", actor: Actor = DPO) -> None:
    events = [
        LedgerEvent("test.happened", subject_type, start + i, {"n": start + i})
        for i in range(count)
    ]
    with transaction.atomic():
        ledger_append_many(actor=actor, events=events)


@pytest.fixture
def old_ledger(at):
    """Ten entries written eleven years ago and signed then; five written now, unsigned."""
    at(timezone.now() - YEARS_AGO)
    write(10, 0)
    checkpoint_create(actor=DPO)
    at(None)
    write(5, 10)


def verify() -> integrity.Report:
    return integrity.verify_ledger(keys=keys.public_keys(), origin=settings.FEDGOV_LEDGER_ORIGIN)


def test_old_signed_entries_lose_their_contents_but_keep_their_place(old_ledger):
    before = {e.seq: bytes(e.leaf_hash) for e in LedgerEntry.objects.all()}
    proof = selectors.inclusion(seq=3, size=10)

    outcome = retention_apply(actor=DPO)

    assert (outcome.redacted, outcome.first_seq, outcome.last_seq) == (10, 0, 9)
    old = LedgerEntry.objects.get(seq=3)
    assert (old.payload, old.actor_id, old.actor_repr) == ("{}", None, "")
    assert old.redacted_at is not None
    assert (old.event_type, old.subject_id) == ("test.happened", "3")
    # Seq 10 is the key trusted on first use: retention leaves key events whole.
    after = {e.seq: bytes(e.leaf_hash) for e in LedgerEntry.objects.filter(seq__lt=16)}
    assert after == before
    assert LedgerEntry.objects.get(seq=10).redacted_at is None
    assert LedgerEntry.objects.get(seq=13).payload == '{"n":12}'
    again = selectors.inclusion(seq=3, size=10)
    assert again.path == proof.path
    assert merkle.verify_inclusion(again.leaf_hash, 3, 10, again.path, again.root)
    event = LedgerEntry.objects.get(event_type="ledger.retention_applied")
    assert json.loads(event.payload) | {"cutoff": None} == {
        "retention_days": settings.FEDGOV_LEDGER_RETENTION_DAYS,
        "cutoff": None,
        "redacted": 10,
        "first_seq": 0,
        "last_seq": 9,
        "held": 0,
        "active_holds": [],
        "awaiting_checkpoint": 0,
    }
    report = verify()
    assert report.ok, report.problems
    assert report.redacted == 10


def test_ledger_verify_says_how_many_entries_were_redacted(old_ledger):
    retention_apply(actor=DPO)
    out = io.StringIO()
    call_command("ledger_verify", stdout=out)
    assert "OK: 17 entries" in out.getvalue()  # 15 events, key trusted, retention run
    assert "10 entries had their contents removed under retention" in out.getvalue()


def test_a_second_run_finds_nothing_and_writes_nothing(old_ledger):
    retention_apply(actor=DPO)
    count = LedgerEntry.objects.count()
    assert retention_apply(actor=DPO).redacted == 0
    assert LedgerEntry.objects.count() == count


def test_a_dry_run_changes_nothing(old_ledger):
    outcome = retention_apply(actor=DPO, dry_run=True)
    assert outcome.redacted == 10
    assert not LedgerEntry.objects.filter(redacted_at__isnull=False).exists()
    assert not LedgerEntry.objects.filter(event_type="ledger.retention_applied").exists()


def test_old_entries_no_checkpoint_covers_wait_for_one(at):
    at(timezone.now() - YEARS_AGO)
    write(4, 0)
    checkpoint_create(actor=DPO)
    write(3, 4)  # old, but signed by no checkpoint yet
    at(None)
    outcome = retention_apply(actor=DPO)
    assert (outcome.redacted, outcome.awaiting_checkpoint) == (4, 3)
    assert not LedgerEntry.objects.filter(seq__gte=4, redacted_at__isnull=False).exists()


def test_a_hold_on_the_whole_ledger_stops_retention_until_released(old_ledger):
    hold = legal_hold_place(actor=DPO, reference="CASE-17", reason="court order 17/2026")
    outcome = retention_apply(actor=DPO)
    assert (outcome.redacted, outcome.held, outcome.active_holds) == (0, 10, 1)
    legal_hold_release(actor=DPO, hold=hold, reason="case closed")
    assert retention_apply(actor=DPO).redacted == 10
    types = list(
        LedgerEntry.objects.filter(event_type__startswith="legal_hold.").values_list(
            "event_type", flat=True
        )
    )
    assert types == ["legal_hold.placed", "legal_hold.released"]


def test_a_hold_on_one_subject_keeps_only_that_subject(old_ledger):
    legal_hold_place(
        actor=DPO, reference="DSAR-4", reason="access request", subject_type="thing", subject_id=4
    )
    outcome = retention_apply(actor=DPO)
    assert (outcome.redacted, outcome.held) == (9, 1)
    assert LedgerEntry.objects.get(seq=4).redacted_at is None


def test_a_hold_on_a_period_keeps_the_entries_written_in_it(at):
    began = timezone.now() - YEARS_AGO
    at(began)
    write(3, 0)
    at(began + timedelta(days=30))
    write(3, 3)
    checkpoint_create(actor=DPO)
    at(None)
    legal_hold_place(
        actor=DPO,
        reference="AUDIT-2015",
        reason="regulator's audit of that month",
        held_from=began + timedelta(days=20),
        held_until=began + timedelta(days=40),
    )
    assert retention_apply(actor=DPO).redacted == 3
    kept = LedgerEntry.objects.filter(seq__lt=6, redacted_at__isnull=True)
    assert list(kept.values_list("seq", flat=True)) == [3, 4, 5]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"reference": "", "reason": "x"}, "reference"),
        ({"reference": "C", "reason": "  "}, "reason"),
        ({"reference": "C", "reason": "x", "subject_type": "dataset"}, "subject_id"),
        ({"reference": "C", "reason": "x", "subject_id": "3"}, "subject_type"),
        ({"reference": "C" * 65, "reason": "x"}, "reference"),
    ],
)
def test_a_bad_hold_is_refused_naming_the_field_and_writes_nothing(fields, field):
    with pytest.raises(InvalidInput) as caught:
        legal_hold_place(actor=DPO, **fields)
    assert field in caught.value.errors
    assert not LedgerEntry.objects.exists()


def test_a_hold_period_ending_before_it_starts_is_refused():
    now = timezone.now()
    with pytest.raises(InvalidInput) as caught:
        legal_hold_place(
            actor=DPO, reference="C", reason="x", held_from=now, held_until=now - timedelta(1)
        )
    assert "held_until" in caught.value.errors


def test_a_hold_is_released_once():
    hold = legal_hold_place(actor=DPO, reference="C", reason="x")
    legal_hold_release(actor=DPO, hold=hold, reason="done")
    with pytest.raises(TransitionNotAllowed, match="was released"):
        legal_hold_release(actor=DPO, hold=hold, reason="again")
    with pytest.raises(InvalidInput):
        legal_hold_release(actor=DPO, hold=hold, reason="")


def test_the_hold_reason_is_hashed_in_the_ledger_not_copied(old_ledger):
    legal_hold_place(actor=DPO, reference="CASE-9", reason="claim by Ana Lopez")
    entry = LedgerEntry.objects.get(event_type="legal_hold.placed")
    assert "Ana" not in entry.payload and "CASE-9" not in entry.payload


def test_the_triggers_refuse_any_other_change_and_a_redaction_no_checkpoint_covers(
    old_ledger,
):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_ledgerentry SET payload = '{}' WHERE seq = 2")
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(seq=12).update(
            payload="{}", actor_id=None, actor_repr="", redacted_at=timezone.now()
        )
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(seq=2).update(
            payload="{}", actor_id=None, actor_repr="x", redacted_at=timezone.now()
        )


def test_verification_names_contents_removed_before_six_months(at):
    write(5, 0)
    checkpoint_create(actor=DPO)
    # The shape the triggers admit, but done by hand on a young entry.
    LedgerEntry.objects.filter(seq=2).update(
        payload="{}", actor_id=None, actor_repr="", redacted_at=timezone.now()
    )
    report = verify()
    assert str(report.problems[0]) == (
        "seq 2: entry's contents were removed less than 183 days after it was written, "
        "before the minimum retention"
    )


def test_an_exported_bundle_with_redacted_entries_verifies_offline(old_ledger, tmp_path):
    retention_apply(actor=DPO)
    bundle_write(first_seq=0, last_seq=14, out=tmp_path / "b")
    lines = (tmp_path / "b" / "entries.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["redacted"] is True and "payload" not in first and "actor" not in first
    result = run_verifier(str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    assert "10 of them had their contents removed under retention" in result.stdout


def test_the_beat_task_and_the_command_apply_retention(old_ledger):
    out = io.StringIO()
    call_command("ledger_retention", "--dry-run", stdout=out)
    assert "would redact 10 entries (seq 0..9)" in out.getvalue()
    assert apply_retention() == 10
    out = io.StringIO()
    call_command("ledger_retention", stdout=out)
    assert "redacted 0 entries" in out.getvalue()


def test_a_retention_below_six_months_is_refused_at_start_up():
    env = {**os.environ, "FEDGOV_LEDGER_RETENTION_DAYS": "90", "DJANGO_SETTINGS_MODULE": ""}
    env["DJANGO_SETTINGS_MODULE"] = "fedgov.settings"
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FEDGOV_LEDGER_RETENTION_DAYS=90 is below the AI Act's six-month minimum" in (
        result.stderr
    )
