"""The governed strategy: FedAvg that trains only as fedgov's round tickets allow.

Before each round it asks fedgov (through a ``GovernancePort``) to gate the round. On a
refusal it skips the round or stops the run as the run's ``on_refusal`` says; on a ticket
it sends train messages only to the ticket's nodes, with the ticket in the ConfigRecord.
After the round it hashes every reply canonically, refuses replies from nodes outside the
ticket, and reports hashes, counts and the aggregate's hash back to fedgov.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from training.flower.governance import (
    GovernancePort,
    RoundGrant,
    RoundRefusal,
    UpdateRecord,
)
from training.flower.ticket import Ticket
from training.flower.update_hash import update_hash

log = logging.getLogger("fedgov.flower.strategy")

# Metric keys the site reports that are evidence, not model quality.
COUNT_KEYS = ("num-examples", "records-used", "records-excluded")


class RunStopped(RuntimeError):
    """fedgov refused a round and the run's policy says stop."""


@dataclass
class RoundEvidence:
    """What the strategy saw in one round, kept for the ServerApp and for tests."""

    round_no: int
    ticket: Ticket | None = None
    refusal: RoundRefusal | None = None
    accepted: list[UpdateRecord] = field(default_factory=list)
    rejected: list[UpdateRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    aggregate_hash: str | None = None
    received: dict[str, ArrayRecord] = field(default_factory=dict)
    seconds_governance: float = 0.0


class TimedRounds:
    """Mixin: wall time of each round, from configure_train to the end of aggregate_train."""

    round_seconds: list[float]

    def configure_train(self, server_round, arrays, config, grid):
        self._round_started = time.perf_counter()
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):
        result = super().aggregate_train(server_round, replies)
        self.round_seconds.append(time.perf_counter() - self._round_started)
        return result


class TimedFedAvg(TimedRounds, FedAvg):
    """Plain FedAvg with round times: the baseline of ``bench/round_overhead.py``.

    Its train messages use ``train_message_type`` (``train.plain``), a handler only a
    benchmark federation registers: the sites' governed ``train`` refuses ticketless work.
    """

    def __init__(self, *, train_message_type: str = "train.plain", **kwargs) -> None:
        super().__init__(**kwargs)
        self.round_seconds = []
        self.train_message_type = train_message_type

    def _construct_messages(self, record, node_ids, message_type):
        if message_type == "train":
            message_type = self.train_message_type
        return super()._construct_messages(record, node_ids, message_type)


class GovernedFedAvg(FedAvg):
    """FedAvg under fedgov's gate. Federated evaluation is off by default (no ticket cost)."""

    def __init__(
        self,
        *,
        governance: GovernancePort,
        run_id: int,
        sample_timeout: float = 60.0,
        poll_interval: float = 0.2,
        keep_arrays: bool = False,
        round_offset: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        **fedavg_kwargs,
    ) -> None:
        fedavg_kwargs.setdefault("fraction_evaluate", 0.0)
        fedavg_kwargs.setdefault("min_train_nodes", 1)
        fedavg_kwargs.setdefault("min_available_nodes", 1)
        super().__init__(**fedavg_kwargs)
        self.governance = governance
        self.run_id = run_id
        self.sample_timeout = sample_timeout
        self.poll_interval = poll_interval
        self.keep_arrays = keep_arrays
        self.sleep = sleep
        # fedgov's round number is Flower's plus this (a run driven in slices).
        self.round_offset = round_offset
        self.evidence: dict[int, RoundEvidence] = {}
        self.round_seconds: list[float] = []

    # --- before the round ------------------------------------------------------------

    def _wait_for_nodes(self, grid: Grid, wanted: frozenset[int]) -> set[int]:
        """The ticket's nodes that are connected, waiting up to ``sample_timeout``."""
        deadline = time.monotonic() + self.sample_timeout
        while True:
            present = wanted & set(grid.get_node_ids())
            if present == wanted or time.monotonic() >= deadline:
                return set(present)
            self.sleep(self.poll_interval)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._round_started = time.perf_counter()
        server_round += self.round_offset
        evidence = RoundEvidence(round_no=server_round)
        self.evidence[server_round] = evidence
        started = time.perf_counter()
        answer = self.governance.request_round(run_id=self.run_id, round_no=server_round)
        evidence.seconds_governance += time.perf_counter() - started
        if isinstance(answer, RoundRefusal):
            evidence.refusal = answer
            reasons = "; ".join(
                f"{r.get('site') or 'round'} {r.get('rule_id')} ({r.get('article')}): "
                f"{r.get('reason')}"
                for r in answer.failed_rules
            )
            log.warning(
                "fedgov refused round %s: %s %s", server_round, answer.reason, reasons or ""
            )
            if answer.on_refusal == "stop":
                raise RunStopped(f"round {server_round} refused: {answer.reason}")
            return []
        assert isinstance(answer, RoundGrant)
        ticket = answer.ticket
        evidence.ticket = ticket
        wanted = frozenset(int(node) for node in ticket.node_ids)
        present = self._wait_for_nodes(grid, wanted)
        missing = sorted(wanted - present)
        if missing:
            log.warning("round %s: ticket nodes not connected: %s", server_round, missing)
        train_config = ConfigRecord(dict(config))
        train_config["server-round"] = server_round
        for key, value in ticket.to_config().items():
            train_config[key] = value
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: train_config})
        return self._construct_messages(record, sorted(present), "train")

    # --- after the round -------------------------------------------------------------

    def _record_of(self, msg: Message) -> UpdateRecord:
        content = msg.content
        arrays = content.array_records.get(self.arrayrecord_key)
        metrics = content.metric_records.get("metrics") or MetricRecord()
        return UpdateRecord(
            node_id=str(msg.metadata.src_node_id),
            update_hash=update_hash(arrays) if arrays is not None else "0" * 64,
            num_examples=int(metrics.get("num-examples", 0)),
            records_used=int(metrics.get("records-used", 0)),
            records_excluded=int(metrics.get("records-excluded", 0)),
            metrics={
                k: float(v)
                for k, v in metrics.items()
                if k not in COUNT_KEYS and isinstance(v, int | float)
            },
        )

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round += self.round_offset
        evidence = self.evidence.setdefault(server_round, RoundEvidence(round_no=server_round))
        ticket = evidence.ticket
        allowed = {int(n) for n in ticket.node_ids} if ticket else set()
        accepted_msgs: list[Message] = []
        for msg in replies:
            if msg.has_error():
                evidence.errors.append(f"node {msg.metadata.src_node_id}: {msg.error.reason}")
                continue
            record = self._record_of(msg)
            if msg.metadata.src_node_id not in allowed:
                log.warning("round %s: refused reply from node %s outside the ticket",
                            server_round, record.node_id)  # fmt: skip
                evidence.rejected.append(record)
                continue
            evidence.accepted.append(record)
            if self.keep_arrays:
                evidence.received[record.node_id] = msg.content[self.arrayrecord_key]
            accepted_msgs.append(msg)
        for reason in evidence.errors:
            log.warning("round %s: site refused or failed: %s", server_round, reason)
        arrays, metrics = super().aggregate_train(server_round, accepted_msgs)
        if arrays is not None:
            evidence.aggregate_hash = update_hash(arrays)
        if ticket is not None:
            started = time.perf_counter()
            self.governance.report_round(
                run_id=self.run_id,
                round_no=server_round,
                updates=evidence.accepted,
                rejected=evidence.rejected,
                aggregate_hash=evidence.aggregate_hash,
            )
            evidence.seconds_governance += time.perf_counter() - started
        if hasattr(self, "_round_started"):
            self.round_seconds.append(time.perf_counter() - self._round_started)
        return arrays, metrics
