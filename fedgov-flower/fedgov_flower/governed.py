"""``governed(strategy)``: any Flower strategy, trained and evaluated only under fedgov tickets.

The wrapper is itself a Flower ``Strategy``: Flower's own ``Strategy.start`` drives it, so
the rounds, the model carried between them and the user's evaluate functions stay the
strategy's. Around each step it adds fedgov's governance:

- ``configure_train`` and ``configure_evaluate``: ask fedgov for a ticket bound to this
  message type and this Flower run; on a refusal send nothing (skip the round, or stop
  the run with ``RunStopped`` as the run's ``on_refusal`` says); otherwise let the
  wrapped strategy choose among the ticket's connected nodes only (it sees a grid that
  lists no other node) and attach the signed ticket to every message.
- ``aggregate_train`` and ``aggregate_evaluate``: hash every reply as received (the
  canonical update hash for arrays, SHA-256 of canonical JSON for metrics), drop replies
  from nodes outside the ticket and replies that do not show the ticket's subject list
  was applied, let the wrapped strategy aggregate what is left, hash the aggregate and
  report it all to fedgov. A refused round returns no arrays, so Flower keeps the
  previous model: nothing untrained is ever passed off as a round's result.
- Central DP (the ticket's ``dp`` plans ``central`` or ``client-clipping``): Flower's own
  ``DifferentialPrivacyServerSideFixedClipping`` / ``...ClientSideFixedClipping``, built
  with the ticket's C and z, clip and noise the uniform mean of the accepted updates
  (``_UniformMean``); the wrapped strategy aggregates that release. The mean's hash
  before noise and the released model's hash go to fedgov in the round's ``DpRelease``,
  which is what fedgov's ledger accounts ε from; a round that released nothing reports
  no release and spends nothing. ``local`` DP is the sites' ``LocalDpMod`` (``mods()``).

Run config it reads (``fedgov.*`` keys, so they never collide with the app's own):
``fedgov.run-id``, ``fedgov.api``, ``fedgov.round-offset`` (fedgov's round is Flower's
plus this), ``fedgov.expected-nodes`` (ask that many nodes which site they serve and bind
them in fedgov before the first round), ``fedgov.sample-timeout``. The service token
comes from ``FEDGOV_SERVICE_TOKEN`` or the file ``FEDGOV_SERVICE_TOKEN_FILE``, never from
the run config, which Flower logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedgov_flower.client_mod import IDENTIFY, REPLY_RECORD
from fedgov_flower.dp import DpError
from fedgov_flower.governance import (
    GovernancePort,
    RestGovernance,
    RoundGrant,
    RoundRefusal,
    UpdateRecord,
)
from fedgov_flower.ticket import Ticket
from fedgov_flower.update_hash import update_hash
from fedgov_flower.values import as_float, as_int

log = logging.getLogger("fedgov.flower.governed")

# Metric keys the site reports that are evidence, not model quality.
COUNT_KEYS = ("num-examples", "records-used", "records-excluded")
TICKET_ROUND_KEY = "fedgov.round"


class RunStopped(RuntimeError):
    """fedgov refused a round and the run's policy says stop."""


def site_refusal(msg: Message) -> dict[str, Any] | None:
    """A site mod's refusal (``fedgov:<code>: reason``) as ``{node_id, code, reason}``."""
    reason = str(msg.error.reason or "")
    if not reason.startswith("fedgov:"):
        return None
    code, _, text = reason[len("fedgov:") :].partition(": ")
    return {"node_id": str(msg.metadata.src_node_id), "code": code[:64], "reason": text[:500]}


def metrics_hash(metrics: MetricRecord | None) -> str:
    """SHA-256 of the sorted-key JSON of an evaluate reply's metrics (numbers and lists)."""
    data = {k: v for k, v in (metrics or {}).items()}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def flower_run_id(grid: Grid) -> str:
    """The Flower run this ServerApp serves: the id Flower stamps on every message."""
    from flwr.supercore.task_identity import TaskIdentity

    try:
        return str(TaskIdentity.run_id)
    except RuntimeError:
        return str(grid.run.run_id)


def connected_nodes(
    grid: Grid,
    wanted: frozenset[int],
    *,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None],
) -> set[int]:
    """The nodes of ``wanted`` that are connected, waiting up to ``timeout`` for the rest."""
    deadline = time.monotonic() + timeout
    while True:
        present = wanted & set(grid.get_node_ids())
        if present == wanted or time.monotonic() >= deadline:
            return set(present)
        sleep(poll)


def _count(metrics: MetricRecord, key: str) -> int | None:
    """A count the site's mod reported; None when it reported none (fedgov refuses that)."""
    value = metrics.get(key)
    return int(value) if isinstance(value, int | float) else None


def reply_record(msg: Message, digest: str, metrics: MetricRecord) -> UpdateRecord:
    """The evidence of one site reply: its hash, the counts and subject-list digests the
    site's mod reported (the data contract), and its quality metrics."""
    fedgov = msg.content.config_records.get(REPLY_RECORD)
    return UpdateRecord(
        node_id=str(msg.metadata.src_node_id),
        update_hash=digest,
        num_examples=as_int(metrics.get("num-examples", 0) or 0),
        records_used=_count(metrics, "records-used"),
        records_excluded=_count(metrics, "records-excluded"),
        metrics={
            k: float(v)
            for k, v in metrics.items()
            if k not in COUNT_KEYS and isinstance(v, int | float)
        },
        filter_digest=str(fedgov.get("filter-digest", "")) if fedgov else "",
        subjects_digest=str(fedgov.get("subjects-digest", "")) if fedgov else "",
    )


class _TicketGrid:
    """The grid as the wrapped strategy sees it: only the ticket's connected nodes exist."""

    def __init__(self, grid: Grid, nodes: list[int]) -> None:
        self._grid = grid
        self._nodes = nodes

    def get_node_ids(self) -> list[int]:
        return list(self._nodes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class _UniformMean(Strategy):
    """What Flower's DP wrapper noises: the uniform mean of the (clipped) updates.

    Flower's std z·C/n is calibrated to the sensitivity C/n of a mean in which every
    update weighs 1/n (Flower's accounted path refuses anything else,
    ``DifferentialPrivacyFixedClippingBase._validate_uniform_weights``). The user's
    strategy may weigh by example counts (FedAvg, FedProx) or step a server optimiser on
    the mean (FedAdam): its aggregate is not that mean, and noise added after it would be
    calibrated to nothing. So the release is this mean, noised; the user's strategy then
    aggregates that one release, which is post-processing and spends no further privacy
    (Dwork & Roth, The Algorithmic Foundations of Differential Privacy, Prop. 2.1).
    Configuring stays the user's strategy's.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.hash_before_noise: str | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.strategy.summary()

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        records = [next(iter(m.content.array_records.values()), None) for m in replies]
        if not records or any(r is None for r in records):
            return None, None
        keys = list(records[0].keys())  # type: ignore[union-attr]
        if any(list(r.keys()) != keys for r in records):  # type: ignore[union-attr]
            log.warning("round %s: the updates do not share one set of arrays", server_round)
            return None, None
        share = 1.0 / len(records)
        mean = {}
        for key in keys:
            first = records[0][key].numpy()  # type: ignore[index]
            total = np.zeros(first.shape, dtype=np.float64)
            for record in records:
                total += record[key].numpy()  # type: ignore[index]
            mean[key] = Array(np.asarray(total * share, dtype=first.dtype))
        arrays = ArrayRecord(mean)
        self.hash_before_noise = update_hash(arrays)
        return arrays, None

    @staticmethod
    def as_reply(accepted: list[Message], released: ArrayRecord, strategy: Strategy) -> Message:
        """The first accepted reply (already hashed) carrying the release and the uniform
        mean of every reply's numeric metrics, with a weight of 1 so that a weighting
        strategy passes the release on unchanged."""
        template = accepted[0]
        content = template.content
        content[next(iter(content.array_records))] = released
        metrics_key = next(iter(content.metric_records), "metrics")
        each = [next(iter(m.content.metric_records.values()), MetricRecord()) for m in accepted]
        shared = [
            k for k, v in each[0].items()
            if isinstance(v, int | float) and all(isinstance(r.get(k), int | float) for r in each)
        ]  # fmt: skip
        metrics = MetricRecord({k: sum(as_float(r[k]) for r in each) / len(each) for k in shared})
        metrics[str(getattr(strategy, "weighted_by_key", "num-examples"))] = 1
        content[metrics_key] = metrics
        return template


def central_dp(dp: dict[str, Any] | None, strategy: Strategy) -> Strategy | None:
    """Flower's wrapper for the ticket's central mechanism around ``strategy``, or None
    when the ticket plans no central DP. Raises ``DpError`` for a plan it cannot apply."""
    from flwr.serverapp.strategy import (
        DifferentialPrivacyClientSideFixedClipping,
        DifferentialPrivacyServerSideFixedClipping,
    )

    from fedgov_flower.dp import DpPlan, Mechanism

    if not dp or dp.get("mechanism") in (None, Mechanism.NONE, Mechanism.LOCAL):
        return None
    plan = DpPlan.from_ticket(dp)
    assert plan is not None
    wrapper = {
        Mechanism.CENTRAL: DifferentialPrivacyServerSideFixedClipping,
        Mechanism.CLIENT_CLIPPING: DifferentialPrivacyClientSideFixedClipping,
    }[Mechanism(plan.mechanism)]
    # Built without Flower's accountant: fedgov accounts each release it is told of, in
    # its ledger, with the same Flower accountant (fedgov_flower.dp.budget_check).
    # num_sampled_clients is set to the number of updates averaged before aggregating.
    return wrapper(_UniformMean(strategy), plan.noise_multiplier, plan.clipping_norm, 1)


@dataclass
class StageEvidence:
    """What the wrapper saw in one train or evaluate step of one round."""

    ticket: Ticket | None = None
    refusal: RoundRefusal | None = None
    sent_to: list[int] = field(default_factory=list)
    accepted: list[UpdateRecord] = field(default_factory=list)
    rejected: list[tuple[UpdateRecord, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    aggregate_hash: str | None = None
    # Central DP: Flower's wrapper for this round, the model it clips against, and the
    # release as applied (None until an aggregate was actually released).
    central: Any = None
    current: ArrayRecord | None = None
    dp_release: dict[str, Any] | None = None
    release_hash: str | None = None


@dataclass
class RoundLog:
    round_no: int
    train: StageEvidence = field(default_factory=StageEvidence)
    evaluate: StageEvidence = field(default_factory=StageEvidence)


class GovernedStrategy(Strategy):
    """Wraps ``strategy`` (FedAvg, FedProx, FedAdam, Krum...) under fedgov's tickets."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        governance: GovernancePort,
        run_id: int,
        round_offset: int = 0,
        sample_timeout: float = 60.0,
        poll_interval: float = 0.2,
        expected_nodes: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(strategy, GovernedStrategy):
            raise TypeError("the strategy is already governed")
        self.strategy = strategy
        self.governance = governance
        self.run_id = run_id
        self.round_offset = round_offset
        self.sample_timeout = sample_timeout
        self.poll_interval = poll_interval
        self.expected_nodes = expected_nodes
        self.sleep = sleep
        self.rounds: dict[int, RoundLog] = {}
        self.registered: dict[str, int] | None = None

    # --- plumbing --------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Anything else (weighted_by_key, proximal_mu, ...) reads as the wrapped strategy's.
        if name == "strategy":
            raise AttributeError(name)
        return getattr(self.strategy, name)

    def summary(self) -> None:
        log.info("\t├── governed by fedgov (run %s)", self.run_id)
        self.strategy.summary()

    def _log(self, server_round: int) -> RoundLog:
        number = server_round + self.round_offset
        return self.rounds.setdefault(number, RoundLog(round_no=number))

    def _wait_for_nodes(self, grid: Grid, wanted: frozenset[int]) -> list[int]:
        present = connected_nodes(
            grid, wanted, timeout=self.sample_timeout, poll=self.poll_interval, sleep=self.sleep
        )
        return sorted(present)

    def _minimum(self, kind: str) -> int:
        """The fewest nodes the wrapped strategy waits for (Flower's ``sample_nodes``
        would wait for them forever)."""
        return max(
            int(getattr(self.strategy, "min_available_nodes", 0) or 0),
            int(getattr(self.strategy, f"min_{kind}_nodes", 0) or 0),
        )

    # --- before each step ------------------------------------------------------------

    def _configure(
        self, kind: str, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        entry = self._log(server_round)
        stage = getattr(entry, kind)
        if kind == "evaluate" and entry.train.ticket is None:
            # The round did not train under a ticket: nothing is evaluated either.
            return []
        if float(getattr(self.strategy, f"fraction_{kind}", 1.0)) == 0.0:
            return []
        if self.expected_nodes and self.registered is None:
            self.registered = register_nodes(
                grid, self.governance, expected=self.expected_nodes, timeout=self.sample_timeout
            )
        answer = self.governance.request_round(
            run_id=self.run_id,
            round_no=entry.round_no,
            message_type=kind,
            flower_run_id=flower_run_id(grid),
        )
        if isinstance(answer, RoundRefusal):
            stage.refusal = answer
            reasons = "; ".join(
                f"{r.get('site') or 'round'} {r.get('rule_id')} ({r.get('article')}): "
                f"{r.get('reason')}"
                for r in answer.failed_rules
            )
            log.warning("fedgov refused %s of round %s: %s %s", kind, entry.round_no,
                        answer.reason, reasons)  # fmt: skip
            if answer.on_refusal == "stop":
                raise RunStopped(f"round {entry.round_no} refused: {answer.reason}")
            return []
        assert isinstance(answer, RoundGrant)
        ticket = answer.ticket
        central = None
        if kind == "train":
            try:
                central = central_dp(ticket.dp, self.strategy)
            except DpError as exc:
                # Nothing sent: a plan the wrapper cannot apply must not become a round
                # whose ledger entry claims noise that was never added.
                raise RunStopped(f"round {entry.round_no}: {exc}") from exc
        present = self._wait_for_nodes(grid, frozenset(int(n) for n in ticket.node_ids))
        if len(present) < self._minimum(kind):
            stage.refusal = RoundRefusal(
                run_id=self.run_id,
                round_no=entry.round_no,
                reason=f"{len(present)} of the ticket's nodes are connected; the strategy "
                f"needs {self._minimum(kind)}",
            )
            log.warning("round %s %s: %s", entry.round_no, kind, stage.refusal.reason)
            return []
        stage.ticket = ticket
        stage.central = central
        stage.current = arrays
        # Under central DP, Flower's wrapper configures (it keeps the round's model to clip
        # against, or puts the clipping norm in the config for the sites' fixedclipping_mod).
        configure = getattr(central or self.strategy, f"configure_{kind}")
        messages = list(configure(server_round, arrays, config, _TicketGrid(grid, present)))
        allowed = set(present)
        sent = []
        for msg in messages:
            if msg.metadata.dst_node_id not in allowed:
                log.warning("round %s: dropped a %s message to node %s outside the ticket",
                            entry.round_no, kind, msg.metadata.dst_node_id)  # fmt: skip
                continue
            content = msg.content
            carried = content.config_records.get("config")
            ticketed = ConfigRecord(dict(carried) if carried is not None else {})
            ticketed.update(ticket.to_config())
            ticketed[TICKET_ROUND_KEY] = entry.round_no
            # One RecordDict may be shared by every message: replace, never mutate, the
            # ConfigRecord the strategy passed (it may be the caller's train_config).
            content["config"] = ticketed
            sent.append(msg)
        stage.sent_to = [m.metadata.dst_node_id for m in sent]
        return sent

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self._configure("train", server_round, arrays, config, grid)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self._configure("evaluate", server_round, arrays, config, grid)

    # --- after each step -------------------------------------------------------------

    def _record(self, msg: Message, kind: str) -> UpdateRecord:
        content = msg.content
        metrics = content.metric_records.get("metrics")
        if metrics is None and content.metric_records:
            metrics = next(iter(content.metric_records.values()))
        metrics = metrics or MetricRecord()
        if kind == "train":
            arrays = next(iter(content.array_records.values()), None)
            digest = update_hash(arrays) if arrays is not None else "0" * 64
        else:
            digest = metrics_hash(metrics)
        return reply_record(msg, digest, metrics)

    def _admit(self, stage: StageEvidence, replies: Iterable[Message], kind: str) -> list[Message]:
        ticket = stage.ticket
        assert ticket is not None
        accepted = []
        for msg in replies:
            if msg.has_error():
                stage.errors.append(f"node {msg.metadata.src_node_id}: {msg.error.reason}")
                refusal = site_refusal(msg)
                if refusal is not None:
                    stage.refusals.append(refusal)
                continue
            record = self._record(msg, kind)
            named = ticket.site_by_node(msg.metadata.src_node_id)
            if named is None or msg.metadata.src_node_id not in stage.sent_to:
                stage.rejected.append((record, "the node is not named in the round's ticket"))
                continue
            expected = named.allowed_digest or named.exclusion_digest
            if record.records_used is None or record.records_excluded is None:
                stage.rejected.append(
                    (record, "the site reported no counts of records used and left out")
                )
                continue
            if record.filter_digest != expected:
                stage.rejected.append(
                    (record, "the site did not report filtering by the ticket's subject list")
                )
                continue
            stage.accepted.append(record)
            accepted.append(msg)
        for record, reason in stage.rejected:
            log.warning("%s reply of node %s refused: %s", kind, record.node_id, reason)
        return accepted

    def _report(self, entry: RoundLog, stage: StageEvidence, kind: str) -> None:
        extra: dict[str, Any] = {"message_type": kind} if kind != "train" else {}
        if stage.refusals:
            extra["site_refusals"] = stage.refusals
        release = None
        if kind == "train":
            release = stage.dp_release or self._local_dp_release(stage)
        if release is not None:
            extra["dp"] = release
        self.governance.report_round(
            run_id=self.run_id,
            round_no=entry.round_no,
            updates=stage.accepted,
            rejected=[record for record, _ in stage.rejected],
            aggregate_hash=stage.aggregate_hash,
            **extra,
        )

    @staticmethod
    def _local_dp_release(stage: StageEvidence) -> dict[str, Any] | None:
        """Under local DP each site's ``LocalDpMod`` (in ``mods()``) noised its update
        before it left; the record fedgov accounts is the same one its demo strategy
        reports (``fedgov_flower.dp.DpRelease``)."""
        from fedgov_flower.dp import DpPlan, DpRelease

        ticket = stage.ticket
        plan = DpPlan.from_ticket(ticket.dp) if ticket is not None else None
        if ticket is None or plan is None or plan.mechanism != "local" or not stage.accepted:
            return None
        count = len(stage.accepted)
        population = max(int((ticket.dp or {}).get("population_size", 0)), len(ticket.sites))
        return DpRelease(
            mechanism=plan.mechanism,
            clipping_norm=plan.clipping_norm,
            noise_multiplier=plan.noise_multiplier,
            sampled_clients=count,
            total_clients=population,
            noise_std=plan.aggregate_noise_std(count),
            aggregate_hash_before_noise=None,
            aggregate_hash=stage.aggregate_hash,
        ).as_json()

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        entry = self._log(server_round)
        stage = entry.train
        if stage.ticket is None:
            # Refused or nothing sent: no arrays, so Flower keeps the previous model.
            list(replies)
            return None, None
        accepted = self._admit(stage, replies, "train")
        arrays, metrics = (None, None)
        if accepted and stage.central is not None:
            arrays, metrics = self._aggregate_central(server_round, stage, accepted)
        elif accepted:
            arrays, metrics = self.strategy.aggregate_train(server_round, accepted)
        stage.aggregate_hash = update_hash(arrays) if arrays is not None else None
        if stage.dp_release is not None:
            stage.dp_release["aggregate_hash"] = stage.aggregate_hash
        self._report(entry, stage, "train")
        return arrays, metrics

    def _aggregate_central(
        self, server_round: int, stage: StageEvidence, accepted: list[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Flower's wrapper clips (server-side) and noises the uniform mean of the accepted
        updates; the wrapped strategy then aggregates that one release.

        Replies were hashed as received in ``_admit``; clipping rewrites them afterwards.
        """
        from fedgov_flower.dp import DpPlan, DpRelease

        ticket, wrapper = stage.ticket, stage.central
        assert ticket is not None and stage.current is not None
        plan = DpPlan.from_ticket(ticket.dp)
        assert plan is not None
        if plan.mechanism == "client-clipping":
            accepted = self._clipped_at_site(stage, accepted, plan.clipping_norm)
            if not accepted:
                return None, None
        # Flower's std z·C/n is then calibrated to the sensitivity C/n of this very mean
        # (fewer replies than sampled would otherwise get too little noise).
        wrapper.num_sampled_clients = len(accepted)
        mean: _UniformMean = wrapper.strategy
        released, _ = wrapper.aggregate_train(server_round, accepted)
        if released is None or mean.hash_before_noise is None:
            return None, None
        arrays, metrics = self.strategy.aggregate_train(
            server_round, [mean.as_reply(accepted, released, self.strategy)]
        )
        if arrays is None:
            return None, None
        population = max(int((ticket.dp or {}).get("population_size") or 0), len(ticket.sites))
        stage.dp_release = DpRelease(
            mechanism=plan.mechanism,
            clipping_norm=float(wrapper.clipping_norm),
            noise_multiplier=float(wrapper.noise_multiplier),
            sampled_clients=len(accepted),
            total_clients=population,
            noise_std=plan.aggregate_noise_std(len(accepted)),
            aggregate_hash_before_noise=mean.hash_before_noise,
            aggregate_hash=None,  # the released model's hash, set by aggregate_train
        ).as_json()
        stage.release_hash = update_hash(released)
        return arrays, metrics

    @staticmethod
    def _clipped_at_site(
        stage: StageEvidence, accepted: list[Message], clipping_norm: float
    ) -> list[Message]:
        """Under client-side clipping the sensitivity rests on every site having clipped:
        an update farther than C from the round's model is refused, not averaged."""
        from flwr.supercore.differential_privacy import get_norm

        assert stage.current is not None
        current = stage.current.to_numpy_ndarrays()
        kept = []
        for msg in accepted:
            arrays = next(iter(msg.content.array_records.values()))
            delta = [a - b for a, b in zip(arrays.to_numpy_ndarrays(), current, strict=True)]
            norm = get_norm(delta)
            # float32 rounding of a clipped update may overshoot C by a few ulps.
            if norm > clipping_norm * (1 + 1e-5):
                node = str(msg.metadata.src_node_id)
                record = next(r for r in stage.accepted if r.node_id == node)
                stage.accepted.remove(record)
                reason = f"the update's norm {norm:.6g} exceeds the ticket's clipping norm"
                stage.rejected.append((record, f"{reason} {clipping_norm:g}"))
                log.warning("train reply of node %s refused: %s", node, reason)
                continue
            kept.append(msg)
        return kept

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        entry = self._log(server_round)
        stage = entry.evaluate
        if stage.ticket is None:
            list(replies)
            return None
        accepted = self._admit(stage, replies, "evaluate")
        metrics = self.strategy.aggregate_evaluate(server_round, accepted) if accepted else None
        stage.aggregate_hash = metrics_hash(metrics) if metrics is not None else None
        self._report(entry, stage, "evaluate")
        return metrics


def identify(msg: Message, context: Context) -> Message:
    """Say which fedgov site this node serves; reads node config only, never data.

    This is the node's own claim. It binds node ids to sites for an insecure local
    deployment; with SuperNode authentication the SuperLink's registered name is the
    identity, and each site still refuses any ticket that does not name it.
    """
    site_id = context.node_config.get("fedgov-site-id") or os.environ.get("FEDGOV_SITE_ID", 0)
    slug = context.node_config.get("fedgov-site") or os.environ.get("FEDGOV_SITE", "")
    identity = ConfigRecord({"site-id": as_int(site_id), "site": str(slug)})
    return Message(content=RecordDict({"identity": identity}), reply_to=msg)


def register_nodes(
    grid: Grid, governance: Any, *, expected: int, timeout: float, message_type: str = IDENTIFY
) -> dict[str, int]:
    """Ask every connected node which site it serves and bind it in fedgov.

    Waits for ``expected`` nodes (up to ``timeout`` seconds). Returns slug → node id.
    """
    deadline = time.monotonic() + timeout
    while len(list(grid.get_node_ids())) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    messages = [
        Message(content=RecordDict(), message_type=message_type, dst_node_id=node_id)
        for node_id in grid.get_node_ids()
    ]
    bound = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error() or "identity" not in reply.content:
            log.warning("node %s did not identify itself", reply.metadata.src_node_id)
            continue
        slug = str(reply.content["identity"]["site"])
        governance.register_node(site_slug=slug, node_id=reply.metadata.src_node_id)
        bound[slug] = reply.metadata.src_node_id
    return bound


def service_token() -> str:
    """The ServerApp's fedgov service token, from the environment (never the run config)."""
    path = os.environ.get("FEDGOV_SERVICE_TOKEN_FILE", "")
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return os.environ.get("FEDGOV_SERVICE_TOKEN", "")


def _run_value(config: Any, name: str, default: Any = "") -> Any:
    for key in (f"fedgov.{name}", f"fedgov-{name}"):
        value = config.get(key)
        if value is not None and str(value) != "":
            return value
    return default


def governed(
    strategy: Strategy,
    *,
    context: Context | None = None,
    governance: GovernancePort | None = None,
    run_id: int | None = None,
    **options: Any,
) -> GovernedStrategy:
    """``strategy`` under fedgov's gate, for train and evaluate.

    In a ServerApp, ``governed(FedProx(...), context=context)`` reads fedgov's run id, API
    and round offset from the run config (``fedgov.*``) and the service token from the
    environment. Tests and embedders pass ``governance`` and ``run_id`` instead.
    """
    config = context.run_config if context is not None else {}
    if run_id is None:
        run_id = int(_run_value(config, "run-id", 0))
    if run_id <= 0:
        raise ValueError("governed() needs fedgov's run id (run config fedgov.run-id)")
    if governance is None:
        api = str(_run_value(config, "api", os.environ.get("FEDGOV_API", "")))
        if not api:
            raise ValueError("governed() needs fedgov's API URL (run config fedgov.api)")
        governance = RestGovernance(api, service_token())
    options.setdefault("round_offset", int(_run_value(config, "round-offset", 0)))
    options.setdefault("expected_nodes", int(_run_value(config, "expected-nodes", 0)))
    options.setdefault("sample_timeout", float(_run_value(config, "sample-timeout", 60.0)))
    return GovernedStrategy(strategy, governance=governance, run_id=run_id, **options)
