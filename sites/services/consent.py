"""Consent batches from sites: parsed, checked in full, then written in one transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import rfc8785
from django.db import connection, transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from fedgov.validation import (
    Errors,
    as_aware_datetime,
    lazy_number,
)
from sites import selectors as site_selectors
from sites.choices import (
    ConsentEventKind,
)
from sites.models import (
    Consent,
    ConsentEvent,
    Dataset,
    Purpose,
)
from sites.services._kit import (
    CLOCK_SKEW,
    IN_CHUNK,
    MAX_CONSENT_BATCH,
    MAX_REPORTED_ROW_ERRORS,
    PSEUDONYM,
)
from sites.triggers import CACHE

# --------------------------------------------------------------------------- consent


@dataclass(frozen=True)
class ConsentBatchResult:
    """What one consent upload did: counts, and the digest the ledger event carries."""

    batch_id: str
    dataset_id: int
    events: int
    granted: int
    withdrawn: int
    consents_created: int
    consents_updated: int
    digest: str
    ledger_seq: int


@dataclass
class _ConsentState:
    granted_at: dt.datetime
    expires_at: dt.datetime | None
    withdrawn_at: dt.datetime | None
    row: Consent | None  # None until written: created in this batch


@dataclass(frozen=True)
class _Row:
    index: int
    subject: str
    purpose: str
    kind: str
    occurred_at: dt.datetime
    expires_at: dt.datetime | None


_ROW_FIELDS = frozenset({"subject_pseudonym", "purpose", "kind", "occurred_at", "expires_at"})


# Row errors are read by whoever uploaded (admin form, API 400), possibly in another
# language than the one active when the service ran: lazy, numbers included.


@dataclass(frozen=True)
class _RowNames:
    """How every refusal names a row, one way per upload, so a summary and the per-row
    errors beside it point at the same row in the same words.

    A CSV file: the line a person sees in their spreadsheet (the header is line 1).
    A JSON list: the event's index in that list, written ``events[2]`` as a client's
    code reads it (0-based, the key of the 400's ``events``).
    """

    lines: Sequence[int] | None

    def key(self, index: int) -> str:
        return str(self.lines[index]) if self.lines is not None else str(index)

    def repeats(self, index: int) -> Any:
        if self.lines is not None:
            return format_lazy(_("repeats line {line}"), line=lazy_number(self.lines[index]))
        return format_lazy(_("repeats events[{index}]"), index=str(index))

    def summary(self, refused: int, total: int, index: int, field: str) -> Any:
        if self.lines is not None:
            text = ngettext_lazy(
                "{refused} of {total} row refused (first: line {row}, {field}); "
                "nothing was recorded",
                "{refused} of {total} rows refused (first: line {row}, {field}); "
                "nothing was recorded",
                total,
            )
            row = lazy_number(self.lines[index])
        else:
            text = ngettext_lazy(
                "{refused} of {total} event refused (first: events[{row}], {field}); "
                "nothing was recorded",
                "{refused} of {total} events refused (first: events[{row}], {field}); "
                "nothing was recorded",
                total,
            )
            row = str(index)
        return format_lazy(
            text, refused=lazy_number(refused), total=lazy_number(total), row=row, field=field
        )


def _parse_consent_rows(
    events: list[dict[str, Any]], purposes: dict[str, Purpose], now: dt.datetime, names: _RowNames
) -> tuple[list[_Row], dict[int, dict[str, list[Any]]]]:
    """The rows, and each refused row's reasons by field (by event index)."""
    rows: list[_Row] = []
    bad: dict[int, dict[str, list[Any]]] = {}
    seen: dict[tuple[Any, ...], int] = {}
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            bad[index] = {"non_field_errors": [_("must be an object with the event's fields")]}
            continue
        errors = Errors()
        row = _consent_row(index, event, purposes, now, errors)
        if row is not None:
            key = (row.subject, row.purpose, row.kind, row.occurred_at)
            if key in seen:
                # Errors is typed for str; a lazy string stands in for one until read.
                errors.add("non_field_errors", cast(str, names.repeats(seen[key])))
            seen[key] = index
        if errors.errors:
            bad[index] = errors.errors
        elif row is not None:
            rows.append(row)
    return rows, bad


def _consent_row(
    index: int,
    event: dict[str, Any],
    purposes: dict[str, Purpose],
    now: dt.datetime,
    errors: Errors,
) -> _Row | None:
    """One event's fields checked in order; the row, or None when any was refused."""
    for extra in sorted(set(event) - _ROW_FIELDS):
        errors.add(extra, _("unknown field"))
    subject = event.get("subject_pseudonym")
    _check_pseudonym(errors, subject)
    code = event.get("purpose")
    if code not in purposes:
        errors.add(
            "purpose", format_lazy(_("{code} is not a purpose of this dataset"), code=repr(code))
        )
    kind = event.get("kind")
    if kind not in ConsentEventKind.values:
        # The values as the file must spell them, in every language.
        errors.add("kind", _("must be grant or withdraw"))
    occurred = _occurred_at(errors, event.get("occurred_at"), now)
    expires = _expires_at(errors, event.get("expires_at"), kind, occurred)
    if errors.errors or occurred is None:  # no error means every field parsed
        return None
    return _Row(index, str(subject), str(code), str(kind), occurred, expires)


def _check_pseudonym(errors: Errors, subject: Any) -> None:
    if not isinstance(subject, str) or not subject:
        errors.add("subject_pseudonym", _("must not be empty"))
    elif not PSEUDONYM.fullmatch(subject):
        errors.add(
            "subject_pseudonym",
            _(
                "must be the site's pseudonym (at most 128 of A-Z a-z 0-9 . _ : + / = -), "
                "never an identity such as an e-mail address"
            ),
        )


def _occurred_at(errors: Errors, raw: Any, now: dt.datetime) -> dt.datetime | None:
    occurred, reason = as_aware_datetime(raw)
    if occurred is None:
        errors.add("occurred_at", reason)
    elif occurred > now + CLOCK_SKEW:
        errors.add("occurred_at", _("is in the future"))
    return occurred


def _expires_at(
    errors: Errors, raw: Any, kind: Any, occurred: dt.datetime | None
) -> dt.datetime | None:
    """A grant's expiry when stated; a withdrawal has none."""
    if raw in (None, ""):
        return None
    expires, reason = as_aware_datetime(raw)
    if expires is None:
        errors.add("expires_at", reason)
    elif kind == ConsentEventKind.WITHDRAW:
        errors.add("expires_at", _("a withdrawal has no expiry"))
    elif occurred is not None and expires <= occurred:
        errors.add("expires_at", _("must be after occurred_at (the consent was granted then)"))
    return expires


def _recorded_late(rows: list[_Row], now: dt.datetime) -> dict[str, int | str | None]:
    """How many of the batch's facts already lay in the past when recorded: grants and
    withdrawals that took effect, and expiries already reached, more than the clock skew
    before ``now``. A gate evaluated in between read other facts; the ledger event (with
    its actor and time) is the record of when fedgov learnt them."""
    cutoff = now - CLOCK_SKEW
    late = [r for r in rows if r.occurred_at < cutoff]
    expired = [r for r in rows if r.expires_at is not None and r.expires_at < cutoff]
    return {
        "grants": sum(1 for r in late if r.kind == ConsentEventKind.GRANT),
        "withdrawals": sum(1 for r in late if r.kind == ConsentEventKind.WITHDRAW),
        "expired": len(expired),
        "earliest": min(r.occurred_at for r in late).isoformat() if late else None,
    }


def _batch_digest(rows: list[_Row]) -> str:
    canonical = [
        {
            "subject_pseudonym": r.subject,
            "purpose": r.purpose,
            "kind": r.kind,
            "occurred_at": r.occurred_at.isoformat(),
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
        }
        for r in rows
    ]
    return hashlib.sha256(rfc8785.dumps(canonical)).hexdigest()


def _refuse_rows(bad: dict[int, dict[str, list[Any]]], total: int, names: _RowNames) -> None:
    ordered = sorted(bad.items())
    shown = {names.key(index): fields for index, fields in ordered[:MAX_REPORTED_ROW_ERRORS]}
    first, fields = ordered[0]
    raise InvalidInput(
        {
            "events": shown,
            "non_field_errors": [names.summary(len(bad), total, first, next(iter(fields)))],
        }
    )


def _consent_state(
    dataset: Dataset, rows: list[Any], code_of: dict[int, str]
) -> dict[tuple[str, str], _ConsentState]:
    """The stored consent of each (subject, purpose code) the batch touches."""
    state: dict[tuple[str, str], _ConsentState] = {}
    subjects = sorted({r.subject for r in rows})
    for start in range(0, len(subjects), IN_CHUNK):
        chunk = subjects[start : start + IN_CHUNK]
        for consent in Consent.objects.filter(dataset=dataset, subject_pseudonym__in=chunk):
            code = code_of.get(consent.purpose_id)
            if code is None:
                continue  # a consent for a purpose the dataset no longer lists
            state[(consent.subject_pseudonym, code)] = _ConsentState(
                consent.granted_at, consent.expires_at, consent.withdrawn_at, consent
            )
    return state


def _apply_consent_row(
    row: Any, state: dict[tuple[str, str], _ConsentState], dataset: Dataset
) -> dict[str, list[Any]] | None:
    """Apply one event to ``state``; the row's errors instead when it cannot apply."""
    key = (row.subject, row.purpose)
    current = state.get(key)
    last_change = None
    if current is not None:
        last_change = max(current.granted_at, current.withdrawn_at or current.granted_at)
    if last_change is not None and row.occurred_at < last_change:
        return {
            "occurred_at": [
                format_lazy(
                    _("is before this subject's last recorded change ({instant})"),
                    instant=last_change.isoformat(),
                )
            ]
        }
    if row.kind == ConsentEventKind.GRANT:
        if dataset.withdrawn_at is not None:
            return {"kind": [_("the dataset was withdrawn from federation; no new grants")]}
        if current is None:
            state[key] = _ConsentState(row.occurred_at, row.expires_at, None, None)
        else:
            current.granted_at, current.expires_at = row.occurred_at, row.expires_at
            current.withdrawn_at = None
        return None
    if current is None:
        return {
            "subject_pseudonym": [
                format_lazy(
                    _("has no consent for purpose {purpose} to withdraw"),
                    purpose=repr(row.purpose),
                )
            ]
        }
    if current.withdrawn_at is not None:
        return {
            "kind": [
                format_lazy(
                    _("consent already withdrawn at {instant}"),
                    instant=current.withdrawn_at.isoformat(),
                )
            ]
        }
    current.withdrawn_at = row.occurred_at
    return None


def _consent_rows(
    rows: list[Any],
    state: dict[tuple[str, str], _ConsentState],
    dataset: Dataset,
    purposes: dict[str, Any],
    now: Any,
) -> tuple[list[Consent], list[Consent]]:
    """The Consent rows to create and to update for what the batch touched."""
    touched = {(r.subject, r.purpose) for r in rows}
    to_create: list[Consent] = []
    to_update: list[Consent] = []
    for subject, code in touched:
        consent = state[(subject, code)]
        if consent.row is None:
            to_create.append(
                Consent(
                    dataset=dataset,
                    purpose=purposes[code],
                    subject_pseudonym=subject,
                    granted_at=consent.granted_at,
                    expires_at=consent.expires_at,
                    withdrawn_at=consent.withdrawn_at,
                    updated_at=now,
                )
            )
        else:
            consent.row.granted_at, consent.row.expires_at = consent.granted_at, consent.expires_at
            consent.row.withdrawn_at, consent.row.updated_at = consent.withdrawn_at, now
            to_update.append(consent.row)
    return to_create, to_update


def consent_record_batch(
    *, actor: Actor, dataset: Dataset, events: list[dict], lines: Sequence[int] | None = None
) -> ConsentBatchResult:
    """Record a site's consent grants and withdrawals, all or nothing.

    Each event: ``subject_pseudonym``, ``purpose`` (code), ``kind`` (grant|withdraw),
    ``occurred_at`` and optional ``expires_at`` (aware datetimes or ISO 8601 with an
    offset). Events apply in ``occurred_at`` order. A withdrawal is a ``ConsentEvent``
    and sets ``Consent.withdrawn_at``; nothing is ever deleted. Withdrawals are accepted
    even for a suspended site or a withdrawn dataset (Art. 7(3): withdrawing must stay
    possible); grants to a withdrawn dataset are refused.

    ``lines``, when the events come from a CSV file: the file line of each (the header is
    line 1). Every refusal then keys and names a row by its line (``{"events": {"4":
    ...}}``, "first: line 4"); without it, by its index in ``events`` ("events[2]").

    Raises ``InvalidInput`` naming each bad row (``{"events": {"<index or line>": {field:
    [reason]}}}``): unknown purpose, bad dates, expiry before grant, withdrawing a
    consent that does not exist or is already withdrawn, an event older than the
    subject's last recorded one. Ledger: ``consent.batch_recorded`` with the batch id,
    counts, the SHA-256 of the canonical batch (never the pseudonyms) and
    ``recorded_late``: how many grants, withdrawals and expiries lay in the past when
    recorded, and the earliest such instant. Before committing, refreshes the cached
    consent state of each (dataset, purpose) the batch touched at its own instant
    (``consent_states_refresh``), so the next gate reads it from the cache.
    """
    if not isinstance(events, list | tuple) or not events:
        raise InvalidInput({"events": [_("must be a non-empty list of consent events")]})
    if len(events) > MAX_CONSENT_BATCH:
        raise InvalidInput(
            {
                "events": [
                    format_lazy(
                        _("at most {count} events per upload"), count=lazy_number(MAX_CONSENT_BATCH)
                    )
                ]
            }
        )
    if lines is not None and len(lines) != len(events):
        raise ValueError("one line number per event")  # a caller's bug, not the uploader's
    names = _RowNames(lines)
    now = clock.now()
    batch_id = uuid.uuid4().hex
    with transaction.atomic(durable=True):
        # Locks the dataset: two uploads for one dataset apply one after the other.
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        purposes = {p.code: p for p in dataset.purposes.all()}
        code_of = {p.pk: code for code, p in purposes.items()}
        rows, bad = _parse_consent_rows(list(events), purposes, now, names)
        rows.sort(key=lambda r: (r.occurred_at, r.index))

        state = _consent_state(dataset, rows, code_of)
        granted = withdrawn = 0
        for row in rows:
            problem = _apply_consent_row(row, state, dataset)
            if problem is not None:
                bad[row.index] = problem
            elif row.kind == ConsentEventKind.GRANT:
                granted += 1
            else:
                withdrawn += 1
        if bad:
            _refuse_rows(bad, len(events), names)

        to_create, to_update = _consent_rows(rows, state, dataset, purposes, now)
        Consent.objects.bulk_create(to_create, batch_size=1000)
        Consent.objects.bulk_update(
            to_update,
            ["granted_at", "expires_at", "withdrawn_at", "updated_at"],
            batch_size=500,
        )
        ConsentEvent.objects.bulk_create(
            [
                ConsentEvent(
                    dataset=dataset,
                    purpose=purposes[r.purpose],
                    subject_pseudonym=r.subject,
                    kind=r.kind,
                    occurred_at=r.occurred_at,
                    expires_at=r.expires_at,
                    batch_id=batch_id,
                    recorded_by_name=actor.label,
                )
                for r in rows
            ],
            batch_size=1000,
        )
        # The gate's next read finds this dataset's state current (bench/gate.py): it is
        # recomputed here, for the purposes the batch touched, from the rows just written.
        # Inside the transaction, not on commit: the triggers' bump holds the cache rows'
        # locks until commit, so no other consent write can slip between this state and
        # its generation, and no crash after commit can leave the dataset cold.
        for purpose_id in sorted({purposes[r.purpose].pk for r in rows}):
            consent_states_refresh(dataset_ids=[dataset.pk], purpose_id=purpose_id, at=now)
        digest = _batch_digest(rows)
        entry = ledger_append(
            event_type="consent.batch_recorded",
            actor=actor,
            subject_type="dataset",
            subject_id=dataset.pk,
            payload={
                "batch_id": batch_id,
                "dataset_id": dataset.pk,
                "site_id": dataset.site_id,
                "events": len(rows),
                "granted": granted,
                "withdrawn": withdrawn,
                "consents_created": len(to_create),
                "consents_updated": len(to_update),
                "batch_sha256": digest,
                "recorded_late": _recorded_late(rows, now),
            },
        )
    return ConsentBatchResult(
        batch_id=batch_id,
        dataset_id=dataset.pk,
        events=len(rows),
        granted=granted,
        withdrawn=withdrawn,
        consents_created=len(to_create),
        consents_updated=len(to_update),
        digest=digest,
        ledger_seq=entry.seq,
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(value: dt.datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // dt.timedelta(microseconds=1)


def consent_states_current(
    *, dataset_ids: list[int], purpose_id: int, at: dt.datetime
) -> dict[int, site_selectors.ConsentState]:
    """``sites.selectors.consent_states`` at ``at``, read from ``ConsentStateCache`` where
    a row holds for that instant and no consent was written since, recomputed (one pass
    over those datasets' consent rows) and stored back where not. At most three queries.

    Order matters on PostgreSQL (READ COMMITTED): the generations are read before the
    consent rows, so a consent write that commits in between is seen by neither the
    stored state nor its stored generation, and the row stays stale; a write still open
    holds the cache row's lock, and the upsert then lands after it with the older
    generation. The cache is evidence-neutral: the allow-list a site fetches is rebuilt
    from the consent rows and must match the gate's digest (``round_allowed``).
    """
    at_us = _micros(at)
    assert at_us is not None
    cached = site_selectors.cached_consent_states(dataset_ids=dataset_ids, purpose_id=purpose_id)
    generation = {row.dataset_id: row.generation for row in cached}
    states = {row.dataset_id: row.state() for row in cached if row.holds_at(at_us)}
    stale = [ds for ds in dataset_ids if ds not in states]
    if not stale:
        return {ds: state for ds, state in states.items() if state.total}
    states.update(_recompute(stale, purpose_id, at, generation))
    # A dataset without consent rows has no state, as ``consent_states`` returns it.
    return {ds: state for ds, state in states.items() if state.total}


def consent_states_refresh(*, dataset_ids: list[int], purpose_id: int, at: dt.datetime) -> None:
    """Recompute and store the datasets' cached consent state for the purpose at ``at``,
    current or not (two queries and one upsert).

    Called by the consent services right after their write, in its transaction, so the
    first gate after a consent change reads the cache instead of every dataset's rows.
    The state holds only over its span around ``at``: a gate for an instant outside it
    (a round evaluated before the refresh instant, or after the next grant, expiry or
    withdrawal) recomputes, as ``consent_states_current`` always does.
    """
    cached = site_selectors.cached_consent_states(dataset_ids=dataset_ids, purpose_id=purpose_id)
    generation = {row.dataset_id: row.generation for row in cached}
    _recompute(sorted(dataset_ids), purpose_id, at, generation)


def _recompute(
    dataset_ids: list[int], purpose_id: int, at: dt.datetime, generation: dict[int, int]
) -> dict[int, site_selectors.ConsentState]:
    """The datasets' states at ``at`` from their rows, stored with the generations read
    before the rows (``consent_states_current`` says why that order)."""
    fresh = site_selectors.consent_states(dataset_ids=dataset_ids, purpose_id=purpose_id, at=at)
    _store_consent_states(
        [
            (ds, purpose_id, generation.get(ds, 0), fresh.get(ds, site_selectors.ConsentState()))
            for ds in sorted(dataset_ids)
        ]
    )
    return fresh


def _store_consent_states(rows: list[tuple[int, int, int, site_selectors.ConsentState]]) -> None:
    """Upsert the cache rows in one statement, whatever their number (one JSON parameter).

    ``generation`` is written only into a new row; an existing row keeps the one the
    triggers gave it, so a state computed before a consent write is never marked current.
    A stale state never replaces a current one: a gate that read the generations before
    a consent service committed its refresh would otherwise undo that refresh, and the
    next gate would recompute what was already stored.
    """
    payload = json.dumps(
        [
            [
                ds,
                purpose,
                gen,
                gen,
                _micros(state.valid_from),
                _micros(state.valid_until),
                state.eligible,
                state.total,
                state.withdrawn,
                json.dumps(list(state.excluded)),
                state.allowed_text,
            ]
            for ds, purpose, gen, state in rows
        ]
    )
    columns = (
        "dataset_id, purpose_id, generation, computed_generation, valid_from_us,"
        " valid_until_us, eligible, total, withdrawn, lapsed_json, allowed_text"
    )
    update = ", ".join(
        f"{c} = excluded.{c}"
        for c in (
            "computed_generation",
            "valid_from_us",
            "valid_until_us",
            "eligible",
            "total",
            "withdrawn",
            "lapsed_json",
            "allowed_text",
        )
    )
    if connection.vendor == "postgresql":
        source = (
            "SELECT (x->>0)::bigint, (x->>1)::bigint, (x->>2)::bigint, (x->>3)::bigint,"
            " (x->>4)::bigint, (x->>5)::bigint, (x->>6)::integer, (x->>7)::integer,"
            " (x->>8)::integer, x->>9, x->>10 FROM jsonb_array_elements(%s::jsonb) AS x"
        )
    else:
        # ``WHERE true``: SQLite's parser needs it between INSERT … SELECT and ON CONFLICT.
        source = (
            "SELECT "  # noqa: S608 (constant text, the data goes as one parameter)
            + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(11))
            + " FROM json_each(%s) WHERE true"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO sites_consentstatecache ({columns}) {source} "
            f"ON CONFLICT (dataset_id, purpose_id) DO UPDATE SET {update} "
            f"WHERE excluded.computed_generation = {CACHE}.generation "
            f"OR {CACHE}.computed_generation <> {CACHE}.generation",
            [payload],
        )
