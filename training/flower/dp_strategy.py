"""The governed strategy inside Flower's own DP wrappers (central and client-side clipping).

``governed_dp(strategy)`` returns ``strategy`` wrapped in Flower's
``DifferentialPrivacyServerSideFixedClipping`` (mechanism ``central``) or
``DifferentialPrivacyClientSideFixedClipping`` (``client-clipping``), or ``strategy``
itself for ``local`` (noise added by ``LocalDpMod`` at the sites) and for no plan.

The wrappers here add only fedgov's evidence around Flower's code path:
before Flower clips anything, every reply is hashed as received and replies from nodes
outside the ticket are dropped (``GovernedFedAvg.admit_replies``); Flower then clips
(server-side) and calls the governed average (uniform weights, hash before noise), adds
its Gaussian noise, and the noised aggregate is hashed and reported with the
``DpRelease``. ``num_sampled_clients`` is set each round to the number of updates that
are averaged: Flower's std z·C/n is then calibrated to the sensitivity C/n of that very
average (fewer replies than sampled would otherwise get too little noise).

Flower's wrappers are built without an ``accountant``: Flower's accounted path requires
the wrapped strategy's ``aggregate_train`` to be ``FedAvg``'s own, which the governed
one is not; fedgov accounts every release itself with the same Flower accountant
(``fedgov_flower.dp.budget_check``), before the round in its gate and after it in its
ledger.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
)

from fedgov_flower.dp import DpRelease, Mechanism
from fedgov_flower.update_hash import update_hash
from training.flower.strategy import GovernedFedAvg


class _GovernedDp:
    """Mixin over one of Flower's fixed-clipping wrappers; ``self.strategy`` is governed."""

    strategy: GovernedFedAvg
    num_sampled_clients: int

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        governed = self.strategy
        plan = governed.dp_plan
        fedgov_round = server_round + governed.round_offset
        accepted = governed.admit_replies(fedgov_round, replies)
        if accepted:
            self.num_sampled_clients = len(accepted)
        governed.inside_dp_wrapper = True
        try:
            arrays, metrics = super().aggregate_train(server_round, accepted)
        finally:
            governed.inside_dp_wrapper = False
        evidence = governed.evidence[fedgov_round]
        if arrays is not None and plan is not None and accepted:
            evidence.dp = DpRelease(
                mechanism=plan.mechanism,
                clipping_norm=float(self.clipping_norm),
                noise_multiplier=float(self.noise_multiplier),
                sampled_clients=len(accepted),
                total_clients=governed.dp_population(fedgov_round),
                noise_std=plan.aggregate_noise_std(len(accepted)),
                aggregate_hash_before_noise=evidence.aggregate_hash_before_noise,
                aggregate_hash=update_hash(arrays),
            )
        governed.finish_round(fedgov_round, arrays)
        return arrays, metrics


class GovernedServerSideDp(_GovernedDp, DifferentialPrivacyServerSideFixedClipping):
    """Central DP: Flower clips every update at the server, then adds noise."""


class GovernedClientSideDp(_GovernedDp, DifferentialPrivacyClientSideFixedClipping):
    """Central DP with clipping at the sites (Flower's ``fixedclipping_mod``)."""


def governed_dp(strategy: GovernedFedAvg):
    """The strategy to run for ``strategy.dp_plan``'s mechanism."""
    plan = strategy.dp_plan
    if plan is None or plan.mechanism == Mechanism.LOCAL:
        return strategy
    wrapper = {
        Mechanism.CENTRAL: GovernedServerSideDp,
        Mechanism.CLIENT_CLIPPING: GovernedClientSideDp,
    }[Mechanism(plan.mechanism)]
    # num_sampled_clients is reset each round to the number of updates averaged.
    return wrapper(strategy, plan.noise_multiplier, plan.clipping_norm, 1)
