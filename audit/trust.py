"""The explicit list of trusted public keys: services that change it, reads that use it.

A key is trusted only by a row of ``TrustedKey`` written here, never by a file appearing
in ``FEDGOV_KEY_DIR``: someone who can write that folder could otherwise make fedgov (and
``ledger_verify``) accept checkpoints they signed. Each change is a ledger event in the
same transaction (``audit.key_trusted``, ``audit.key_ended``), so the list can be replayed
from the signed, witnessed ledger and a row written behind these services is found
(:func:`list_problems`).

A signature counts only when its stated time lies in the key's window: from
``valid_from`` (inclusive, whole seconds, the resolution of a checkpoint's time) to
``valid_to`` (exclusive). Rotation ends the old key's window where the new one's starts;
revocation ends it at the moment the key is known to be compromised.

Bootstrap: a ledger that never trusted a log key trusts its active key on the first
checkpoint ("trust on first use"), as a ledger event like any other. Once any log key
has been trusted, an unlisted active key signs nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import transaction

from audit import keys
from audit.choices import KeyRole
from audit.leaf import format_time
from audit.models import LedgerEntry, TrustedKey
from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed

EVENT_TRUSTED = "audit.key_trusted"
EVENT_ENDED = "audit.key_ended"
SUBJECT = "trusted_key"
FIRST_USE_REASON = "first signing key of this ledger, trusted on first use"


@dataclass(frozen=True)
class TrustedKeyView:
    key_id: str
    role: str
    name: str
    public_key: Ed25519PublicKey
    valid_from: datetime
    valid_to: datetime | None
    reason: str
    end_reason: str

    def valid_at(self, moment: datetime) -> bool:
        return self.valid_from <= moment and (self.valid_to is None or moment < self.valid_to)


def _view(row: TrustedKey) -> TrustedKeyView:
    return TrustedKeyView(
        key_id=row.key_id,
        role=row.role,
        name=row.name,
        public_key=Ed25519PublicKey.from_public_bytes(bytes(row.public_key)),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        reason=row.reason,
        end_reason=row.end_reason,
    )


def trusted(role: str = KeyRole.LOG) -> list[TrustedKeyView]:
    """Every key ever trusted for ``role``, ended or not, oldest first."""
    return [_view(row) for row in TrustedKey.objects.filter(role=role).order_by("valid_from")]


def public_keys(role: str = KeyRole.LOG) -> dict[str, Ed25519PublicKey]:
    return {view.key_id: view.public_key for view in trusted(role)}


def windows(role: str = KeyRole.LOG) -> dict[str, tuple[datetime, datetime | None]]:
    return {view.key_id: (view.valid_from, view.valid_to) for view in trusted(role)}


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a change to the trusted keys needs a reason", field="reason")
    if len(reason) > 1000:
        raise InvalidInput("reason is over 1000 characters", field="reason")
    return reason


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _trust(
    *,
    actor: Actor,
    role: str,
    name: str,
    public_key: Ed25519PublicKey,
    reason: str,
    since: datetime,
) -> TrustedKey:
    key_id = keys.key_id_of(public_key)
    if role not in KeyRole.values:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(KeyRole.values)}", "role")
    if not name or not name.isprintable() or " " in name or "+" in name or len(name) > 255:
        # C2SP signed-note: a key name is non-empty and holds no spaces or plus signs.
        raise InvalidInput(f"key name {name!r} is empty, too long or holds a space or '+'", "name")
    if TrustedKey.objects.filter(key_id=key_id).exists():
        raise InvalidInput(f"key {key_id} is already in the trusted list", field="public_key")
    row = TrustedKey.objects.create(
        key_id=key_id,
        role=role,
        name=name,
        public_key=keys.raw_public_bytes(public_key),
        valid_from=_second(since),
        reason=reason,
        added_by=actor.label,
    )
    ledger_append(
        event_type=EVENT_TRUSTED,
        actor=actor,
        subject_type=SUBJECT,
        subject_id=key_id,
        payload={
            "key_id": key_id,
            "role": role,
            "name": name,
            "public_key": base64.b64encode(bytes(row.public_key)).decode(),
            "valid_from": format_time(row.valid_from),
            "reason": reason,
        },
    )
    return row


def key_trust(
    *,
    actor: Actor,
    role: str,
    name: str,
    public_key: Ed25519PublicKey,
    reason: str,
    valid_from: datetime | None = None,
) -> TrustedKey:
    """Add ``public_key`` to the trusted list for ``role`` under note key ``name``.

    Raises ``InvalidInput`` for an empty reason, a bad role or name, or a key already
    listed. Writes ``audit.key_trusted``.
    """
    reason = _reason(reason)
    with transaction.atomic(durable=True):
        return _trust(
            actor=actor,
            role=role,
            name=name,
            public_key=public_key,
            reason=reason,
            since=valid_from or clock.now(),
        )


def _end(*, actor: Actor, key_id: str, reason: str, at: datetime, revoked: bool) -> TrustedKey:
    row = TrustedKey.objects.select_for_update().filter(key_id=key_id).first()
    if row is None:
        raise InvalidInput(f"key {key_id} is not in the trusted list", field="key_id")
    if row.valid_to is not None and row.valid_to <= at:
        raise TransitionNotAllowed(f"key {key_id} already ended at {format_time(row.valid_to)}")
    if at < row.valid_from:
        raise InvalidInput(
            f"key {key_id} is valid from {format_time(row.valid_from)}; it cannot end before",
            field="since",
        )
    row.valid_to = at
    row.end_reason = reason
    row.save(update_fields=["valid_to", "end_reason"])
    ledger_append(
        event_type=EVENT_ENDED,
        actor=actor,
        subject_type=SUBJECT,
        subject_id=key_id,
        payload={
            "key_id": key_id,
            "valid_to": format_time(at),
            "reason": reason,
            "revoked": revoked,
        },
    )
    return row


def key_revoke(
    *, actor: Actor, key_id: str, reason: str, since: datetime | None = None
) -> TrustedKey:
    """End trust in a compromised key from ``since`` (default now): signatures it states
    at or after that moment count for nothing. Revoking the active log key stops
    checkpoints until ``key_rotate``. Raises ``InvalidInput`` / ``TransitionNotAllowed``.
    Writes ``audit.key_ended`` with ``revoked: true``."""
    reason = _reason(reason)
    with transaction.atomic(durable=True):
        return _end(
            actor=actor, key_id=key_id, reason=reason, at=since or clock.now(), revoked=True
        )


def key_rotate(*, actor: Actor, reason: str) -> keys.SigningKey:
    """Make a new signing key, trust it from now and end the old active key's window now.

    The new key file is written first; if the transaction fails it trusts nothing. Raises
    ``ImproperlyConfigured`` with ``FEDGOV_SIGNING_KEY_FILE`` (replace that file, then
    ``key_trust_active``). Writes ``audit.key_trusted`` and ``audit.key_ended``.
    """
    reason = _reason(reason)
    old = keys.active_key()
    new = keys.rotate()
    with transaction.atomic(durable=True):
        # Not rounded: the new key is valid from the start of this second (a checkpoint's
        # time resolution), the old one until this very moment, so a checkpoint the old
        # key signed earlier in this second stays inside its window.
        now = clock.now()
        _trust(
            actor=actor,
            role=KeyRole.LOG,
            name=_log_name(),
            public_key=new.public_key,
            reason=reason,
            since=now,
        )
        listed = TrustedKey.objects.filter(key_id=old.key_id, valid_to__isnull=True).exists()
        if listed:
            _end(actor=actor, key_id=old.key_id, reason=reason, at=now, revoked=False)
    return new


def key_trust_active(*, actor: Actor, reason: str) -> TrustedKey:
    """Trust the active signing key (e.g. after replacing ``FEDGOV_SIGNING_KEY_FILE``)."""
    reason = _reason(reason)
    key = keys.active_key()
    with transaction.atomic(durable=True):
        return _trust(
            actor=actor,
            role=KeyRole.LOG,
            name=_log_name(),
            public_key=key.public_key,
            reason=reason,
            since=clock.now(),
        )


def _log_name() -> str:
    from django.conf import settings

    return settings.FEDGOV_LEDGER_ORIGIN


def signing_key() -> tuple[keys.SigningKey, bool]:
    """The active key and whether it is to be trusted on first use now.

    Call inside the checkpoint's transaction. Returns ``(key, False)`` when the trusted
    list says the key may sign now, ``(key, True)`` when the ledger never trusted any log
    key (then :func:`trust_first_use` must run in the same transaction). Raises
    ``TransitionNotAllowed`` for a key that is not listed or whose window is closed.
    """
    key = keys.active_key()
    row = TrustedKey.objects.filter(key_id=key.key_id, role=KeyRole.LOG).first()
    if row is not None:
        # The exact moment, not the second a checkpoint states: a key revoked a moment
        # ago signs nothing more, not even within the same second.
        if _view(row).valid_at(clock.now()):
            return key, False
        raise TransitionNotAllowed(
            f"the active signing key {key.key_id} is not valid now (trusted until "
            f"{format_time(row.valid_to) if row.valid_to else '?'}: {row.end_reason}); "
            "rotate it with `manage.py ledger_key rotate`"
        )
    never = not TrustedKey.objects.filter(role=KeyRole.LOG).exists()
    # Payloads are canonical JSON (sorted keys, no spaces): the role reads exactly so.
    log_events = LedgerEntry.objects.filter(
        event_type=EVENT_TRUSTED, payload__contains=f'"role":"{KeyRole.LOG.value}"'
    )
    if never and not log_events.exists():
        return key, True
    raise TransitionNotAllowed(
        f"the active signing key {key.key_id} is not in the trusted list: a key file in "
        "the key folder trusts nothing; rotate with `manage.py ledger_key rotate` or trust "
        "it with `manage.py ledger_key trust-active`"
    )


def trust_first_use(*, actor: Actor, key: keys.SigningKey) -> TrustedKey:
    """Trust the ledger's first signing key, valid since the ledger's first entry.

    Runs inside the checkpoint's transaction, after the ledger verified. Writes
    ``audit.key_trusted``.
    """
    now = clock.now()
    first = LedgerEntry.objects.order_by("seq").values_list("created_at", flat=True).first()
    return _trust(
        actor=actor,
        role=KeyRole.LOG,
        name=_log_name(),
        public_key=key.public_key,
        reason=FIRST_USE_REASON,
        since=min(first or now, now),
    )


def list_problems() -> list[str]:
    """Differences between the trusted-key rows and the replay of their ledger events."""
    replayed: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    events = LedgerEntry.objects.filter(event_type__in=[EVENT_TRUSTED, EVENT_ENDED]).order_by("seq")
    for entry in events.only("seq", "event_type", "payload", "redacted_at"):
        if entry.redacted_at is not None:
            problems.append(
                f"key event at seq {entry.seq} was redacted: the list cannot be replayed"
            )
            continue
        body = json.loads(entry.payload)
        key_id = body.get("key_id")
        if entry.event_type == EVENT_TRUSTED:
            try:
                raw = base64.b64decode(body["public_key"], validate=True)
            except (KeyError, binascii.Error):
                problems.append(f"key event at seq {entry.seq} holds no valid public key")
                continue
            replayed[key_id] = {
                "role": body.get("role"),
                "name": body.get("name"),
                "public_key": raw,
                "valid_from": body.get("valid_from"),
                "valid_to": None,
            }
        elif key_id in replayed:
            replayed[key_id]["valid_to"] = body.get("valid_to")
        else:
            problems.append(f"key event at seq {entry.seq} ends key {key_id}, never trusted")
    rows = {row.key_id: row for row in TrustedKey.objects.all()}
    for key_id in sorted(rows.keys() - replayed.keys()):
        problems.append(
            f"trusted key {key_id} has no audit.key_trusted event in the ledger: "
            "it was added behind fedgov's services"
        )
    for key_id in sorted(replayed.keys() - rows.keys()):
        problems.append(f"key {key_id} was trusted in the ledger but its row is gone")
    for key_id in sorted(rows.keys() & replayed.keys()):
        row, want = rows[key_id], replayed[key_id]
        have = {
            "role": row.role,
            "name": row.name,
            "public_key": bytes(row.public_key),
            "valid_from": format_time(row.valid_from),
            "valid_to": format_time(row.valid_to) if row.valid_to else None,
        }
        changed = sorted(field for field in want if want[field] != have[field])
        if changed:
            problems.append(
                f"trusted key {key_id}: {', '.join(changed)} differ from its ledger events"
            )
    return problems
