"""fedgov as a tlog-witness client: ask the policy's witnesses to cosign a checkpoint.

After a checkpoint is signed, each witness named in ``FEDGOV_WITNESSES`` is sent the C2SP
``add-checkpoint`` request (c2sp.org/tlog-witness): the size it last cosigned, a
consistency proof from there, and the checkpoint note. A ``409`` answer carries the size
the witness holds; the request is repeated once from that size. Each returned line is
checked as a ``cosignature/v1`` by the witness key pinned in the trusted list
(``audit.trust``, role ``witness``, same name) and stored. The requests run in parallel
with a timeout; a witness that is down or refuses is logged and reported in the outcome,
and never blocks anything: appends do not wait for witnessing at all.

A checkpoint counts as witnessed with ``FEDGOV_WITNESS_QUORUM`` valid cosignatures from
pinned witness keys (:func:`witnessed_size`).
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Max

from audit import merkle, note, selectors, trust, witness
from audit.choices import KeyRole
from audit.leaf import format_time
from audit.models import Checkpoint, Cosignature, LedgerEntry
from fedgov import clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessReply:
    name: str
    ok: bool
    detail: str
    line: str = ""
    timestamp: int = 0


@dataclass
class WitnessOutcome:
    size: int
    quorum: int
    replies: list[WitnessReply] = field(default_factory=list)

    @property
    def cosigned(self) -> int:
        return sum(reply.ok for reply in self.replies)

    @property
    def witnessed(self) -> bool:
        return self.quorum > 0 and self.cosigned >= self.quorum

    @property
    def failures(self) -> list[WitnessReply]:
        return [reply for reply in self.replies if not reply.ok]


def _pinned_by_name() -> dict[str, trust.TrustedKeyView]:
    """The witness keys valid now, by witness name (one query)."""
    now = clock.now()
    return {view.name: view for view in trust.trusted(KeyRole.WITNESS) if view.valid_at(now)}


def _last_cosigned_by_key() -> dict[str, int]:
    """The largest checkpoint size each witness key cosigned (one query)."""
    rows = Cosignature.objects.values("key_id").annotate(size=Max("checkpoint_id"))
    return {row["key_id"]: row["size"] for row in rows}


def _request_body(old: int, size: int, note_text: str) -> bytes:
    proof: list[bytes] = []
    if 0 < old < size:
        proof = selectors.consistency(size1=old, size2=size).path
    lines = [f"old {old}"] + [base64.b64encode(p).decode() for p in proof]
    return ("\n".join(lines) + "\n\n" + note_text).encode()


def _post(url: str, body: bytes, timeout: float) -> tuple[int, str]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"witness URL {url!r} is not http(s)")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url.rstrip("/") + "/add-checkpoint", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read(1 << 16).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(1 << 16).decode("utf-8", "replace")


def _exchange(url: str, body: bytes, timeout: float) -> tuple[int, str]:
    """One add-checkpoint round trip; (0, reason) when the witness cannot be reached."""
    try:
        return _post(url, body, timeout)
    except (OSError, ValueError) as exc:  # refused, timed out, unreachable, bad URL
        return 0, f"unreachable: {exc}"


def _reply(
    name: str, pinned: trust.TrustedKeyView, status: int, text: str, body: str
) -> WitnessReply:
    if status == 0:
        return WitnessReply(name, False, text)
    if status != 200:
        return WitnessReply(name, False, f"HTTP {status}: {text.strip()[:200]}")
    for line in text.splitlines():
        try:
            cosig = witness.open_cosignature(line, body, pinned.name, pinned.public_key)
        except note.NoteError:
            continue  # other keys' lines are ignored, as the protocol says
        if cosig.timestamp < _signed_at(body):
            # A cosignature cannot predate what it signs: a witness clock far behind, or
            # a line made for another note. Not stored; the verifiers refuse it too.
            return WitnessReply(
                name, False, f"cosignature dated {cosig.timestamp}, before the checkpoint"
            )
        return WitnessReply(name, True, "cosigned", cosig.line, cosig.timestamp)
    return WitnessReply(name, False, "no valid cosignature by the pinned key in the reply")


def _signed_at(body: str) -> int:
    """The POSIX second the checkpoint body states it was signed at."""
    stated = datetime.strptime(note.parse_checkpoint(body).time, "%Y-%m-%dT%H:%M:%SZ")
    return int(stated.replace(tzinfo=UTC).timestamp())


def checkpoint_witness(*, size: int | None = None) -> WitnessOutcome:
    """Ask every witness of the policy to cosign the checkpoint at ``size`` (default: the
    latest); store the valid cosignatures. Raises nothing for a witness that is down: the
    outcome lists it, and it is logged."""
    row = (
        Checkpoint.objects.filter(size=size).first()
        if size is not None
        else Checkpoint.objects.order_by("-size").first()
    )
    outcome = WitnessOutcome(size=row.size if row else 0, quorum=settings.FEDGOV_WITNESS_QUORUM)
    if row is None or not settings.FEDGOV_WITNESSES:
        return outcome
    # Database work stays on this thread; the pool threads only talk HTTP.
    body, _signatures = note.split(row.note)
    timeout = settings.FEDGOV_WITNESS_TIMEOUT
    asked = []
    replies: dict[str, WitnessReply] = {}
    pinned_keys, last = _pinned_by_name(), _last_cosigned_by_key()
    bodies: dict[int, bytes] = {}  # witnesses at the same old size share one proof

    def request_body(old: int) -> bytes:
        if old not in bodies:
            bodies[old] = _request_body(old, row.size, row.note)
        return bodies[old]

    for name, url in settings.FEDGOV_WITNESSES:
        pinned = pinned_keys.get(name)
        if pinned is None:
            replies[name] = WitnessReply(name, False, "no valid pinned witness key of this name")
            continue
        asked.append((name, url, pinned, request_body(min(last.get(pinned.key_id, 0), row.size))))
    with ThreadPoolExecutor(max_workers=max(len(asked), 1)) as pool:
        answers = list(pool.map(lambda job: _exchange(job[1], job[3], timeout), asked))
        retry = []
        for job, (status, text) in zip(asked, answers, strict=True):
            held = text.strip()
            if status == 409 and held.isdigit() and int(held) <= row.size:
                # The witness holds another size (e.g. it lost or kept older state): the
                # protocol's answer is to try again from the size it names.
                retry.append((*job[:3], request_body(int(held))))
            elif status == 409 and held.isdigit():
                replies[job[0]] = WitnessReply(
                    job[0], False, f"the witness holds size {held}, above {row.size}: a rollback?"
                )
            else:
                replies[job[0]] = _reply(job[0], job[2], status, text, body)
        again = list(pool.map(lambda job: _exchange(job[1], job[3], timeout), retry))
        for job, (status, text) in zip(retry, again, strict=True):
            replies[job[0]] = _reply(job[0], job[2], status, text, body)
    outcome.replies = [replies[name] for name, _url in settings.FEDGOV_WITNESSES]
    now = clock.now()
    received = [
        Cosignature(
            checkpoint=row,
            key_id=pinned_keys[reply.name].key_id,
            witness=reply.name,
            timestamp=reply.timestamp,
            line=reply.line,
            received_at=now,
        )
        for reply in outcome.replies
        if reply.ok
    ]
    if received:
        # One statement; a cosignature already stored for this key and size is kept.
        Cosignature.objects.bulk_create(received, ignore_conflicts=True)
    for reply in outcome.failures:
        logger.warning("witness %s did not cosign size %s: %s", reply.name, row.size, reply.detail)
    return outcome


def witnessed_size(quorum: int | None = None) -> tuple[int, bytes]:
    """The newest checkpoint with ``quorum`` valid cosignatures by pinned witness keys,
    as (size, signed root); (0, empty root) when none. Each cosignature is re-verified."""
    quorum = settings.FEDGOV_WITNESS_QUORUM if quorum is None else quorum
    if quorum <= 0:
        return 0, merkle.EMPTY_ROOT
    pinned = {view.key_id: view for view in trust.trusted(KeyRole.WITNESS)}
    rows = Checkpoint.objects.filter(cosignatures__key_id__in=list(pinned)).distinct()
    for row in rows.order_by("-size").prefetch_related("cosignatures"):
        body, _sigs = note.split(row.note)
        valid = set()
        for cosig in row.cosignatures.all():
            view = pinned.get(cosig.key_id)
            if view is None or not view.valid_at(datetime.fromtimestamp(cosig.timestamp, UTC)):
                continue
            if cosig.timestamp < _signed_at(body):
                continue  # older than the checkpoint it signs: refused, as offline
            try:
                witness.open_cosignature(cosig.line, body, view.name, view.public_key)
            except note.NoteError:
                continue
            valid.add(cosig.key_id)
        if len(valid) >= quorum:
            return row.size, note.parse_checkpoint(body).root
    return 0, merkle.EMPTY_ROOT


def stored_cosignature_problems() -> list[str]:
    """Every stored cosignature still verifies, as it did when it was stored.

    ``checkpoint_witness`` stores only cosignatures that verify under a pinned witness
    key, so one that no longer does (another line, key, witness or timestamp) was changed
    behind the guards. It would merely not count towards the quorum; said here, it is
    named at once, not only when the maximum lag runs out.
    """
    pinned = {view.key_id: view for view in trust.trusted(KeyRole.WITNESS)}
    found: list[str] = []
    rows = Cosignature.objects.select_related("checkpoint").order_by("checkpoint_id", "key_id")
    for cosig in rows.iterator(chunk_size=500):
        size = cosig.checkpoint.size
        view = pinned.get(cosig.key_id)
        why = None
        if view is None:
            why = f"key {cosig.key_id} was never a trusted witness key"
        else:
            body, _sigs = note.split(cosig.checkpoint.note)
            try:
                opened = witness.open_cosignature(cosig.line, body, view.name, view.public_key)
            except note.NoteError as exc:
                why = str(exc)
            else:
                if (opened.timestamp, view.name) != (cosig.timestamp, cosig.witness):
                    why = (
                        f"stored as by {cosig.witness} at {cosig.timestamp}, signed by "
                        f"{view.name} at {opened.timestamp}"
                    )
        if why is not None:
            found.append(
                f"first bad seq {size - 1}: a stored cosignature of the checkpoint at size "
                f"{size} does not verify ({why}): changed after it was stored"
            )
    return found


def _state_of(path: str, origin: str) -> tuple[int, bytes]:
    data = json.loads(Path(path).read_text())
    entry = data["logs"][origin]
    return int(entry["size"]), base64.b64decode(entry["root"], validate=True)


def problems(size: int, state_paths: list[str]) -> list[str]:
    """What ``ledger_verify`` fails on about witnessing, each naming the first bad seq.

    - With a quorum configured: an entry older than ``FEDGOV_WITNESS_MAX_LAG`` that no
      witnessed checkpoint covers (deleting checkpoints or cosignatures, or a rollback,
      leaves such entries behind).
    - For each witness state file given: the ledger is shorter than the size that witness
      cosigned (a rollback), or its tree at that size has another root (a rewrite).
    """
    found: list[str] = []
    quorum = settings.FEDGOV_WITNESS_QUORUM
    if quorum > 0 and size > 0:
        covered, _root = witnessed_size(quorum)
        cutoff = clock.now() - settings.FEDGOV_WITNESS_MAX_LAG
        late = (
            LedgerEntry.objects.filter(seq__gte=covered, created_at__lt=cutoff)
            .order_by("seq")
            .values_list("seq", "created_at")
            .first()
        )
        if late is not None:
            found.append(
                f"first bad seq {late[0]}: written at {format_time(late[1])}, and no checkpoint "
                f"with {quorum} valid witness cosignatures covers it within the maximum lag "
                f"({int(settings.FEDGOV_WITNESS_MAX_LAG.total_seconds())} s); the newest "
                f"witnessed checkpoint is at size {covered}"
            )
    found += stored_cosignature_problems()
    origin = settings.FEDGOV_LEDGER_ORIGIN
    head = selectors.tree_size()
    for path in state_paths:
        try:
            seen, root = _state_of(path, origin)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            found.append(f"witness state {path} holds no state for {origin}: {exc!r}")
            continue
        if seen == 0:
            continue
        if head < seen:
            found.append(
                f"first bad seq {head}: the ledger holds {head} entries but the witness whose "
                f"state is {path} cosigned size {seen}: rolled back"
            )
            continue
        try:
            ours = selectors.root_at(seen)
        except LookupError as exc:
            found.append(f"first bad seq {seen - 1}: no tree at size {seen}: {exc}")
            continue
        if ours != root:
            found.append(
                f"first bad seq {seen - 1} or below: the tree at size {seen} is not the one "
                f"the witness whose state is {path} cosigned: entries 0..{seen - 1} were rewritten"
            )
    return found


@dataclass(frozen=True)
class WitnessHeld:
    """What one witness said it holds for this log, asked by :func:`witness_sizes`.

    ``size`` is None when the witness gave no usable answer (down, unknown origin, refused
    the note, or a 200 without a valid cosignature by its pinned key); ``detail`` says why.
    ``same_root`` is False when the witness holds another root at the asked size (a fork).
    """

    name: str
    size: int | None
    detail: str
    same_root: bool = True


def witness_sizes() -> tuple[int, list[WitnessHeld]]:
    """Ask every witness of the policy what size of this log it last cosigned, online.

    tlog-witness (c2sp.org/tlog-witness, add-checkpoint) has no read call that every
    witness must serve, so the question is an add-checkpoint of the newest stored
    checkpoint with old size = its own size and no proof. The spec fixes the answers: a
    witness whose latest cosigned size differs answers ``409`` with that size; one at the
    same size with another root ``422``; one at the same size and root ``200`` with a fresh
    cosignature (its state stays as it was: the spec's update writes the same size and
    root). So the probe never moves a witness forward and never signs anything new.
    Returns (the asked size, one answer per witness in policy order); (0, []) when no
    witness is configured or no checkpoint is stored (nothing signed to ask with: the
    maximum-lag check covers that ledger). Read-only here: fresh cosignatures are checked,
    not stored. Raises nothing for a witness that is down.
    """
    row = Checkpoint.objects.order_by("-size").first()
    if row is None or not settings.FEDGOV_WITNESSES:
        return 0, []
    body, _signatures = note.split(row.note)
    pinned = _pinned_by_name()
    request = f"old {row.size}\n\n{row.note}".encode()
    urls = list(settings.FEDGOV_WITNESSES)
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        answers = list(
            pool.map(
                lambda item: _exchange(item[1], request, settings.FEDGOV_WITNESS_TIMEOUT), urls
            )
        )
    held = []
    for (name, _url), (status, text) in zip(urls, answers, strict=True):
        held.append(_held(name, pinned.get(name), row.size, status, text, body))
    return row.size, held


def _held(
    name: str,
    pinned: trust.TrustedKeyView | None,
    asked: int,
    status: int,
    text: str,
    body: str,
) -> WitnessHeld:
    answer = text.strip()
    if status == 409:
        # The body is the witness's latest cosigned size in decimal and a newline.
        if answer.isascii() and answer.isdigit():
            if int(answer) == asked:
                # Earlier revisions of tlog-witness answered another root at the same size
                # with 409 and that size; the current one never answers 409 with it.
                return WitnessHeld(
                    name, asked, f"holds another root at size {asked}", same_root=False
                )
            return WitnessHeld(name, int(answer), f"holds size {answer}")
        return WitnessHeld(name, None, f"HTTP 409 without a size: {answer[:80]!r}")
    if status == 422:
        # With old size = checkpoint size > 0 and no proof, the only 422 the spec leaves is
        # "the root hashes are not identical" at that size.
        return WitnessHeld(name, asked, f"holds another root at size {asked}", same_root=False)
    if status == 200:
        if pinned is None:
            return WitnessHeld(
                name, None, "answered 200, but no witness key of this name is pinned"
            )
        reply = _reply(name, pinned, status, text, body)
        if reply.ok:
            return WitnessHeld(name, asked, f"holds size {asked} with the same root")
        return WitnessHeld(name, None, f"answered 200 but {reply.detail}")
    if status == 0:
        return WitnessHeld(name, None, answer)  # "unreachable: ..."
    return WitnessHeld(name, None, f"HTTP {status}: {answer[:200]}")


def rollback_problems(size: int, held: list[WitnessHeld], asked: int) -> list[str]:
    """What the witnesses' answers prove against a ledger of ``size`` entries whose newest
    stored checkpoint is at ``asked``: a witness that cosigned a larger tree than the
    ledger holds (a rollback, later checkpoints and cosignatures deleted or not), one that
    cosigned a checkpoint the ledger no longer stores, or another root at the same size.
    Each names the witness, both sizes and the first bad seq."""
    found = []
    for answer in held:
        if answer.size is None:
            continue
        if not answer.same_root:
            found.append(
                f"first bad seq {asked - 1} or below: witness {answer.name} cosigned another "
                f"tree at size {asked} than the ledger's checkpoint there: a fork or a rewrite"
            )
        elif answer.size > size:
            found.append(
                f"first bad seq {size}: witness {answer.name} cosigned size {answer.size}, "
                f"but the ledger holds {size} entries (newest checkpoint at size {asked}): "
                "rolled back"
            )
        elif answer.size > asked:
            found.append(
                f"first bad seq {answer.size - 1}: witness {answer.name} cosigned size "
                f"{answer.size}, but the newest checkpoint the ledger stores is at size "
                f"{asked}: later checkpoints were deleted"
            )
    return found
