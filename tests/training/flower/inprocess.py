"""An in-process Flower grid and a fake governance port: strategy and mod tests, no processes."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid

from fedgov_flower.governance import RoundGrant, RoundRefusal, UpdateRecord
from fedgov_flower.ticket import (
    TicketSite,
    exclusion_digest,
    key_id_of,
    parse_unverified,
    ticket_body,
)


class InProcessGrid(Grid):
    """Delivers each message to the ClientApp of its node, in this process.

    ``intruders`` are nodes that answer every round although nobody asked them.
    """

    def __init__(
        self, app, contexts: dict[int, Context], intruders: dict[int, Context] | None = None
    ):
        self.app = app
        self.contexts = contexts
        self.intruders = intruders or {}
        self.sent: list[Message] = []

    def set_run(self, run_id):  # pragma: no cover - part of the Grid interface
        pass

    @property
    def run(self):  # pragma: no cover
        raise NotImplementedError

    def create_message(
        self, content, message_type, dst_node_id, group_id, ttl=None
    ):  # pragma: no cover
        return Message(content=content, message_type=message_type, dst_node_id=dst_node_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages):  # pragma: no cover
        raise NotImplementedError

    def pull_messages(self, message_ids):  # pragma: no cover
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], *, timeout=None) -> Iterable[Message]:
        messages = list(messages)
        self.sent.extend(messages)
        replies = [self.app(m, self.contexts[m.metadata.dst_node_id]) for m in messages]
        if messages:
            template = messages[0]
            for node_id, context in self.intruders.items():
                probe = Message(
                    content=RecordDict(dict(template.content)),
                    message_type=template.metadata.message_type,
                    dst_node_id=node_id,
                )
                replies.append(self.app(probe, context))
        return replies


def site_context(
    node_id: int, site_id: int, slug: str, run_id: int, public_key_b64: str
) -> Context:
    return Context(
        run_id=1,
        node_id=node_id,
        node_config={
            "fedgov-site-id": site_id,
            "fedgov-site": slug,
            "fedgov-public-key": public_key_b64,
            # Each site keeps its used tickets in a fresh folder of its own.
            "fedgov-state-dir": tempfile.mkdtemp(prefix=f"fedgov-site-{slug}-"),
        },
        state=RecordDict(),
        run_config={"fedgov-run-id": run_id},
    )


@dataclass
class FakeGovernance:
    """Signs real tickets with its own Ed25519 key; refuses the rounds listed in ``refuse``."""

    run_id: int
    sites: list[TicketSite]
    refuse: dict[int, str] = field(default_factory=dict)
    on_refusal: str = "skip"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    reports: list[dict] = field(default_factory=list)
    excluded: dict[str, list[str]] = field(default_factory=dict)
    # Allow-lists by site slug; a site not named here gets no list (no consent-based data).
    allowed: dict[str, list[str]] = field(default_factory=dict)
    dp: dict | None = None
    context: dict | None = None
    # Every ticket request, as (round, message type, Flower run id).
    requests: list[tuple] = field(default_factory=list)

    @property
    def public_key_b64(self) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    def sign(
        self,
        round_no: int,
        *,
        sites=None,
        now=None,
        ttl=timedelta(minutes=10),
        run_id=None,
        message_type="train",
        flower_run_id="1",
        context=None,
    ):
        now = now or datetime.now(UTC).replace(microsecond=0)
        chosen = []
        for s in sites or self.sites:
            names = self.excluded.get(s.slug, [])
            allowed = self.allowed.get(s.slug)
            chosen.append(
                TicketSite(
                    s.site_id,
                    s.slug,
                    s.node_id,
                    exclusion_digest(names),
                    len(names),
                    allowed_digest=exclusion_digest(allowed) if allowed is not None else "",
                    allowed_count=len(allowed) if allowed is not None else 0,
                )
            )
        body = rfc8785.dumps(
            ticket_body(
                run_id=run_id or self.run_id,
                round_no=round_no,
                issued_at=now,
                expires_at=now + ttl,
                decision_hash="d" * 64,
                sites=chosen,
                dp=self.dp,
                message_type=message_type,
                flower_run_id=flower_run_id,
                context=context if context is not None else self.context,
            )
        )
        signature = base64.b64encode(self.key.sign(body)).decode()
        return parse_unverified(body.decode(), signature, key_id_of(self.key.public_key()))

    def request_round(self, *, run_id: int, round_no: int, message_type="train", flower_run_id=""):
        self.requests.append((round_no, message_type, str(flower_run_id)))
        if round_no in self.refuse:
            return RoundRefusal(
                run_id=run_id,
                round_no=round_no,
                reason=self.refuse[round_no],
                state="blocked",
                on_refusal=self.on_refusal,
                failed_rules=[{"site": "es-blogs", "rule_id": "consent", "article": "Art. 6(1)(a)",
                               "reason": self.refuse[round_no]}],
            )  # fmt: skip
        ticket = self.sign(
            round_no, message_type=message_type, flower_run_id=str(flower_run_id or "1")
        )
        return RoundGrant(ticket=ticket, on_refusal=self.on_refusal)

    def report_round(
        self,
        *,
        run_id,
        round_no,
        updates: list[UpdateRecord],
        rejected,
        aggregate_hash,
        dp=None,
        site_refusals=None,
        message_type="train",
    ):
        self.reports.append(
            {
                "message_type": message_type,
                "round": round_no,
                "updates": updates,
                "rejected": rejected,
                "aggregate": aggregate_hash,
                "dp": dp,
                "site_refusals": site_refusals or [],
            }
        )


class StaticExclusions:
    """An exclusion source that serves fixed lists by digest (stands in for fedgov's API)."""

    def __init__(self, lists: dict[str, list[str]]):
        self.by_digest = {exclusion_digest(v): frozenset(v) for v in lists.values()}
        self.by_digest[exclusion_digest([])] = frozenset()

    def get(self, *, run_id, round_no, slug, digest):
        from fedgov_flower.ticket import TicketRefused

        if digest not in self.by_digest:
            raise TicketRefused("exclusions_mismatch", "unknown digest")
        return self.by_digest[digest]
