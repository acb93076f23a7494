"""Round tickets as a site sees them: parse and verify a signed ticket (stdlib + cryptography).

fedgov signs the RFC 8785 canonical JSON ``body`` with Ed25519; a site checks the
signature against fedgov's public key, then the run, the round, the expiry and that its
own site id is named, before it reads any local data. No Django and no flwr here: a site
or an auditor can run this module alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# 2: each site also carries the digest and size of its allow-list (Art. 6(1)(a), 7).
# 3: the ticket names the one message type it allows (train or evaluate) and the Flower
# run it belongs to, so a ticket cannot be replayed on another kind of message or in a
# later Flower run (issue 16: "tickets bound to one use").
TICKET_SCHEMA = 3
MESSAGE_TYPES = ("train", "evaluate")

# Keys of the ticket inside a Flower ConfigRecord (flat str values travel unchanged).
CONFIG_BODY = "fedgov.ticket.body"
CONFIG_SIGNATURE = "fedgov.ticket.signature"
CONFIG_KEY_ID = "fedgov.ticket.key_id"


class TicketRefused(Exception):
    """The ticket does not allow this site to train this round; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class TicketSite:
    """One site the ticket lets train, with its Flower node and its subject lists' digests.

    ``allowed_digest`` is the SHA-256 of the only subjects the site may train on (consent
    valid at the round's instant); "" when none of its datasets is consent-based, and then
    no allow-list applies.
    """

    site_id: int
    slug: str
    node_id: str
    exclusion_digest: str
    excluded_count: int
    allowed_digest: str = ""
    allowed_count: int = 0


@dataclass(frozen=True)
class Ticket:
    """A verified (or freshly issued) ticket: the parsed body plus its signature."""

    run_id: int
    round_no: int
    issued_at: datetime
    expires_at: datetime
    decision_hash: str
    sites: tuple[TicketSite, ...]
    body: str
    signature: str
    key_id: str
    # The differential-privacy plan fedgov accounted for this round (``fedgov_flower.dp``
    # reads it); None when the run applies no mechanism.
    dp: dict[str, Any] | None = None
    # What the ticket allows: one Flower message type and one Flower run (ids as text).
    message_type: str = "train"
    flower_run_id: str = ""
    # Facts a site's own policy checks (``fedgov_flower.site_policy``): the run's purpose
    # code, the aggregator's country and the round's approvals; None when not stated.
    context: dict[str, Any] | None = None

    @property
    def ticket_id(self) -> str:
        """SHA-256 of the signed body: what a site remembers to refuse a second use."""
        return hashlib.sha256(self.body.encode("utf-8")).hexdigest()

    def site(self, site_id: int) -> TicketSite | None:
        return next((s for s in self.sites if s.site_id == site_id), None)

    def site_by_slug(self, slug: str) -> TicketSite | None:
        return next((s for s in self.sites if s.slug == slug), None)

    def site_by_node(self, node_id: int | str) -> TicketSite | None:
        return next((s for s in self.sites if s.node_id == str(node_id)), None)

    @property
    def node_ids(self) -> frozenset[str]:
        return frozenset(s.node_id for s in self.sites)

    def to_config(self) -> dict[str, str]:
        """The three ConfigRecord entries that carry this ticket to a site."""
        return {
            CONFIG_BODY: self.body,
            CONFIG_SIGNATURE: self.signature,
            CONFIG_KEY_ID: self.key_id,
        }


def exclusion_digest(pseudonyms: Iterable[str]) -> str:
    """SHA-256 hex of the sorted pseudonyms joined by newlines; same as the gate's digest."""
    return hashlib.sha256("\n".join(sorted(pseudonyms)).encode("utf-8")).hexdigest()


def utc_text(value: datetime) -> str:
    """Fixed-width UTC text (``2026-01-31T12:00:00Z``) used inside ticket bodies."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ticket_body(
    *,
    run_id: int,
    round_no: int,
    issued_at: datetime,
    expires_at: datetime,
    decision_hash: str,
    sites: Iterable[TicketSite],
    dp: dict[str, Any] | None = None,
    message_type: str = "train",
    flower_run_id: str = "",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON object fedgov canonicalises (RFC 8785) and signs.

    ``dp`` (mechanism, clipping norm, noise multiplier, planned cumulative ε, ...) is
    signed with the rest, so a site can hold the aggregator to it; it is left out when
    the run applies no mechanism, keeping such bodies as they were. ``message_type``
    (``train`` or ``evaluate``) and ``flower_run_id`` bind the ticket to one use.
    """
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"message_type must be one of {MESSAGE_TYPES}, not {message_type!r}")
    body = {
        "schema": TICKET_SCHEMA,
        "run_id": run_id,
        "round": round_no,
        "issued_at": utc_text(issued_at),
        "expires_at": utc_text(expires_at),
        "decision_hash": decision_hash,
        "message_type": message_type,
        "flower_run_id": str(flower_run_id),
        # Node ids are strings: Flower's are 64-bit and would lose digits as JSON numbers.
        "sites": [
            {
                "site_id": s.site_id,
                "slug": s.slug,
                "node_id": s.node_id,
                "exclusion_digest": s.exclusion_digest,
                "excluded_count": s.excluded_count,
                "allowed_digest": s.allowed_digest,
                "allowed_count": s.allowed_count,
            }
            for s in sorted(sites, key=lambda s: s.site_id)
        ],
    }
    if dp is not None:
        body["dp"] = dict(dp)
    if context is not None:
        body["context"] = dict(context)
    return body


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """fedgov's public key from PEM, or from base64 of the 32 raw bytes."""
    data = text.encode() if isinstance(text, str) else text
    if b"BEGIN PUBLIC KEY" in data:
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the public key is not an Ed25519 key")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _parse_time(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise TicketRefused("malformed", f"{field} is not a time")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise TicketRefused("malformed", f"{field} is not a UTC time: {value!r}") from exc


def schema_refusal(schema: object) -> TicketRefused | None:
    """The refusal for a ticket body of another schema than this package reads, or None.

    Schema 2 tickets (before tickets named their message type and Flower run) can be
    stored at fedgov or replayed; they are refused with what to do, never half-parsed.
    """
    if schema == TICKET_SCHEMA:
        return None
    if isinstance(schema, int) and not isinstance(schema, bool) and schema < TICKET_SCHEMA:
        return TicketRefused(
            "outdated_schema",
            f"the ticket has schema {schema}, which is no longer accepted (this site reads "
            f"schema {TICKET_SCHEMA}: a ticket bound to one message type and one Flower "
            "run); ask fedgov for a new ticket for this round",
        )
    return TicketRefused(
        "unknown_schema",
        f"the ticket has schema {schema!r}; this site's fedgov-flower reads schema "
        f"{TICKET_SCHEMA}: upgrade fedgov-flower at the site",
    )


def ticket_schema(body: str) -> object:
    """The ``schema`` a ticket body declares (None when it is not a JSON object)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("schema") if isinstance(data, dict) else None


def _parse(body: str, signature: str, key_id: str) -> Ticket:
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise TicketRefused("malformed", "the ticket body is not a JSON object")
        refusal = schema_refusal(data.get("schema"))
        if refusal is not None:
            raise refusal
        sites = tuple(
            TicketSite(
                site_id=int(s["site_id"]),
                slug=str(s["slug"]),
                node_id=str(s["node_id"]),
                exclusion_digest=str(s["exclusion_digest"]),
                excluded_count=int(s["excluded_count"]),
                allowed_digest=str(s["allowed_digest"]),
                allowed_count=int(s["allowed_count"]),
            )
            for s in data["sites"]
        )
        dp = data.get("dp")
        if dp is not None and not isinstance(dp, dict):
            raise TicketRefused("malformed", "dp is not an object")
        context = data.get("context")
        if context is not None and not isinstance(context, dict):
            raise TicketRefused("malformed", "context is not an object")
        return Ticket(
            run_id=int(data["run_id"]),
            round_no=int(data["round"]),
            issued_at=_parse_time(data["issued_at"], "issued_at"),
            expires_at=_parse_time(data["expires_at"], "expires_at"),
            decision_hash=str(data["decision_hash"]),
            sites=sites,
            body=body,
            signature=signature,
            key_id=key_id,
            dp=dp,
            message_type=str(data["message_type"]),
            flower_run_id=str(data["flower_run_id"]),
            context=context,
        )
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, TicketRefused):
            raise
        raise TicketRefused("malformed", f"not a ticket body: {exc}") from exc


def verify_ticket(
    *,
    body: str,
    signature: str,
    key_id: str,
    public_keys: Mapping[str, Ed25519PublicKey] | Ed25519PublicKey,
    run_id: int | None = None,
    round_no: int | None = None,
    site_id: int | None = None,
    now: datetime | None = None,
    message_type: str | None = None,
    flower_run_id: str | int | None = None,
) -> Ticket:
    """Check a ticket and return it parsed; raise ``TicketRefused`` with a code otherwise.

    Codes: ``unknown_key``, ``bad_signature``, ``malformed``, ``outdated_schema``,
    ``unknown_schema``, ``expired``, ``not_yet_valid``,
    ``wrong_run``, ``wrong_round``, ``site_not_named``, ``wrong_message_type``,
    ``wrong_flower_run`` (also for a ticket bound to no Flower run). The signature is checked first,
    so nothing of an unsigned body is trusted.
    """
    if isinstance(public_keys, Ed25519PublicKey):
        public_keys = {key_id_of(public_keys): public_keys}
    key = public_keys.get(key_id)
    if key is None:
        raise TicketRefused("unknown_key", f"no fedgov public key with id {key_id!r}")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
        key.verify(raw_signature, body.encode("utf-8"))
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise TicketRefused("bad_signature", "the signature does not match the body") from exc
    ticket = _parse(body, signature, key_id)
    moment = now or datetime.now(UTC)
    if moment >= ticket.expires_at:
        raise TicketRefused("expired", f"ticket expired at {utc_text(ticket.expires_at)}")
    # Small clock skew between fedgov and a site must not refuse a fresh ticket.
    if (ticket.issued_at - moment).total_seconds() > 300:
        raise TicketRefused("not_yet_valid", f"ticket issued in the future ({ticket.issued_at})")
    if run_id is not None and ticket.run_id != run_id:
        raise TicketRefused("wrong_run", f"ticket is for run {ticket.run_id}, not {run_id}")
    if round_no is not None and ticket.round_no != round_no:
        raise TicketRefused("wrong_round", f"ticket is for round {ticket.round_no}, not {round_no}")
    if site_id is not None and ticket.site(site_id) is None:
        raise TicketRefused("site_not_named", f"ticket does not name site {site_id}")
    if message_type is not None and ticket.message_type != message_type:
        raise TicketRefused(
            "wrong_message_type",
            f"ticket allows {ticket.message_type} messages, not {message_type}",
        )
    if flower_run_id is not None and (
        not ticket.flower_run_id or ticket.flower_run_id != str(flower_run_id)
    ):
        raise TicketRefused(
            "wrong_flower_run",
            f"ticket is for Flower run {ticket.flower_run_id or '(none)'}, not {flower_run_id}",
        )
    return ticket


def parse_unverified(body: str, signature: str = "", key_id: str = "") -> Ticket:
    """Parse a ticket fedgov just returned over TLS, for the server side's routing only.

    The server-side strategy uses it to pick nodes; the sites verify the signature.
    """
    return _parse(body, signature, key_id)
