"""Read-only queries other apps need from sites; each returns plain dataclasses.

The gate calls these with a fixed number of queries whatever the number of sites,
datasets and subjects: consent is counted, and the excluded pseudonyms gathered, by one
aggregate query.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db.models import Aggregate, Count, Max, Min, Q, TextField

from sites.choices import LawfulBasis
from sites.models import Consent, ConsentStateCache, Dataset


@dataclass(frozen=True)
class SiteRow:
    """A site's facts as the gate reads them."""

    id: int
    slug: str
    country: str
    compute_country: str
    status: str
    agreement_document_hash: str
    agreement_valid_from: date | None
    agreement_valid_until: date | None
    organisation: str
    agreement_type: str
    zone_operator: str
    zone_operator_country: str
    zone_operator_role: str


@dataclass(frozen=True)
class DatasetRow:
    """A dataset's legal facts as the gate reads them."""

    id: int
    site_id: int
    name: str
    lawful_basis: str
    special_category: bool
    art9_condition: str
    data_categories: tuple[str, ...]
    art10_basis: str
    art10_reference: str
    purposes: tuple[str, ...]
    retention_until: date | None
    processing_countries: tuple[str, ...]
    record_count: int
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class ConsentState:
    """One dataset's consents for a purpose at an instant.

    ``eligible``: granted at or before the instant, neither expired nor withdrawn then.
    ``excluded``: the sorted pseudonyms whose consent was withdrawn or had expired.
    ``allowed_text``: the pseudonyms of the eligible subjects, the only ones a site may
    train on (Art. 6(1)(a), 7), sorted by code point and joined by newlines: the form
    their digest is taken of, so the gate hashes it without building a million strings
    (bench/gate.py). A subject without a consent row is in no list at all.
    """

    eligible: int = 0
    excluded: tuple[str, ...] = ()
    allowed_text: str = ""
    # Consent rows for the purpose, and those withdrawn by the instant: when they are
    # equal and non-zero, every subject withdrew and the dataset counts as withdrawn.
    total: int = 0
    withdrawn: int = 0
    # The span of instants over which this state holds: the latest grant, expiry or
    # withdrawal at or before the instant, and the earliest after it (None: unbounded).
    # Not part of the state's value: a state read from the cache compares equal.
    valid_from: datetime | None = field(default=None, compare=False)
    valid_until: datetime | None = field(default=None, compare=False)

    @property
    def all_withdrawn(self) -> bool:
        return self.total > 0 and self.withdrawn == self.total


def _lapsed(at: datetime) -> Q:
    return Q(withdrawn_at__lte=at) | Q(expires_at__lte=at)


def _valid(at: datetime) -> Q:
    """Consent valid at ``at``: granted at or before it; expiry and withdrawal are
    exclusive ends, so consent that expires or is withdrawn exactly at ``at`` is not."""
    return (
        Q(granted_at__lte=at)
        & (Q(expires_at__isnull=True) | Q(expires_at__gt=at))
        & (Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gt=at))
    )


_SITE_COLUMNS = tuple(f"site__{name}" for name in SiteRow.__dataclass_fields__)
_DATASET_COLUMNS = (
    "id",
    "site_id",
    "name",
    "lawful_basis",
    "special_category",
    "art9_condition",
    "data_categories",
    "art10_basis",
    "art10_reference",
    "retention_until",
    "processing_countries",
    "record_count",
    "withdrawn_at",
)


def datasets_with_sites(*, dataset_ids: list[int]) -> tuple[list[DatasetRow], list[SiteRow]]:
    """The datasets and their sites, ordered by site slug then dataset id (two queries)."""
    # Plain tuples, not model instances: building a thousand models costs more than the
    # query that reads them.
    columns = (*_DATASET_COLUMNS, *_SITE_COLUMNS)
    records = (
        Dataset.objects.filter(pk__in=dataset_ids)
        .order_by("site__slug", "pk")
        .values_list(*columns)
    )
    purposes: dict[int, list[str]] = defaultdict(list)
    through = Dataset.purposes.through.objects.filter(dataset_id__in=dataset_ids)
    for dataset_id, code in through.values_list("dataset_id", "purpose__code"):
        purposes[dataset_id].append(code)
    sites: dict[int, SiteRow] = {}
    rows = []
    split = len(_DATASET_COLUMNS)
    for record in records:
        ds = dict(zip(_DATASET_COLUMNS, record[:split], strict=True))
        ds["art9_condition"] = ds["art9_condition"] or ""
        ds["data_categories"] = tuple(ds["data_categories"] or ())
        ds["processing_countries"] = tuple(ds["processing_countries"] or ())
        ds["purposes"] = tuple(sorted(purposes[ds["id"]]))
        rows.append(DatasetRow(**ds))
        site = SiteRow(*record[split:])
        sites.setdefault(site.id, site)
    return rows, list(sites.values())


class _JsonList(Aggregate):
    """The group's values as a JSON array: json_group_array, or json_agg on PostgreSQL.

    JSON keeps every value intact whatever characters a pseudonym holds.
    """

    function = "JSON_GROUP_ARRAY"
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function="JSON_AGG", **extra_context)


def _names(value: Any) -> tuple[str, ...]:
    # SQLite hands back JSON text; psycopg decodes json itself; no row at all is NULL.
    names = json.loads(value) if isinstance(value, str) else (value or [])
    return tuple(sorted(names))


class _Lines(Aggregate):
    """The group's values sorted by code point and joined by newlines.

    PostgreSQL sorts inside the aggregate, in the "C" collation (byte order of UTF-8 is
    code point order, which is Python's, and the site sorts the list it fetches that way
    before checking the digest). SQLite's GROUP_CONCAT takes the rows in scan order: the
    covering index ``consent_validity`` yields each dataset's rows by pseudonym (BINARY
    collation, again code point order). Were that order ever different, the digest would
    not match the list built at fetch time, and the site would refuse to train.
    """

    function = "GROUP_CONCAT"
    template = "%(function)s(%(expressions)s, CHAR(10))"
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra_context):
        clone = self.copy()
        clone.function = "STRING_AGG"
        clone.template = (
            "%(function)s(%(expressions)s, E'\\n' ORDER BY %(expressions)s COLLATE \"C\")"
        )
        return super(_Lines, clone).as_sql(compiler, connection, **extra_context)


def consent_states(
    *, dataset_ids: list[int], purpose_id: int, at: datetime
) -> dict[int, ConsentState]:
    """Per dataset, current consents for the purpose at ``at`` and the lapsed pseudonyms.

    One query, one pass over the consent rows whatever the number of datasets and
    subjects, read from the covering index ``consent_validity`` (dataset, purpose,
    pseudonym, dates): per dataset the total, the rows that are not current (granted
    later, withdrawn or expired), the withdrawn ones, the lapsed pseudonyms as a JSON
    array, and the allowed ones as one sorted, newline-joined text. Each state also
    carries the span of instants it holds for (``ConsentState.valid_from``/``until``).
    This is the reference the gate's cache (``ConsentStateCache``) must always equal.
    """
    lapsed = _lapsed(at)
    rows = (
        Consent.objects.filter(dataset_id__in=dataset_ids, purpose_id=purpose_id)
        # The model's default ordering would leak into GROUP BY and split the groups.
        .order_by()
        .values("dataset_id")
        .annotate(
            total=Count("pk"),
            not_current=Count("pk", filter=Q(granted_at__gt=at) | lapsed),
            withdrawn=Count("pk", filter=Q(withdrawn_at__lte=at)),
            lapsed=_JsonList("subject_pseudonym", filter=lapsed),
            allowed=_Lines("subject_pseudonym", filter=_valid(at)),
            **{
                f"{side}_{column}": aggregate(column, filter=Q(**{f"{column}__{op}": at}))
                for column in _CHANGES
                for side, aggregate, op in (("last", Max, "lte"), ("next", Min, "gt"))
            },
        )
        .values_list(
            "dataset_id",
            "total",
            "not_current",
            "withdrawn",
            "lapsed",
            "allowed",
            *(f"{side}_{column}" for column in _CHANGES for side in ("last", "next")),
        )
    )
    states = {}
    for dataset_id, total, not_current, withdrawn, names, allowed, *changes in rows:
        last = [c for c in changes[0::2] if c is not None]
        upcoming = [c for c in changes[1::2] if c is not None]
        states[dataset_id] = ConsentState(
            eligible=total - not_current,
            excluded=_names(names),
            allowed_text=allowed or "",
            total=total,
            withdrawn=withdrawn,
            valid_from=max(last) if last else None,
            valid_until=min(upcoming) if upcoming else None,
        )
    return states


# The instants at which a consent row changes whether it is valid, lapsed or withdrawn.
_CHANGES = ("granted_at", "expires_at", "withdrawn_at")


def cached_consent_states(*, dataset_ids: list[int], purpose_id: int) -> list[CachedConsentState]:
    """The cache rows of the datasets for the purpose (one query), current or not."""
    rows = ConsentStateCache.objects.filter(
        dataset_id__in=dataset_ids, purpose_id=purpose_id
    ).values_list(
        "dataset_id",
        "generation",
        "computed_generation",
        "valid_from_us",
        "valid_until_us",
        "eligible",
        "total",
        "withdrawn",
        "lapsed_json",
        "allowed_text",
    )
    return [CachedConsentState(*row) for row in rows]


@dataclass(frozen=True)
class CachedConsentState:
    """One ``ConsentStateCache`` row as read."""

    dataset_id: int
    generation: int
    computed_generation: int
    valid_from_us: int | None
    valid_until_us: int | None
    eligible: int
    total: int
    withdrawn: int
    lapsed_json: str
    allowed_text: str

    def holds_at(self, at_us: int) -> bool:
        """Computed from the consent rows as they are now, for a span holding ``at_us``."""
        return (
            self.computed_generation == self.generation
            and (self.valid_from_us is None or self.valid_from_us <= at_us)
            and (self.valid_until_us is None or at_us < self.valid_until_us)
        )

    def state(self) -> ConsentState:
        return ConsentState(
            eligible=self.eligible,
            excluded=tuple(json.loads(self.lapsed_json)),
            allowed_text=self.allowed_text,
            total=self.total,
            withdrawn=self.withdrawn,
        )


def allowed_pseudonyms(*, dataset_ids: list[int], purpose_id: int, at: datetime) -> list[str]:
    """The sorted, distinct pseudonyms whose consent for the purpose is valid at ``at`` in
    any of the datasets: a site's allow-list, built when the site fetches it."""
    names = (
        Consent.objects.filter(_valid(at), dataset_id__in=dataset_ids, purpose_id=purpose_id)
        .order_by()
        .values_list("subject_pseudonym", flat=True)
    )
    return sorted(set(names))


def datasets_all_withdrawn(*, dataset_ids: list[int], at: datetime) -> set[int]:
    """The consent-based datasets whose every consent row was withdrawn by ``at`` (one
    query): Art. 7(3) leaves them no subject, so they count as withdrawn from federation."""
    rows = (
        Consent.objects.filter(
            dataset_id__in=dataset_ids, dataset__lawful_basis=LawfulBasis.CONSENT
        )
        .order_by()
        .values("dataset_id")
        .annotate(total=Count("pk"), withdrawn=Count("pk", filter=Q(withdrawn_at__lte=at)))
        .values_list("dataset_id", "total", "withdrawn")
    )
    return {dataset_id for dataset_id, total, withdrawn in rows if total and total == withdrawn}
