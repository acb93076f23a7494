"""The gate's frozen context: every fact the rules read, built first with a fixed query count.

The dataclasses here are the snapshot schema. ``to_snapshot`` turns a context into plain
JSON data (hashed as RFC 8785), ``from_snapshot`` rebuilds the identical context, so a
stored decision can be re-run anywhere with no database (``training.gate.replay``).
Subject pseudonyms never enter the context: rules need counts and a digest only, and the
list itself is stored per site in ``SiteEligibility``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

# 2: the transfer register (operators, safeguards, certifications, adequacy list) replaced
# the per-site transfer mechanism; a schema-1 snapshot is refused rather than misread.
SNAPSHOT_SCHEMA = 2
REGIONS_IN_CONTEXT = ("EEA", "ADEQUACY")


@dataclass(frozen=True)
class DatasetFacts:
    """One dataset of the run at one site, as it stood at the round's instant."""

    id: int
    name: str
    lawful_basis: str
    special_category: bool
    art9_condition: str
    purposes: tuple[str, ...]
    retention_until: str | None
    processing_countries: tuple[str, ...]
    record_count: int
    withdrawn_at: str | None
    consent_eligible: int
    consent_excluded: int
    # Every subject withdrew consent by the round's instant (Art. 7(3)): the dataset is
    # then withdrawn, exactly as if the DPO had withdrawn it.
    all_subjects_withdrawn: bool = False
    data_categories: tuple[str, ...] = ()
    art10_basis: str = ""
    art10_reference: str = ""


@dataclass(frozen=True)
class PartyFacts:
    """An organisation data goes to or from: who it is, where, and its role (Art. 4, 26, 28)."""

    organisation: str
    country: str
    role: str


@dataclass(frozen=True)
class SafeguardFacts:
    """An Art. 46/47/49 ground recorded for one (exporter site, importer organisation)."""

    exporter: str
    importer: str
    mechanism: str
    scc_module: int | None = None
    signed_on: str | None = None
    reference: str = ""
    tia_reference: str = ""
    ground: str = ""
    reason: str = ""


@dataclass(frozen=True)
class CertificationFacts:
    """A recipient's qualifying fact for a scoped adequacy decision (DPF listing, PIPEDA)."""

    organisation: str
    country: str
    scheme: str
    listing: str
    checked_on: str


@dataclass(frozen=True)
class AdequacyDecisionFacts:
    country: str
    reference: str
    adopted_on: str
    scope: str
    review_due: str
    expires_on: str | None = None


@dataclass(frozen=True)
class AdequacyFacts:
    """The adequacy list in force at the round (Art. 45): its version, hash and decisions."""

    version: str
    sha256: str
    decisions: tuple[AdequacyDecisionFacts, ...]

    def decision(self, country: str) -> AdequacyDecisionFacts | None:
        return next((d for d in self.decisions if d.country == country), None)


@dataclass(frozen=True)
class SiteFacts:
    """A candidate site: its agreement, where it computes, and its datasets in the run."""

    id: int
    slug: str
    organisation: str
    country: str
    role: str
    compute_country: str
    zone_operator: PartyFacts | None
    status: str
    agreement_document_hash: str
    agreement_valid_from: str | None
    agreement_valid_until: str | None
    exclusion_digest: str
    datasets: tuple[DatasetFacts, ...]
    # The subjects the site may train on (consent valid at the round's instant, over its
    # consent-based datasets): their count and digest; "" when no dataset is consent-based.
    allowed_count: int = 0
    allowed_digest: str = ""


@dataclass(frozen=True)
class RunFacts:
    """The run being gated and what it has already spent."""

    id: int
    name: str
    purpose: str
    aggregator_country: str
    # Legacy: the declared ε of snapshots taken before issue #17, kept so they still
    # load; always None now (ε comes from the accountant, ``GateContext.privacy``).
    epsilon_per_round: float | None
    rounds_past_gate: int


@dataclass(frozen=True)
class PrivacyFacts:
    """The run's differential privacy at this round, as Flower's RDP accountant computes it.

    ``releases`` are the noise multipliers of the run's earlier rounds that released an
    aggregate with noise (or may have: ticketed, nothing recorded yet);
    ``unprotected_rounds`` released one without noise. ``spent``/``after`` are ε at
    ``delta`` before and after this round; None when no budget or no mechanism applies.
    """

    mechanism: str
    clipping_norm: float | None
    noise_multiplier: float | None
    required_mechanism: str
    relation: str
    delta: float | None
    limit: float | None
    population_size: int
    releases: tuple[float, ...]
    unprotected_rounds: tuple[int, ...]
    spent: float | None
    after: float | None
    would_exceed: bool | None
    accounting_method: str


@dataclass(frozen=True)
class PolicyFacts:
    """The published policy version the run is bound to."""

    id: int
    name: str
    version: int
    status: str
    content_hash: str
    allowed_areas: tuple[str, ...]
    min_eligible_sites: int
    min_records_per_site: int
    requires_dpia: bool
    privacy_budget_epsilon: float | None
    model_updates_personal_data: bool = True
    aggregator_operator: PartyFacts | None = None
    host_operator: PartyFacts | None = None
    safeguards: tuple[SafeguardFacts, ...] = ()
    certifications: tuple[CertificationFacts, ...] = ()
    dpf_listing_max_age_days: int = 90


@dataclass(frozen=True)
class DpiaFacts:
    """The run's DPIA (Art. 35), or None in the context when none was recorded."""

    reference: str
    status: str
    valid_until: str | None


@dataclass(frozen=True)
class GateContext:
    """Everything the rules may look at, for one round at one instant."""

    round_no: int
    at: str
    run: RunFacts
    policy: PolicyFacts
    dpia: DpiaFacts | None
    sites: tuple[SiteFacts, ...]
    # The adequacy list is evidence like the regions: None means none was read, and no
    # adequacy decision can then be relied on.
    adequacy: AdequacyFacts | None = None
    # Region lists are part of the evidence: a later change of the EEA or adequacy list
    # must not change the replay of an old decision.
    regions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    schema: int = SNAPSHOT_SCHEMA
    # None only in snapshots taken before the accountant (issue #17).
    privacy: PrivacyFacts | None = None

    @property
    def today(self) -> str:
        return self.at[:10]

    def region(self, name: str) -> frozenset[str]:
        return frozenset(self.regions.get(name, ()))

    def expand(self, areas: tuple[str, ...]) -> frozenset[str]:
        """Country codes named by ``areas`` (codes and region names), from the context."""
        result: set[str] = set()
        for area in areas:
            result |= self.region(area) if area in self.regions else {area}
        return frozenset(result)


def exclusion_digest(pseudonyms: list[str] | tuple[str, ...]) -> str:
    """SHA-256 hex of the sorted pseudonyms joined by newlines (empty list → hash of b"")."""
    return hashlib.sha256("\n".join(sorted(pseudonyms)).encode("utf-8")).hexdigest()


def sorted_digest(pseudonyms: list[str]) -> str:
    """``exclusion_digest`` of a list the caller already sorted and de-duplicated."""
    return hashlib.sha256("\n".join(pseudonyms).encode("utf-8")).hexdigest()


def to_snapshot(ctx: GateContext) -> dict[str, Any]:
    """Plain JSON data (lists, not tuples) for RFC 8785 hashing and storage."""
    plain: dict[str, Any] = _plain(ctx)
    return plain


@cache
def _field_names(cls: Any) -> tuple[str, ...] | None:
    """The dataclass's field names, or None for any other type (cached per type)."""
    return tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None


def _plain(value: Any) -> Any:
    # ``dataclasses.asdict`` deep-copies every leaf; at 1,000 datasets that alone costs
    # more than the gate's SQL, and the leaves here are immutable anyway. Leaves are
    # most of the ~24,000 values at 200 sites: they return before any dataclass check.
    kind: Any = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    names = _field_names(kind)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def from_snapshot(data: dict[str, Any]) -> GateContext:
    """Rebuild the context ``to_snapshot`` produced. Raises ``ValueError`` on a bad shape."""
    try:
        if data.get("schema") != SNAPSHOT_SCHEMA:
            raise ValueError(f"unknown snapshot schema {data.get('schema')!r}")
        sites = tuple(
            SiteFacts(
                **{
                    **site,
                    "zone_operator": _party(site["zone_operator"]),
                    "datasets": tuple(
                        DatasetFacts(
                            **{
                                **ds,
                                "purposes": tuple(ds["purposes"]),
                                "processing_countries": tuple(ds["processing_countries"]),
                                "data_categories": tuple(ds["data_categories"]),
                            }
                        )
                        for ds in site["datasets"]
                    ),
                }
            )
            for site in data["sites"]
        )
        policy = data["policy"]
        return GateContext(
            round_no=data["round_no"],
            at=data["at"],
            run=RunFacts(**data["run"]),
            policy=PolicyFacts(
                **{
                    **policy,
                    "allowed_areas": tuple(policy["allowed_areas"]),
                    "aggregator_operator": _party(policy["aggregator_operator"]),
                    "host_operator": _party(policy["host_operator"]),
                    "safeguards": tuple(SafeguardFacts(**x) for x in policy["safeguards"]),
                    "certifications": tuple(
                        CertificationFacts(**x) for x in policy["certifications"]
                    ),
                }
            ),
            dpia=DpiaFacts(**data["dpia"]) if data["dpia"] is not None else None,
            sites=sites,
            adequacy=_adequacy(data["adequacy"]),
            regions={k: tuple(v) for k, v in data["regions"].items()},
            schema=data["schema"],
            privacy=_privacy_from(data.get("privacy")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a gate snapshot: {exc}") from exc


def _party(data: dict[str, Any] | None) -> PartyFacts | None:
    return PartyFacts(**data) if data is not None else None


def _adequacy(data: dict[str, Any] | None) -> AdequacyFacts | None:
    if data is None:
        return None
    decisions = tuple(AdequacyDecisionFacts(**d) for d in data["decisions"])
    return AdequacyFacts(version=data["version"], sha256=data["sha256"], decisions=decisions)


def _privacy_from(data: dict[str, Any] | None) -> PrivacyFacts | None:
    if data is None:
        return None
    return PrivacyFacts(
        **{
            **data,
            "releases": tuple(data["releases"]),
            "unprotected_rounds": tuple(data["unprotected_rounds"]),
        }
    )


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def instant(value: datetime) -> str:
    """The round's instant as fixed-width UTC ISO text, so ``at[:10]`` is its date."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
