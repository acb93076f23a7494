"""Writes to the ledger. ``ledger_append`` is the one entry point every service uses."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
from django.conf import settings
from django.db import connection, transaction

from audit import events, merkle, note, presign
from audit.leaf import actor_pseudonym, format_time, leaf_document
from audit.models import Checkpoint, LedgerEntry, SubtreeHash, TreeHead
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import TransitionNotAllowed

logger = logging.getLogger(__name__)

EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
SUBJECT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")
MAX_PAYLOAD_BYTES = 64 * 1024
# Ledger payloads hold ids, hashes and pseudonyms; an e-mail address is the commonest slip.
# Bounded by RFC 5321's part lengths: unbounded runs made a long string without an "@"
# take quadratic time (38 s for 64 KiB of one letter).
_EMAIL = re.compile(r"[^@\s\"]{1,64}@[^@\s\"]{1,253}\.[A-Za-z]{2,63}")


@dataclass(frozen=True)
class LedgerEvent:
    """One event of a batch for :func:`ledger_append_many`."""

    event_type: str
    subject_type: str
    subject_id: str | int
    payload: Mapping[str, Any]


_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """True when Python's C JSON encoder writes ``value`` exactly as RFC 8785 does.

    That holds for dicts with ASCII keys (their code-point order is RFC 8785's UTF-16
    order), lists, strings, booleans, None and integers within ±(2**53 - 1). Floats
    (ECMAScript number formatting), tuples and anything else go to ``rfc8785``.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON. Raises ``ValueError`` for what JSON cannot say (NaN, sets)."""
    try:
        return canonical_bytes(payload)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ValueError(f"ledger payload is not canonical-JSON serialisable: {exc}") from exc


def canonical_bytes(value: Any) -> bytes:
    """The bytes ``rfc8785.dumps(value)`` writes, and its errors, written faster.

    Each subtree that ``_plain`` accepts goes through Python's C JSON encoder (~10x
    faster than rfc8785's pure-Python writer; identical bytes for those types). A dict
    with ASCII keys or a list that holds something else (a float, which needs ECMAScript
    number formatting) is assembled here around its children; any other value goes to
    ``rfc8785`` whole. tests/audit/test_canonical.py checks it byte for byte against
    ``rfc8785`` on random values, tests/training/test_gate_property.py on gate snapshots.
    """
    if _plain(value):
        try:
            return json.dumps(
                value, ensure_ascii=False, sort_keys=True, separators=(",", ":")
            ).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let rfc8785 refuse it with its own message
    kind = type(value)
    if kind is dict and all(type(k) is str and k.isascii() for k in value):
        # ASCII keys: code-point order is RFC 8785's UTF-16 code-unit order (section 3.2.3).
        return (
            b"{"
            + b",".join(
                json.dumps(key, ensure_ascii=False).encode("utf-8")
                + b":"
                + canonical_bytes(value[key])
                for key in sorted(value)
            )
            + b"}"
        )
    if kind is list:
        return b"[" + b",".join(canonical_bytes(item) for item in value) + b"]"
    return rfc8785.dumps(value)


def _personal_data_paths(value: Any, path: str = "payload") -> list[str]:
    if isinstance(value, str):
        return [path] if _EMAIL.search(value) else []
    if isinstance(value, Mapping):
        found = []
        for key, item in value.items():
            found += _personal_data_paths(key, f"{path} key") + _personal_data_paths(
                item, f"{path}.{key}"
            )
        return found
    if isinstance(value, list | tuple):
        return [
            p for i, item in enumerate(value) for p in _personal_data_paths(item, f"{path}[{i}]")
        ]
    return []


def _checked_text(name: str, value: str, pattern: re.Pattern[str] | None) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ValueError(f"ledger {name} must be 1 to 64 characters, got {value!r}")
    if pattern is not None and not pattern.fullmatch(value):
        raise ValueError(f"ledger {name} {value!r} does not match {pattern.pattern}")
    if not value.isprintable():
        raise ValueError(f"ledger {name} {value!r} holds control characters")
    return value


def _prepare(event: LedgerEvent) -> tuple[str, str, str, str]:
    event_type = _checked_text("event_type", event.event_type, EVENT_TYPE)
    subject_type = _checked_text("subject_type", event.subject_type, SUBJECT_TYPE)
    subject_id = _checked_text("subject_id", str(event.subject_id), None)
    if not isinstance(event.payload, Mapping):
        raise ValueError("ledger payload must be a JSON object (a mapping)")
    events.check(event_type, event.payload)
    body = canonical_json(event.payload)
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"ledger payload is {len(body)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    text = body.decode("utf-8")
    # One scan of the serialised text, only when it has an "@"; the walk that names the
    # place runs only on a hit.
    if "@" in text and _EMAIL.search(text):
        leaks = _personal_data_paths(event.payload) or ["payload"]
        raise ValueError(
            f"ledger payloads hold no raw personal data; e-mail address at {', '.join(leaks)}"
        )
    return event_type, subject_type, subject_id, text


def _lock_head() -> TreeHead:
    """Lock the tree head for this transaction; create it on a fresh (or flushed) database."""
    head = TreeHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        # Two first writers may race here: one insert wins, the other is ignored.
        TreeHead.objects.bulk_create([TreeHead(pk=1)], ignore_conflicts=True)
        head = TreeHead.objects.select_for_update().get(pk=1)
    return head


def _frontier(head: TreeHead) -> tuple[list[bytes], list[int]]:
    raw = bytes(head.frontier)
    hashes = [raw[i : i + 32] for i in range(0, len(raw), 32)]
    levels = [bit for bit in range(head.size.bit_length() - 1, -1, -1) if head.size >> bit & 1]
    if len(hashes) != len(levels):
        raise RuntimeError("the tree head's frontier does not match its size; run ledger_verify")
    return hashes, levels


def _append(actor: Actor, events: Sequence[LedgerEvent]) -> list[LedgerEntry]:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger_append must run inside the transaction of its change")
    if not isinstance(actor, Actor) or not actor.label:
        raise TypeError("ledger_append needs a fedgov.actors.Actor")
    prepared = [_prepare(event) for event in events]
    head = _lock_head()
    hashes, levels = _frontier(head)
    pseudonym = actor_pseudonym(actor.user_id, actor.label)
    if not pseudonym.isprintable() or len(actor.label) > 150:
        # The database's leaf expression escapes only '"' and '\\', like RFC 8785 for
        # printable text: a control character would make its leaf differ from ours.
        raise ValueError(f"ledger actor {actor.label!r} holds control characters or is too long")
    # One timestamp per batch, read under the lock so time never runs backwards along seq.
    now = clock.now()
    stamp = format_time(now)
    entries: list[LedgerEntry] = []
    nodes: list[SubtreeHash] = []
    seq = head.size
    for event_type, subject_type, subject_id, body in prepared:
        leaf = leaf_document(
            seq=seq,
            event_type=event_type,
            actor=pseudonym,
            subject_type=subject_type,
            subject_id=subject_id,
            time=stamp,
            payload=body,
        )
        digest = hashlib.sha256(b"\x00" + leaf).digest()
        entries.append(
            LedgerEntry(
                seq=seq,
                event_type=event_type,
                actor_id=actor.user_id,
                actor_repr=actor.label,
                subject_type=subject_type,
                subject_id=subject_id,
                created_at=now,
                payload=body,
                leaf_hash=digest,
            )
        )
        level, current = 0, digest
        while levels and levels[-1] == level:
            levels.pop()
            current = merkle.node_hash(hashes.pop(), current)
            level += 1
            nodes.append(SubtreeHash(level=level, idx=seq >> level, hash=current))
        hashes.append(current)
        levels.append(level)
        seq += 1
    _insert(entries, nodes, now)
    TreeHead.objects.filter(pk=1).update(size=seq, frontier=b"".join(hashes))
    return entries


_INSERT_ENTRY = (
    "INSERT INTO audit_ledgerentry (seq, event_type, actor_id, actor_repr, subject_type, "
    "subject_id, created_at, payload, leaf_hash) VALUES "
)
_INSERT_NODE = "INSERT INTO audit_subtreehash (level, idx, hash) VALUES "
# Rows per INSERT statement: 9 parameters each stays under SQLite's oldest limit of 999.
_ROWS_PER_STATEMENT = 100


def _insert_rows(cursor: Any, head: str, rows: list[tuple[Any, ...]]) -> None:
    for lo in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[lo : lo + _ROWS_PER_STATEMENT]
        marks = "(" + ", ".join(["%s"] * len(chunk[0])) + ")"
        cursor.execute(
            head + ", ".join([marks] * len(chunk)), [value for row in chunk for value in row]
        )


_COPY_ENTRY = (
    "COPY audit_ledgerentry (seq, event_type, actor_id, actor_repr, subject_type, "
    "subject_id, created_at, payload, leaf_hash) FROM STDIN"
)
_COPY_NODE = "COPY audit_subtreehash (level, idx, hash) FROM STDIN"
# From this many rows COPY beats a multi-row INSERT on PostgreSQL.
_COPY_FROM = 8


def _copy_rows(cursor: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
    with cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _insert(entries: list[LedgerEntry], nodes: list[SubtreeHash], now: datetime) -> None:
    """Insert the rows with multi-row INSERTs of fixed columns, or COPY for a batch on
    PostgreSQL: the ORM's per-field preparation in bulk_create costs more than
    everything else an append does."""
    stamp = LedgerEntry._meta.get_field("created_at").get_db_prep_save(now, connection)
    entry_rows = [
        (
            e.seq,
            e.event_type,
            e.actor_id,
            e.actor_repr,
            e.subject_type,
            e.subject_id,
            stamp,
            e.payload,
            e.leaf_hash,
        )
        for e in entries
    ]
    node_rows = [(n.level, n.idx, n.hash) for n in nodes]
    copy = connection.vendor == "postgresql" and len(entry_rows) >= _COPY_FROM
    with connection.cursor() as cursor:
        if copy:
            _copy_rows(cursor, _COPY_ENTRY, entry_rows)
            if node_rows:
                _copy_rows(cursor, _COPY_NODE, node_rows)
        else:
            _insert_rows(cursor, _INSERT_ENTRY, entry_rows)
            if node_rows:
                _insert_rows(cursor, _INSERT_NODE, node_rows)
    for row in (*entries, *nodes):
        row._state.adding = False
        row._state.db = connection.alias


def ledger_append(
    *,
    event_type: str,
    actor: Actor,
    subject_type: str,
    subject_id: str | int,
    payload: dict[str, Any],
) -> LedgerEntry:
    """Append one event in the caller's transaction and return it.

    Must run inside ``transaction.atomic``: the event commits or rolls back with the
    change it records; the tree head's row lock orders concurrent writers. Raises
    ``RuntimeError`` outside a transaction and ``ValueError`` for a malformed event type,
    subject, a payload that is not canonical JSON, over 64 KiB, or holds an e-mail address;
    ``events.UnknownEvent`` (a ``ValueError``) for an event type not in the catalogue
    (``audit/events.py``) or a payload without one of its required keys.
    """
    return _append(actor, [LedgerEvent(event_type, subject_type, subject_id, payload)])[0]


def ledger_append_many(*, actor: Actor, events: Sequence[LedgerEvent]) -> list[LedgerEntry]:
    """Append a batch of events by one actor in the caller's transaction: one leaf each.

    Same rules and errors as :func:`ledger_append`; all or none are written.
    """
    if not events:
        return []
    return _append(actor, list(events))


def checkpoint_create(*, actor: Actor) -> Checkpoint:
    """Sign a checkpoint of the ledger as it stands, or return the one already at this size.

    Signs only what it has verified first (``audit.presign``): every entry since the last
    signed checkpoint rebuilt from its row, every subtree hash completed since, and
    consistency with that checkpoint. Raises ``presign.UnverifiedLedger`` (a
    ``TransitionNotAllowed``) naming where the ledger does not verify, and
    ``TransitionNotAllowed`` when the ledger is empty or the active key is not trusted
    now (``audit.trust``). Writes no ledger event about the checkpoint: it is itself the
    evidence, and an event about it would grow the tree it signs. The first checkpoint of
    a ledger that never trusted a key writes ``audit.key_trusted`` (trust on first use).
    """
    from audit import trust  # trust appends through this module

    with transaction.atomic(durable=True):
        # Locked while verifying and signing, so the tree signed is the tree verified.
        head = TreeHead.objects.select_for_update().filter(pk=1).first()
        if head is None or head.size == 0:
            raise TransitionNotAllowed("the ledger is empty: there is nothing to checkpoint")
        origin = settings.FEDGOV_LEDGER_ORIGIN
        key, first_use = trust.signing_key()
        if first_use:
            # No key was ever trusted: checkpoints already stored (from before the trusted
            # list existed) must verify under the active key alone.
            trusted, windows = {key.key_id: key.public_key}, None
        else:
            trusted, windows = trust.public_keys(), trust.windows()
        verified = presign.verify_unsigned(head=head, keys=trusted, origin=origin, windows=windows)
        if first_use:
            # The trust event is appended to the verified tree under the same lock, and
            # the grown tree is verified again before it is signed.
            trust.trust_first_use(actor=actor, key=key)
            head = TreeHead.objects.get(pk=1)
            verified = presign.verify_unsigned(head=head, keys=trusted, origin=origin)
        if verified.previous is not None and verified.previous.size == head.size:
            return verified.previous
        now = clock.now().replace(microsecond=0)
        body = note.Checkpoint(
            origin, head.size, verified.root, now.strftime("%Y-%m-%dT%H:%M:%SZ")
        ).body()
        checkpoint = Checkpoint(
            size=head.size,
            root=verified.root,
            created_at=now,
            key_id=key.key_id,
            note=note.sign(body, origin, key.private_key),
            created_by=actor.label,
        )
        # A concurrent call may sign the same size first; keep whichever committed.
        Checkpoint.objects.bulk_create([checkpoint], ignore_conflicts=True)
        stored = Checkpoint.objects.get(size=head.size)
    logger.info("checkpoint at size %s signed by key %s for %s", stored.size, key.key_id, actor)
    return stored


def checkpoint_create_if_new(*, actor: Actor) -> Checkpoint | None:
    """Sign a checkpoint when entries were appended since the latest one; else None."""
    head = TreeHead.objects.filter(pk=1).values_list("size", flat=True).first() or 0
    latest = Checkpoint.objects.order_by("-size").values_list("size", flat=True).first() or 0
    if head <= latest:
        return None
    return checkpoint_create(actor=actor)
