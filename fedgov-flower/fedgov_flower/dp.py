"""Differential privacy for governed rounds: Flower's DP wrappers and mods, Flower's accountant.

Mechanisms (the run chooses one, the policy may require one):

- ``central``: ``flwr.serverapp.strategy.DifferentialPrivacyServerSideFixedClipping``
  clips every update as received to L2 norm C around the round's global model, averages,
  and adds N(0, (z·C/n)²) to each coordinate (``flwr.supercore.differential_privacy.
  compute_stdv``: noise multiplier z, n aggregated updates).
- ``client-clipping``: ``DifferentialPrivacyClientSideFixedClipping`` on the server with
  Flower's ``fixedclipping_mod`` at the site: the update is clipped where the data lives,
  the server adds the same noise as above.
- ``local``: Flower's ``LocalDpMod`` at each site clips to C and adds N(0, (z·C)²) before
  the update leaves the site; no aggregator is trusted. ``LocalDpMod`` is parametrised by
  (ε_l, δ_l) with std = sensitivity·sqrt(2·ln(1.25/δ_l))/ε_l; fedgov picks
  ε_l = sqrt(2·ln(1.25/δ_l))/z and sensitivity = C, so its std is exactly z·C.

In all three the Gaussian mechanism has sensitivity C per client and noise z·C (on the
sum), so one round is one ``GaussianPrivacyEvent(noise_multiplier=z)`` for Flower's RDP
accountant (``flwr.supercore.privacy_accounting.rdp_accountant.RdpAccountant``). The
sensitivity C/n of the average only holds when every update weighs 1/n: under DP the
governed strategy averages uniformly, whatever example counts the sites report (Flower's
own accounted path refuses unequal weights for the same reason, ``_validate_uniform_weights``).

Sites are chosen by fedgov's gate, not sampled at random, so no sampling amplification
is claimed: add/remove-one uses ``SamplingMethod.NO_AMPLIFICATION``; replace-one, which
Flower accounts only with ``WITHOUT_REPLACEMENT`` sampling, is accounted with a sample
equal to the whole population (probability 1, again no amplification) and, because
replacing one client moves the sum by 2C, with the noise multiplier halved
(``AccountingSpec.event``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from flwr.supercore.differential_privacy import compute_stdv
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    PrivacySpent,
    SamplingMethod,
)

if TYPE_CHECKING:
    # Imported where used: it needs dp-accounting, flwr's optional [dp] extra.
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

ACCOUNTING_METHOD = "rdp"
ACCOUNTANT = "flwr.supercore.privacy_accounting.rdp_accountant.RdpAccountant"


class Mechanism(StrEnum):
    NONE = "none"
    CENTRAL = "central"
    CLIENT_CLIPPING = "client-clipping"
    LOCAL = "local"


NOISING = frozenset({Mechanism.CENTRAL, Mechanism.CLIENT_CLIPPING, Mechanism.LOCAL})
RELATIONS = tuple(r.value for r in NeighboringRelation)


class DpError(ValueError):
    """A DP plan or record that fedgov must not act on; the message says which field."""


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DpError(f"{name} must be a number")
    if not math.isfinite(value) or value <= 0:
        raise DpError(f"{name} must be positive and finite")
    return float(value)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DpError(f"{name} must be a positive whole number")
    return value


@dataclass(frozen=True)
class AccountingSpec:
    """How ε is accounted: δ, the neighbouring relation, and the population of clients."""

    delta: float
    population_size: int
    relation: str = NeighboringRelation.ADD_OR_REMOVE_ONE.value

    def __post_init__(self) -> None:
        if isinstance(self.delta, bool) or not 0 < float(self.delta) < 1:
            raise DpError("delta must be strictly between 0 and 1")
        _count("population_size", self.population_size)
        if self.relation not in RELATIONS:
            raise DpError(f"relation must be one of {', '.join(RELATIONS)}")

    @property
    def sampling_method(self) -> SamplingMethod:
        if self.relation == NeighboringRelation.REPLACE_ONE.value:
            return SamplingMethod.WITHOUT_REPLACEMENT
        return SamplingMethod.NO_AMPLIFICATION

    def config(self) -> PrivacyConfig:
        return PrivacyConfig(
            target_delta=float(self.delta),
            population_size=self.population_size,
            neighboring_relation=NeighboringRelation(self.relation),
            sampling_method=self.sampling_method,
        )

    def event(self, noise_multiplier: float) -> GaussianPrivacyEvent:
        """One round with noise std z·C as the accountant's event.

        dp-accounting's noise multiplier is std / (L2 sensitivity) and its Gaussian event
        takes the sensitivity to be C, the bound on one value (``dp_event.GaussianDpEvent``):
        right for add/remove-one. Replacing one client changes the sum by up to 2C, so
        under replace-one the event gets z/2; stricter than reading it as C.
        """
        z = _positive("noise_multiplier", noise_multiplier)
        if self.relation == NeighboringRelation.REPLACE_ONE.value:
            z = z / 2
        # The whole population as the sample: no amplification by sampling is claimed.
        return GaussianPrivacyEvent(
            noise_multiplier=z,
            sample_size=self.population_size,
            population_size=self.population_size,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "delta": float(self.delta),
            "population_size": self.population_size,
            "neighbouring_relation": self.relation,
            "sampling_method": self.sampling_method.value,
            "accounting_method": ACCOUNTING_METHOD,
            "accountant": ACCOUNTANT,
        }


def new_accountant(spec: AccountingSpec) -> RdpAccountant:
    """Flower's RDP accountant for ``spec`` (needs ``dp-accounting``, flwr's ``[dp]`` extra)."""
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    return RdpAccountant(spec.config())


def privacy_spent(spec: AccountingSpec, noise_multipliers: Iterable[float]) -> PrivacySpent:
    """Cumulative (ε, δ) after one Gaussian release per noise multiplier, in order."""
    accountant = new_accountant(spec)
    for z in noise_multipliers:
        accountant.compose(spec.event(z))
    return accountant.get_privacy_spent()


@dataclass(frozen=True)
class BudgetCheck:
    """The accountant's answer before a round: what was spent, what it would cost, the limit."""

    spent: float
    after: float
    limit: float
    delta: float
    would_exceed: bool
    releases: int

    @property
    def round_cost(self) -> float:
        return self.after - self.spent


def budget_check(
    spec: AccountingSpec, past: Sequence[float], next_noise_multiplier: float, limit: float
) -> BudgetCheck:
    """Ask Flower's accountant whether one more release of noise ``z`` would pass ``limit``."""
    limit = _positive("limit", limit)
    accountant = new_accountant(spec)
    for z in past:
        accountant.compose(spec.event(z))
    event = spec.event(next_noise_multiplier)
    exceed = accountant.would_exceed(event, max_epsilon=limit)
    spent = accountant.get_epsilon(spec.delta) if past else 0.0
    accountant.compose(event)
    return BudgetCheck(
        spent=float(spent),
        after=float(accountant.get_epsilon(spec.delta)),
        limit=limit,
        delta=float(spec.delta),
        would_exceed=bool(exceed),
        releases=len(past),
    )


def derive_noise_multiplier(spec: AccountingSpec, target_epsilon: float, rounds: int) -> float:
    """The smallest noise multiplier (to 4 decimals, rounded up) whose ε after ``rounds``
    releases, by Flower's accountant, is at most ``target_epsilon``."""
    target = _positive("target_epsilon", target_epsilon)
    rounds = _count("rounds", rounds)

    def epsilon(z: float) -> float:
        return privacy_spent(spec, [z] * rounds).epsilon

    low, high = 1e-3, 1.0
    while epsilon(high) > target:
        low, high = high, high * 2
        if high > 1e6:
            raise DpError(f"no noise multiplier reaches ε={target:g} in {rounds} rounds")
    while high - low > 2e-5:
        mid = (low + high) / 2
        low, high = (mid, high) if epsilon(mid) > target else (low, mid)
    z = math.ceil(high * 10_000) / 10_000
    assert epsilon(z) <= target
    return z


@dataclass(frozen=True)
class DpPlan:
    """What the run applies each round; travels signed in the ticket as ``dp``."""

    mechanism: str
    clipping_norm: float
    noise_multiplier: float
    delta: float

    def __post_init__(self) -> None:
        if self.mechanism not in {m.value for m in NOISING}:
            raise DpError(f"mechanism must be one of {', '.join(sorted(NOISING))}")
        _positive("clipping_norm", self.clipping_norm)
        _positive("noise_multiplier", self.noise_multiplier)
        if not 0 < float(self.delta) < 1:
            raise DpError("delta must be strictly between 0 and 1")

    @classmethod
    def from_ticket(cls, dp: dict[str, Any] | None) -> DpPlan | None:
        if not dp:
            return None
        try:
            return cls(
                mechanism=str(dp["mechanism"]),
                clipping_norm=dp["clipping_norm"],
                noise_multiplier=dp["noise_multiplier"],
                delta=dp["delta"],
            )
        except KeyError as exc:
            raise DpError(f"ticket dp lacks {exc}") from exc

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> DpPlan | None:
        """The plan from a ``flwr run`` config (``dp-mechanism``, ``dp-clipping-norm``,
        ``dp-noise-multiplier``, ``dp-delta``); None without a mechanism."""
        mechanism = str(config.get("dp-mechanism", "none") or "none")
        if mechanism == Mechanism.NONE:
            return None
        try:
            return cls(
                mechanism=mechanism,
                clipping_norm=float(config["dp-clipping-norm"]),
                noise_multiplier=float(config["dp-noise-multiplier"]),
                delta=float(config["dp-delta"]),
            )
        except KeyError as exc:
            raise DpError(f"run config lacks {exc} for the {mechanism} mechanism") from exc

    def to_run_config(self) -> dict[str, str | float]:
        return {
            "dp-mechanism": self.mechanism,
            "dp-clipping-norm": float(self.clipping_norm),
            "dp-noise-multiplier": float(self.noise_multiplier),
            "dp-delta": float(self.delta),
        }

    def same_as(self, other: DpPlan | None) -> bool:
        return other is not None and (
            self.mechanism,
            float(self.clipping_norm),
            float(self.noise_multiplier),
        ) == (other.mechanism, float(other.clipping_norm), float(other.noise_multiplier))

    def aggregate_noise_std(self, aggregated: int) -> float:
        """Per-coordinate std of the noise in the average of ``aggregated`` updates."""
        if self.mechanism == Mechanism.LOCAL:
            # n independent N(0, (zC)²) averaged: std zC/√n.
            return self.noise_multiplier * self.clipping_norm / math.sqrt(aggregated)
        return compute_stdv(self.noise_multiplier, self.clipping_norm, aggregated)

    def local_dp_epsilon(self) -> float:
        """ε_l for ``LocalDpMod`` such that its std equals z·C (sensitivity C)."""
        return math.sqrt(2 * math.log(1.25 / self.delta)) / self.noise_multiplier


@dataclass(frozen=True)
class DpRelease:
    """One round's noised aggregate as the strategy applied it: the per-round record."""

    mechanism: str
    clipping_norm: float
    noise_multiplier: float
    sampled_clients: int
    total_clients: int
    noise_std: float
    aggregate_hash_before_noise: str | None
    aggregate_hash: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)
