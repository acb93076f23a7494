"""Signed checkpoints: C2SP signed-note text, Ed25519, on demand and from the beat task."""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.db import transaction

from audit import keys, merkle, note, trust
from audit.models import Checkpoint, LedgerEntry
from audit.services import checkpoint_create, checkpoint_create_if_new, ledger_append
from audit.tasks import checkpoint_if_new
from fedgov.actors import Actor
from fedgov.errors import TransitionNotAllowed

pytestmark = pytest.mark.django_db


def test_checkpoint_is_a_c2sp_signed_note_over_size_and_root(settings, append, checkpoint):
    settings.FEDGOV_LEDGER_ORIGIN = "ledger.example.eu/fedgov"
    append(5)
    cp = checkpoint()
    leaves = [bytes(e.leaf_hash) for e in LedgerEntry.objects.order_by("seq")]
    root = merkle.root(leaves)
    lines = cp.note.split("\n")
    assert lines[0] == "ledger.example.eu/fedgov"
    assert lines[1] == "6"  # five events and the key trusted on first use
    assert lines[2] == base64.b64encode(root).decode()
    assert lines[3] == "time " + cp.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert lines[4] == ""
    assert lines[5].startswith("\u2014 ledger.example.eu/fedgov ")
    assert lines[6:] == [""]
    # Key hash per the signed-note spec, recomputed here from the raw public key.
    active = keys.active_key()
    raw = note.raw_public(active.public_key)
    blob = base64.b64decode(lines[5].rsplit(" ", 1)[1])
    expected_hash = hashlib.sha256(b"ledger.example.eu/fedgov\n\x01" + raw).digest()[:4]
    assert blob[:4] == expected_hash
    body = "\n".join(lines[:4]) + "\n"
    active.public_key.verify(blob[4:], body.encode())
    assert (cp.size, bytes(cp.root), cp.key_id) == (6, root, active.key_id)
    assert note.verifier_key("ledger.example.eu/fedgov", active.public_key).startswith(
        f"ledger.example.eu/fedgov+{expected_hash.hex()}+"
    )


def test_checkpoint_at_an_unchanged_size_is_not_signed_twice(append, checkpoint):
    append(3)
    first = checkpoint()
    again = checkpoint()
    assert again.pk == first.pk
    assert Checkpoint.objects.count() == 1


def test_empty_ledger_has_nothing_to_checkpoint(checkpoint):
    with pytest.raises(TransitionNotAllowed, match="empty"):
        checkpoint()


def test_beat_task_signs_only_when_the_ledger_grew(append, system_actor):
    assert checkpoint_if_new() is None
    append(2)
    assert checkpoint_if_new() == 3  # two events and the key trusted on first use
    assert checkpoint_if_new() is None
    with transaction.atomic():
        ledger_append(
            event_type="test.happened",
            actor=system_actor,
            subject_type="thing",
            subject_id=9,
            payload={},
        )
    assert checkpoint_create_if_new(actor=system_actor).size == 4
    assert list(Checkpoint.objects.values_list("size", flat=True)) == [3, 4]


def test_checkpoints_after_rotation_are_signed_by_the_new_key(append, checkpoint):
    append(2)
    old = checkpoint()
    trust.key_rotate(actor=Actor.system("tests"), reason="yearly rotation")
    append(1, start=2)
    new = checkpoint()
    assert old.key_id != new.key_id == keys.active_key().key_id
    trusted = keys.public_keys()
    origin = old.note.split("\n", 1)[0]
    assert note.open_note(old.note, trusted, origin)[1] == old.key_id
    assert note.open_note(new.note, trusted, origin)[1] == new.key_id


def test_checkpoint_task_is_registered_with_the_house_options():
    assert checkpoint_if_new.name == "audit.checkpoint_if_new"
    assert checkpoint_if_new.acks_late is True
    assert checkpoint_if_new.soft_time_limit < checkpoint_if_new.time_limit


def test_on_demand_service_records_who_asked(append, system_actor):
    append(1)
    assert checkpoint_create(actor=system_actor).created_by == "system:tests"
