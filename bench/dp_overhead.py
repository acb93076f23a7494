"""Benchmark: governed DP round time ÷ governed round time without DP, interleaved.

One federation of the three demo sites, in this process: the real ClientApp behind the
real site mods (ticket verification, exclusions, DP mod), the real governed strategy,
tickets signed with Ed25519 for every round. The DP arm is the governed strategy inside
Flower's ``DifferentialPrivacyServerSideFixedClipping`` (or the mechanism given), with
what fedgov adds per round: the gate's accountant check before (``budget_check``) and
the ledger's ε after (``privacy_spent``). Rounds alternate, and which arm goes first
alternates too, so warm-up and drift hit both alike. Medians of round wall time.

No Flower processes: the message transport is the same for both arms and would only
dilute the ratio; ``bench/round_overhead.py`` measures that path.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SITES = (("de-legal", 1), ("es-blogs", 2), ("pl-news", 3))
RUN_ID = 1
DELTA = 1e-5


def _time_arms(arms, arrays, config_record, *, pairs: int, epochs: int) -> dict[str, list[float]]:
    """One governed round per arm per pair, interleaved (the order alternates), timed.

    One untimed pair first: one-off imports (dp-accounting, scipy) are a process's cost,
    not a round's.
    """
    times: dict[str, list[float]] = {"plain": [], "dp": []}
    for i in range(-1, pairs):
        for name in ("plain", "dp") if i % 2 == 0 else ("dp", "plain"):
            governed, runner, grid = arms[name]
            governed.round_offset = i + 1
            config = config_record({"local-epochs": epochs})
            started = time.perf_counter()
            runner.start(grid, arrays, num_rounds=1, train_config=config)
            if i >= 0:
                times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 pairs, 2 local epochs")
    parser.add_argument("--rounds", type=int, default=None, help="pairs of rounds (default 15)")
    parser.add_argument("--local-epochs", type=int, default=None, help="default 10")
    parser.add_argument("--mechanism", default="central", choices=["central", "local"])
    args = parser.parse_args()
    pairs = args.rounds or (3 if args.quick else 15)
    epochs = args.local_epochs or (2 if args.quick else 10)

    import rfc8785
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict
    from flwr.serverapp import Grid
    from flwr.supercore.task_identity import TaskIdentity

    from fedgov_flower.client_mod import make_governance_mod
    from fedgov_flower.dp import AccountingSpec, DpPlan, budget_check, privacy_spent
    from fedgov_flower.governance import RoundGrant
    from fedgov_flower.ticket import (
        TicketSite,
        exclusion_digest,
        key_id_of,
        parse_unverified,
        ticket_body,
    )
    from training.flower.client_app import build_app
    from training.flower.dp_strategy import governed_dp
    from training.flower.model import initial_arrays_numpy
    from training.flower.strategy import GovernedFedAvg

    # Flower stamps messages with the running task's ids; this process is the ServerApp.
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = 1, 0, 1

    key = Ed25519PrivateKey.generate()
    public_b64 = base64.b64encode(
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    sites = [TicketSite(sid, slug, str(1000 + sid), exclusion_digest([]), 0) for slug, sid in SITES]
    spec = AccountingSpec(delta=DELTA, population_size=len(sites))
    plan = DpPlan(args.mechanism, 1.0, 1.2, DELTA)

    class LocalGovernance:
        """Signs real tickets; the DP arm also asks and records the accountant, as fedgov does."""

        def __init__(self, dp: DpPlan | None) -> None:
            self.dp, self.releases = dp, []

        def request_round(self, *, run_id, round_no, message_type="train", flower_run_id=""):
            dp = None
            if self.dp is not None:
                check = budget_check(spec, self.releases, self.dp.noise_multiplier, 1e9)
                dp = {
                    "mechanism": self.dp.mechanism,
                    "clipping_norm": self.dp.clipping_norm,
                    "noise_multiplier": self.dp.noise_multiplier,
                    "delta": DELTA,
                    "population_size": len(sites),
                    "planned_epsilon": check.after,
                }
            now = datetime.now(UTC).replace(microsecond=0)
            body = rfc8785.dumps(
                ticket_body(run_id=run_id, round_no=round_no, issued_at=now,
                            expires_at=now + timedelta(minutes=10), decision_hash="d" * 64,
                            sites=sites, dp=dp, message_type=message_type,
                            flower_run_id=flower_run_id)
            )  # fmt: skip
            signature = base64.b64encode(key.sign(body)).decode()
            ticket = parse_unverified(body.decode(), signature, key_id_of(key.public_key()))
            return RoundGrant(ticket=ticket)

        def report_round(self, *, round_no, updates, rejected, dp=None, **_):
            # A round the sites refused costs almost nothing: timing it would report a
            # ratio of refusals (seen: tickets bound to no Flower run, every site refused).
            if rejected or len(updates) != len(sites):
                raise SystemExit(
                    f"dp_overhead: round {round_no} took {len(updates)} of {len(sites)} site "
                    f"updates ({len(rejected)} rejected); a round that did not train is not "
                    "a measurement"
                )
            if dp is not None:
                self.releases.append(dp["noise_multiplier"])
                privacy_spent(spec, self.releases)

    class InProcessGrid(Grid):
        def __init__(self, app, contexts):
            self.app, self.contexts = app, contexts

        def get_node_ids(self):
            return list(self.contexts)

        def send_and_receive(self, messages, *, timeout=None):
            return [self.app(m, self.contexts[m.metadata.dst_node_id]) for m in messages]

        def set_run(self, run_id):  # pragma: no cover - Grid interface
            pass

        run = create_message = push_messages = pull_messages = None

    def contexts(run_id: int) -> dict[int, Context]:
        return {
            1000 + sid: Context(
                run_id=1, node_id=1000 + sid, state=RecordDict(),
                node_config={"fedgov-site-id": sid, "fedgov-site": slug,
                             "fedgov-public-key": public_b64},
                run_config={"fedgov-run-id": run_id},
            )
            for slug, sid in SITES
        }  # fmt: skip

    class NoExclusions:
        def get(self, **_):
            return frozenset()

    app = build_app(make_governance_mod(fetcher=NoExclusions()))
    grid_plain, grid_dp = InProcessGrid(app, contexts(RUN_ID)), InProcessGrid(app, contexts(2))
    plain = GovernedFedAvg(governance=LocalGovernance(None), run_id=RUN_ID, sample_timeout=0)
    private = GovernedFedAvg(
        governance=LocalGovernance(plan), run_id=2, sample_timeout=0, dp_plan=plan
    )
    arrays = ArrayRecord({k: Array(v) for k, v in initial_arrays_numpy(0).items()})
    arms = {"plain": (plain, plain, grid_plain), "dp": (private, governed_dp(private), grid_dp)}
    times = _time_arms(arms, arrays, ConfigRecord, pairs=pairs, epochs=epochs)
    ratio = statistics.median(times["dp"]) / statistics.median(times["plain"])
    print(
        json.dumps(
            {
                "bench": "dp_overhead",
                "ratio": round(ratio, 4),
                "target": "<= 1.05",
                "mechanism": plan.mechanism,
                "pairs": pairs,
                "local_epochs": epochs,
                "median_governed_s": round(statistics.median(times["plain"]), 4),
                "median_governed_dp_s": round(statistics.median(times["dp"]), 4),
                "governed_s": [round(x, 4) for x in times["plain"]],
                "governed_dp_s": [round(x, 4) for x in times["dp"]],
            }
        )
    )


if __name__ == "__main__":
    main()
