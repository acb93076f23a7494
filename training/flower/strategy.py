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
from flwr.serverapp.strategy import FedAvg, FedProx

from fedgov_flower.dp import DpPlan, DpRelease
from fedgov_flower.governance import (
    GovernancePort,
    RoundGrant,
    RoundRefusal,
    UpdateRecord,
)
from fedgov_flower.governed import (
    GovernedStrategy,
    RunStopped,
    connected_nodes,
    flower_run_id,
    reply_record,
    site_refusal,
)
from fedgov_flower.ticket import Ticket
from fedgov_flower.update_hash import update_hash

log = logging.getLogger("fedgov.flower.strategy")

# The server-set weight under DP (uniform averaging); never read from a site.
DP_WEIGHT_KEY = "fedgov-dp-weight"


@dataclass
class RoundEvidence:
    """What the strategy saw in one round, kept for the ServerApp and for tests."""

    round_no: int
    ticket: Ticket | None = None
    refusal: RoundRefusal | None = None
    accepted: list[UpdateRecord] = field(default_factory=list)
    rejected: list[UpdateRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Sites' own refusals (``fedgov:<code>: reason`` error replies), reported to fedgov.
    refusals: list[dict] = field(default_factory=list)
    aggregate_hash: str | None = None
    # Under central DP: the plain average before Flower's wrapper added noise.
    aggregate_hash_before_noise: str | None = None
    dp: DpRelease | None = None
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


class _PlainTrain(TimedRounds):
    """A benchmark baseline: round times, and train messages sent as ``train_message_type``
    (``train.plain``), a handler only a benchmark federation registers; the sites'
    governed ``train`` refuses ticketless work."""

    def __init__(self, *, train_message_type: str = "train.plain", **kwargs) -> None:
        super().__init__(**kwargs)
        self.round_seconds = []
        self.train_message_type = train_message_type

    def _construct_messages(self, record, node_ids, message_type):
        if message_type == "train":
            message_type = self.train_message_type
        return super()._construct_messages(record, node_ids, message_type)


class TimedFedAvg(_PlainTrain, FedAvg):
    """Plain FedAvg with round times: the baseline of ``bench/round_overhead.py``."""


class TimedFedProx(_PlainTrain, FedProx):
    """Plain FedProx with round times: the baseline of the wrapped-strategy benchmark."""


class TimedGoverned(TimedRounds, GovernedStrategy):
    """``fedgov_flower.governed(strategy)`` with round times (the benchmark's wrapped side)."""

    def __init__(self, strategy, **kwargs) -> None:
        super().__init__(strategy, **kwargs)
        self.round_seconds = []


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
        dp_plan: DpPlan | None = None,
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
        # The mechanism the run applies (None: no DP). Central and client-side clipping
        # run inside Flower's wrappers (``training.flower.dp_strategy``), which set
        # ``inside_dp_wrapper``; local DP runs at the sites and needs no wrapper.
        self.dp_plan = dp_plan
        self.inside_dp_wrapper = False

    # --- before the round ------------------------------------------------------------

    def _wait_for_nodes(self, grid: Grid, wanted: frozenset[int]) -> set[int]:
        """The ticket's nodes that are connected, waiting up to ``sample_timeout``."""
        return connected_nodes(
            grid, wanted, timeout=self.sample_timeout, poll=self.poll_interval, sleep=self.sleep
        )

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._round_started = time.perf_counter()
        server_round += self.round_offset
        evidence = RoundEvidence(round_no=server_round)
        self.evidence[server_round] = evidence
        started = time.perf_counter()
        answer = self.governance.request_round(
            run_id=self.run_id,
            round_no=server_round,
            message_type="train",
            flower_run_id=flower_run_id(grid),
        )
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
        self.check_dp_plan(server_round, ticket)
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

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Federated evaluation is not part of fedgov's demo: no message goes out, so no
        site reads data without a ticket. An app that evaluates at the sites wraps its
        strategy with ``fedgov_flower.governed``, which gates evaluate like train."""
        return []

    # --- after the round -------------------------------------------------------------

    def _record_of(self, msg: Message) -> UpdateRecord:
        arrays = msg.content.array_records.get(self.arrayrecord_key)
        metrics = msg.content.metric_records.get("metrics") or MetricRecord()
        digest = update_hash(arrays) if arrays is not None else "0" * 64
        return reply_record(msg, digest, metrics)

    def admit_replies(self, server_round: int, replies: Iterable[Message]) -> list[Message]:
        """Hash every reply as received, refuse nodes outside the ticket, keep the evidence.

        ``server_round`` is fedgov's number (offset applied). The hash is taken before any
        server-side clipping or noise: it is the update the site sent.
        """
        evidence = self.evidence.setdefault(server_round, RoundEvidence(round_no=server_round))
        ticket = evidence.ticket
        allowed = {int(n) for n in ticket.node_ids} if ticket else set()
        accepted_msgs: list[Message] = []
        for msg in replies:
            if msg.has_error():
                evidence.errors.append(f"node {msg.metadata.src_node_id}: {msg.error.reason}")
                refusal = site_refusal(msg)
                if refusal is not None:
                    evidence.refusals.append(refusal)
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
        return accepted_msgs

    def average(
        self, server_round: int, replies: list[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """FedAvg of admitted replies; uniform (1/n each) while a DP plan is in force.

        Under DP the noise is calibrated to a sensitivity of C/n, which holds only if no
        update weighs more than 1/n; example counts come from the sites and would let one
        site's weight (and so its influence) grow. The weight is set here, server-side.
        """
        if self.dp_plan is not None:
            for msg in replies:
                metrics = msg.content.metric_records.get("metrics") or MetricRecord()
                metrics[DP_WEIGHT_KEY] = 1
                msg.content["metrics"] = metrics
            saved, self.weighted_by_key = self.weighted_by_key, DP_WEIGHT_KEY
            try:
                arrays, metrics = super().aggregate_train(server_round, replies)
            finally:
                self.weighted_by_key = saved
            if metrics is not None and DP_WEIGHT_KEY in metrics:
                del metrics[DP_WEIGHT_KEY]
        else:
            arrays, metrics = super().aggregate_train(server_round, replies)
        evidence = self.evidence.setdefault(server_round, RoundEvidence(round_no=server_round))
        evidence.aggregate_hash_before_noise = update_hash(arrays) if arrays is not None else None
        return arrays, metrics

    def finish_round(self, server_round: int, arrays: ArrayRecord | None) -> None:
        """Hash the aggregate the round releases and report the round to fedgov."""
        evidence = self.evidence.setdefault(server_round, RoundEvidence(round_no=server_round))
        if arrays is not None:
            evidence.aggregate_hash = update_hash(arrays)
        if evidence.ticket is not None:
            started = time.perf_counter()
            extra: dict = {"dp": evidence.dp.as_json()} if evidence.dp is not None else {}
            if evidence.refusals:
                extra["site_refusals"] = evidence.refusals
            self.governance.report_round(
                run_id=self.run_id,
                round_no=server_round,
                updates=evidence.accepted,
                rejected=evidence.rejected,
                aggregate_hash=evidence.aggregate_hash,
                **extra,
            )
            evidence.seconds_governance += time.perf_counter() - started
        if hasattr(self, "_round_started"):
            self.round_seconds.append(time.perf_counter() - self._round_started)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round += self.round_offset
        if self.inside_dp_wrapper:
            # The DP wrapper admitted and hashed the replies and will report the round.
            return self.average(server_round, list(replies))
        accepted_msgs = self.admit_replies(server_round, replies)
        arrays, metrics = self.average(server_round, accepted_msgs)
        evidence = self.evidence[server_round]
        if self.dp_plan is not None and self.dp_plan.mechanism == "local" and accepted_msgs:
            # Local DP: each site's LocalDpMod clipped and noised its update before it
            # left the site; the aggregate carries no further noise.
            evidence.dp = DpRelease(
                mechanism=self.dp_plan.mechanism,
                clipping_norm=self.dp_plan.clipping_norm,
                noise_multiplier=self.dp_plan.noise_multiplier,
                sampled_clients=len(accepted_msgs),
                total_clients=self.dp_population(server_round),
                noise_std=self.dp_plan.aggregate_noise_std(len(accepted_msgs)),
                aggregate_hash_before_noise=None,
                aggregate_hash=update_hash(arrays) if arrays is not None else None,
            )
        self.finish_round(server_round, arrays)
        return arrays, metrics

    def check_dp_plan(self, server_round: int, ticket: Ticket) -> None:
        """The mechanism this strategy applies must be the one fedgov signed and accounted.

        A ticket with a DP plan run by a strategy without one (or another one) would let
        fedgov's ledger claim noise that was never added; the round does not start.
        """
        signed = DpPlan.from_ticket(ticket.dp)
        if signed is None and self.dp_plan is None:
            return
        if self.dp_plan is None or not self.dp_plan.same_as(signed):
            raise RunStopped(
                f"round {server_round}: the ticket's DP plan {ticket.dp} is not the one "
                f"this strategy applies ({self.dp_plan})"
            )

    def dp_population(self, server_round: int) -> int:
        """Total clients of the run as the ticket's DP plan states it (sampled ones at least)."""
        evidence = self.evidence.get(server_round)
        ticket = evidence.ticket if evidence else None
        stated = int((ticket.dp or {}).get("population_size", 0)) if ticket else 0
        return max(stated, len(ticket.sites) if ticket else 0)
