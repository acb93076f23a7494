"""Declarative federation scenarios (TOML): parse, validate, and load through the services.

``parse_scenario`` turns a file into frozen dataclasses and refuses a bad scenario with a
``ScenarioError`` naming the key (``sites[3].compute_country: ...``). ``load_scenario``
writes it with the records services (``site_register``, ``dataset_register``,
``policy_create_draft``/``policy_publish``, ``consent_record_batch``, ``run_create``,
``dpia_record``/``dpia_approve``), so every record has its ledger event. ``manage.py
demo`` uses both; ``manage.py federate --scenario FILE`` will too.

Loading is re-runnable on one database. The ledger is append-only, so nothing is reset:
records that exist with the scenario's name are reused (a changed policy becomes a new
version), consent is brought back to the scenario's starting state with grant events,
and the run gets the next free name (``virt8ra``, ``virt8ra-2``, ...).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedgov import clock
from fedgov.actors import Actor
from fedgov.validation import sha256_text
from opennebula.credentials import check_ref
from opennebula.errors import OpenNebulaError
from sites.choices import (
    AgreementType,
    Art9Condition,
    Art10Basis,
    CertificationScheme,
    LawfulBasis,
    PartyRole,
    PolicyStatus,
    SafeguardMechanism,
)
from sites.models import Dataset, Purpose, ResidencyPolicy, Site
from sites.regions import invalid_areas, is_country
from sites.services import (
    POLICY_DEFAULTS,
    consent_record_batch,
    dataset_register,
    dataset_withdraw,
    policy_content,
    policy_create_draft,
    policy_publish,
    purpose_create,
    site_register,
)
from training.models import TrainingRun
from training.services.runs import dpia_approve, dpia_record, run_create

ALL = "all"
POLICY_KEYS = (
    "allowed_areas",
    "transfer_mechanisms",
    "min_eligible_sites",
    "min_records_per_site",
    "requires_approval",
    "approvals_required",
    "requires_controller_dpo_approval",
    "requires_dpia",
    "privacy_budget_epsilon",
    "model_updates_personal_data",
    "aggregator_operator",
    "host_operator",
    "transfer_safeguards",
    "recipient_certifications",
    "dpf_listing_max_age_days",
    "privacy_budget_delta",
    "dp_neighbouring_relation",
    "dp_required_mechanism",
)


class ScenarioError(Exception):
    """A scenario file is unreadable or wrong; ``key`` names where."""

    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason
        super().__init__(f"{key}: {reason}" if key else reason)


@dataclass(frozen=True)
class Host:
    name: str
    country: str


@dataclass(frozen=True)
class Zone:
    """The site's OpenNebula zone and the hosts (with their country labels) it places on.

    ``standin`` says ``manage.py federate`` serves this zone from the local oned stand-in
    (the demo); otherwise the zone is a real oned at ``endpoint``, reached with the
    ``credentials`` reference (``env:NAME`` or ``file:/path``) and ``template_id``.
    """

    id: int
    endpoint: str
    hosts: tuple[Host, ...]
    standin: bool = False
    credentials: str = ""
    template_id: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    corpus: str
    data_categories: tuple[str, ...]
    lawful_basis: str
    purposes: tuple[str, ...]
    retention_until: dt.date
    processing_countries: tuple[str, ...]
    special_category: bool
    art9_condition: str
    record_count: int
    art10_basis: str = ""
    art10_reference: str = ""


@dataclass(frozen=True)
class SiteSpec:
    slug: str
    organisation: str
    country: str
    compute_country: str
    contact_email: str
    agreement_type: str
    agreement_document_hash: str
    agreement_valid_from: dt.date
    agreement_valid_until: dt.date
    zone: Zone
    dataset: DatasetSpec
    # (organisation, country, role) of whoever operates the zone; None: not recorded.
    zone_operator: tuple[str, str, str] | None = None
    # The app's own node config for this site's SuperNode (e.g. partition-id).
    node_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PurposeSpec:
    code: str
    name: str
    description: str


@dataclass(frozen=True)
class PolicySpec:
    name: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class ConsentSpec:
    subjects_per_site: int
    granted: dt.datetime
    expires: dt.datetime | None


@dataclass(frozen=True)
class RunSpec:
    name: str
    purpose: str
    aggregator_country: str
    num_rounds: int
    dp_mechanism: str
    dp_clipping_norm: float | None
    dp_noise_multiplier: float | None
    dp_target_epsilon: float | None
    dpia_reference: str
    dpia_document_hash: str
    dpia_valid_until: dt.date


@dataclass(frozen=True)
class Withdrawal:
    site: str
    subjects: tuple[str, ...] | str  # pseudonyms, or ALL


@dataclass(frozen=True)
class RoundSpec:
    number: int
    withdrawals: tuple[Withdrawal, ...] = ()
    # Whole datasets the site withdraws from federation before the round: (site, reason).
    dataset_withdrawals: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    purposes: tuple[PurposeSpec, ...]
    policy: PolicySpec
    sites: tuple[SiteSpec, ...]
    consent: ConsentSpec
    run: RunSpec
    rounds: tuple[RoundSpec, ...]
    # The Flower app's own run config (``[app.run_config]``), for ``federate --app``.
    app_run_config: dict[str, Any] = field(default_factory=dict)

    def pseudonyms(self, site_slug: str) -> list[str]:
        """The site's subjects, ``<slug>-s0001`` onwards."""
        return [f"{site_slug}-s{n:04d}" for n in range(1, self.consent.subjects_per_site + 1)]

    def site(self, slug: str) -> SiteSpec:
        return next(s for s in self.sites if s.slug == slug)


class _Reader:
    """Typed access to one TOML table, naming the full key in every error."""

    def __init__(self, data: Any, path: str, today: dt.date) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(path, "must be a table")
        self.data, self.path, self.today = data, path, today

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if name not in self.data:
            if default is ...:
                raise ScenarioError(self.key(name), "is required")
            return default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ScenarioError(self.key(name), f"must be {_kind_names(kinds)}")
        if not isinstance(value, kinds):
            raise ScenarioError(self.key(name), f"must be {_kind_names(kinds)}")
        return value

    def text(self, name: str, default: Any = ...) -> str:
        value = self.get(name, str, default)
        if default is ... and not value.strip():
            raise ScenarioError(self.key(name), "must not be empty")
        return value

    def country(self, name: str) -> str:
        value = self.text(name)
        if not is_country(value):
            raise ScenarioError(self.key(name), f"{value!r} is not an ISO 3166-1 alpha-2 code")
        return value

    def areas(self, name: str) -> tuple[str, ...]:
        values = self.strings(name)
        if not values:
            raise ScenarioError(self.key(name), "must name at least one country or region")
        bad = invalid_areas(list(values))
        if bad:
            raise ScenarioError(self.key(name), f"unknown countries or regions: {bad}")
        return values

    def strings(self, name: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(name, list, default)
        if not all(isinstance(v, str) and v for v in values):
            raise ScenarioError(self.key(name), "must be a list of non-empty strings")
        return tuple(values)

    def date(self, name: str) -> dt.date:
        """A TOML date, or whole days relative to the day of loading."""
        value = self.get(name, (dt.date, int))
        if isinstance(value, dt.datetime):
            raise ScenarioError(self.key(name), "must be a date or a number of days, not a time")
        return value if isinstance(value, dt.date) else self.today + dt.timedelta(days=value)

    def choice(self, name: str, choices: list[str], default: Any = ...) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise ScenarioError(self.key(name), f"{value!r} is not one of {choices}")
        return value

    def table(self, name: str) -> _Reader:
        return _Reader(self.get(name, dict), self.key(name), self.today)

    def tables(self, name: str) -> list[_Reader]:
        items = self.get(name, list)
        return [_Reader(item, f"{self.key(name)}[{i}]", self.today) for i, item in enumerate(items)]

    def only(self, *allowed: str) -> None:
        unknown = sorted(set(self.data) - set(allowed))
        if unknown:
            raise ScenarioError(self.key(unknown[0]), "unknown key")


def _party(r: _Reader) -> tuple[str, str, str]:
    r.only("organisation", "country", "role")
    return (r.text("organisation"), r.country("country"), r.choice("role", PartyRole.values))


def _transfer_register(pol: _Reader, fields: dict[str, Any], slugs: list[str]) -> None:
    """The policy's Chapter V facts; the policy service checks the rest when it is written."""
    if "model_updates_personal_data" in pol.data:
        fields["model_updates_personal_data"] = pol.get("model_updates_personal_data", bool)
    if "dpf_listing_max_age_days" in pol.data:
        fields["dpf_listing_max_age_days"] = pol.get("dpf_listing_max_age_days", int)
    for key in ("aggregator_operator", "host_operator"):
        if key in pol.data:
            organisation, country, role = _party(pol.table(key))
            fields[key] = {"organisation": organisation, "country": country, "role": role}
    safeguards = []
    for g in pol.tables("transfer_safeguards") if "transfer_safeguards" in pol.data else []:
        g.only(
            "exporter",
            "importer",
            "mechanism",
            "scc_module",
            "signed_on",
            "reference",
            "tia_reference",
            "ground",
            "reason",
        )
        entry: dict[str, Any] = {
            "exporter": g.choice("exporter", slugs),
            "importer": g.text("importer"),
            "mechanism": g.choice("mechanism", SafeguardMechanism.values),
        }
        if "scc_module" in g.data:
            entry["scc_module"] = g.get("scc_module", int)
        if "signed_on" in g.data:
            entry["signed_on"] = g.date("signed_on").isoformat()
        for key in ("reference", "tia_reference", "ground", "reason"):
            if key in g.data:
                entry[key] = g.text(key)
        safeguards.append(entry)
    if safeguards:
        fields["transfer_safeguards"] = safeguards
    certifications = []
    for c in (
        pol.tables("recipient_certifications") if "recipient_certifications" in pol.data else []
    ):
        c.only("organisation", "country", "scheme", "listing", "checked_on")
        certifications.append(
            {
                "organisation": c.text("organisation"),
                "country": c.country("country"),
                "scheme": c.choice("scheme", CertificationScheme.values),
                "listing": c.text("listing"),
                "checked_on": c.date("checked_on").isoformat(),
            }
        )
    if certifications:
        fields["recipient_certifications"] = certifications


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {
        str: "text",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
        dt.date: "a date",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _scenario_text(source: str | Path) -> str:
    if not isinstance(source, Path):
        return source
    try:
        return source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError("", f"cannot read {source}: {exc.strerror}") from None


def _purposes(top: _Reader) -> list[PurposeSpec]:
    purposes = []
    for table in top.tables("purposes"):
        table.only("code", "name", "description")
        purposes.append(
            PurposeSpec(table.text("code"), table.text("name"), table.text("description", ""))
        )
    if not purposes:
        raise ScenarioError("purposes", "must list at least one purpose")
    return purposes


def _zone(site: _Reader) -> tuple[_Reader, str, int | None, tuple[Host, ...]]:
    """The zone table's credentials, template and hosts, checked; the rest is read later."""
    zone = site.table("zone")
    zone.only("id", "endpoint", "hosts", "standin", "credentials", "template_id")
    credentials = zone.text("credentials", "")
    if credentials:
        try:
            check_ref(credentials)
        except OpenNebulaError:
            # Never echo the value: it may be a secret pasted by mistake.
            raise ScenarioError(
                zone.key("credentials"),
                "must be a reference, env:NAME or file:/absolute/path, not a secret",
            ) from None
    template_id = zone.get("template_id", int, -1)
    if template_id < -1:
        raise ScenarioError(zone.key("template_id"), "must be a template id (0 or more)")
    hosts = []
    for host in zone.tables("hosts"):
        host.only("name", "country")
        hosts.append(Host(host.text("name"), host.country("country")))
    # A host outside the declared compute country is a fact a scenario must be able to
    # state: the gate reads the declaration, placement reads where the VM landed, and
    # residency at placement refuses the site (Art. 28(3)(a), 44).
    return zone, credentials, None if template_id == -1 else template_id, tuple(hosts)


def _dataset(site: _Reader, codes: list[str]) -> DatasetSpec:
    table = site.table("dataset")
    table.only(
        "name",
        "description",
        "corpus",
        "data_categories",
        "lawful_basis",
        "purposes",
        "retention_until",
        "processing_countries",
        "special_category",
        "art9_condition",
        "art10_basis",
        "art10_reference",
        "record_count",
    )
    purposes = table.strings("purposes", tuple(codes))
    for code in purposes:
        if code not in codes:
            raise ScenarioError(table.key("purposes"), f"{code!r} is not a scenario purpose")
    return DatasetSpec(
        name=table.text("name"),
        description=table.text("description", ""),
        corpus=table.text("corpus", ""),
        data_categories=table.strings("data_categories", ("text",)),
        lawful_basis=table.choice("lawful_basis", LawfulBasis.values),
        purposes=purposes,
        retention_until=table.date("retention_until"),
        processing_countries=table.areas("processing_countries"),
        special_category=table.get("special_category", bool, False),
        art9_condition=table.choice("art9_condition", Art9Condition.values, ""),
        art10_basis=table.choice("art10_basis", Art10Basis.values, ""),
        art10_reference=table.text("art10_reference", ""),
        record_count=table.get("record_count", int, 0),
    )


def _site(site: _Reader, scenario_name: str, codes: list[str]) -> SiteSpec:
    site.only(
        "slug",
        "organisation",
        "country",
        "compute_country",
        "contact_email",
        "agreement_type",
        "agreement_document_hash",
        "agreement_valid_from",
        "agreement_valid_until",
        "zone",
        "zone_operator",
        "dataset",
        "node_config",
    )
    slug = site.text("slug")
    compute = site.country("compute_country")
    zone, credentials, template_id, hosts = _zone(site)
    dataset = _dataset(site, codes)
    return SiteSpec(
        slug=slug,
        organisation=site.text("organisation"),
        country=site.country("country"),
        compute_country=compute,
        contact_email=site.text("contact_email"),
        agreement_type=site.choice("agreement_type", AgreementType.values),
        agreement_document_hash=site.text(
            "agreement_document_hash", sha256_text(f"{scenario_name}/{slug}/agreement")
        ),
        agreement_valid_from=site.date("agreement_valid_from"),
        agreement_valid_until=site.date("agreement_valid_until"),
        zone=Zone(
            id=zone.get("id", int),
            endpoint=zone.text("endpoint", ""),
            hosts=hosts,
            standin=zone.get("standin", bool, False),
            credentials=credentials,
            template_id=template_id,
        ),
        dataset=dataset,
        zone_operator=(
            _party(site.table("zone_operator")) if "zone_operator" in site.data else None
        ),
        node_config=_app_config(site, "node_config") if "node_config" in site.data else {},
    )


def _sites(top: _Reader, scenario_name: str, codes: list[str]) -> list[SiteSpec]:
    sites = [_site(table, scenario_name, codes) for table in top.tables("sites")]
    if not sites:
        raise ScenarioError("sites", "must list at least one site")
    slugs = [s.slug for s in sites]
    if len(set(slugs)) != len(slugs):
        raise ScenarioError("sites", "lists a slug twice")
    return sites


def _policy_spec(top: _Reader, slugs: list[str]) -> PolicySpec:
    pol = top.table("policy")
    pol.only("name", *POLICY_KEYS)
    fields: dict[str, Any] = {"allowed_areas": list(pol.areas("allowed_areas"))}
    mechanisms = pol.get("transfer_mechanisms", dict, {})
    for slug in mechanisms:
        if slug not in slugs:
            raise ScenarioError(pol.key("transfer_mechanisms"), f"{slug!r} is not a scenario site")
    fields["transfer_mechanisms"] = dict(mechanisms)
    typed: tuple[tuple[tuple[str, ...], Any], ...] = (
        (("min_eligible_sites", "min_records_per_site", "approvals_required"), int),
        (("requires_approval", "requires_controller_dpo_approval", "requires_dpia"), bool),
        (("privacy_budget_epsilon", "privacy_budget_delta"), (int, float)),
        (("dp_neighbouring_relation", "dp_required_mechanism"), str),
    )
    for keys, kind in typed:
        for key in keys:
            if key in pol.data:
                value = pol.get(key, kind)
                fields[key] = float(value) if kind == (int, float) else value
    _transfer_register(pol, fields, slugs)
    return PolicySpec(name=pol.text("name"), fields=fields)


def _consent(top: _Reader) -> ConsentSpec:
    con = top.table("consent")
    con.only("subjects_per_site", "granted", "expires")
    subjects = con.get("subjects_per_site", int)
    if not 1 <= subjects <= 9999:
        raise ScenarioError(con.key("subjects_per_site"), "must be between 1 and 9999")
    midnight = dt.time(tzinfo=dt.UTC)
    granted = dt.datetime.combine(con.date("granted"), midnight)
    expires = dt.datetime.combine(con.date("expires"), midnight) if "expires" in con.data else None
    if expires is not None and expires <= granted:
        raise ScenarioError(con.key("expires"), "must be after consent.granted")
    return ConsentSpec(subjects_per_site=subjects, granted=granted, expires=expires)


def _run(top: _Reader, scenario_name: str, codes: list[str], today: dt.date) -> RunSpec:
    table = top.table("run")
    if "epsilon_per_round" in table.data:
        raise ScenarioError(
            table.key("epsilon_per_round"),
            "ε is no longer declared: set dp_mechanism, dp_clipping_norm and "
            "dp_target_epsilon (or dp_noise_multiplier); the accountant computes ε",
        )
    table.only(
        "name",
        "purpose",
        "aggregator_country",
        "num_rounds",
        "dp_mechanism",
        "dp_clipping_norm",
        "dp_noise_multiplier",
        "dp_target_epsilon",
        "dpia_reference",
        "dpia_document_hash",
        "dpia_valid_until",
    )
    purpose = table.text("purpose")
    if purpose not in codes:
        raise ScenarioError(table.key("purpose"), f"{purpose!r} is not a scenario purpose")
    dp_numbers = {
        key: (float(table.get(key, (int, float))) if key in table.data else None)
        for key in ("dp_clipping_norm", "dp_noise_multiplier", "dp_target_epsilon")
    }
    default_until = today + dt.timedelta(days=180)
    dpia_until = (
        table.date("dpia_valid_until") if "dpia_valid_until" in table.data else default_until
    )
    run = RunSpec(
        name=table.text("name"),
        purpose=purpose,
        aggregator_country=table.country("aggregator_country"),
        num_rounds=table.get("num_rounds", int),
        dp_mechanism=table.get("dp_mechanism", str, "none"),
        **dp_numbers,
        dpia_reference=table.text("dpia_reference"),
        dpia_document_hash=table.text("dpia_document_hash", sha256_text(f"{scenario_name}/dpia")),
        dpia_valid_until=dpia_until,
    )
    if run.num_rounds < 1:
        raise ScenarioError(table.key("num_rounds"), "must be at least 1")
    return run


def _withdrawal(table: _Reader, slugs: list[str], subjects: int) -> Withdrawal:
    table.only("site", "subjects")
    site = table.text("site")
    if site not in slugs:
        raise ScenarioError(table.key("site"), f"{site!r} is not a scenario site")
    chosen = table.get("subjects", (str, list))
    if isinstance(chosen, str):
        if chosen != ALL:
            raise ScenarioError(table.key("subjects"), 'must be a list of pseudonyms or "all"')
        return Withdrawal(site, ALL)
    known = {f"{site}-s{n:04d}" for n in range(1, subjects + 1)}
    for pseudonym in chosen:
        if pseudonym not in known:
            raise ScenarioError(table.key("subjects"), f"{pseudonym!r} is not a subject of {site}")
    return Withdrawal(site, tuple(chosen))


def _rounds(top: _Reader, slugs: list[str], subjects: int, num_rounds: int) -> list[RoundSpec]:
    rounds = []
    for i, table in enumerate(top.tables("rounds")):
        table.only("number", "withdraw", "withdraw_dataset")
        number = table.get("number", int)
        if number != i + 1 or number > num_rounds:
            raise ScenarioError(
                table.key("number"), f"must be {i + 1} (rounds in order, at most run.num_rounds)"
            )
        withdrawals = [
            _withdrawal(w, slugs, subjects)
            for w in (table.tables("withdraw") if "withdraw" in table.data else [])
        ]
        whole = []
        for w in table.tables("withdraw_dataset") if "withdraw_dataset" in table.data else []:
            w.only("site", "reason")
            site = w.choice("site", slugs)
            whole.append((site, w.text("reason")))
        rounds.append(
            RoundSpec(
                number=number, withdrawals=tuple(withdrawals), dataset_withdrawals=tuple(whole)
            )
        )
    if not rounds:
        raise ScenarioError("rounds", "must list at least one round")
    return rounds


def parse_scenario(source: str | Path, *, today: dt.date | None = None) -> Scenario:
    """Read and validate a scenario file (or TOML text). Raises ``ScenarioError``."""
    today = today or clock.now().date()
    text = _scenario_text(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("", f"not valid TOML: {exc}") from None

    top = _Reader(raw, "", today)
    top.only(
        "name", "description", "purposes", "policy", "sites", "consent", "run", "rounds", "app"
    )
    app_run_config: dict[str, Any] = {}
    if "app" in raw:
        app = top.table("app")
        app.only("run_config")
        app_run_config = _app_config(app, "run_config")
    name = top.text("name")
    purposes = _purposes(top)
    codes = [p.code for p in purposes]
    sites = _sites(top, name, codes)
    slugs = [s.slug for s in sites]
    policy = _policy_spec(top, slugs)
    consent = _consent(top)
    run = _run(top, name, codes, today)
    rounds = _rounds(top, slugs, consent.subjects_per_site, run.num_rounds)
    return Scenario(
        name=name,
        description=top.text("description", ""),
        purposes=tuple(purposes),
        policy=policy,
        sites=tuple(sites),
        consent=consent,
        run=run,
        rounds=tuple(rounds),
        app_run_config=app_run_config,
    )


def _app_config(reader: _Reader, name: str) -> dict[str, Any]:
    """A flat table of a Flower app's own config values (str, int, float, bool).

    Keys starting with ``fedgov`` are refused: fedgov's own keys live under ``fedgov.``
    and must never be set, or shadowed, by an app's configuration.
    """
    table = reader.get(name, dict)
    clean = {}
    for key, value in table.items():
        if str(key).startswith("fedgov"):
            raise ScenarioError(reader.key(name), f"{key}: keys starting with fedgov are fedgov's")
        if isinstance(value, dict | list) or value is None:
            raise ScenarioError(reader.key(name), f"{key}: must be a string, number or boolean")
        clean[str(key)] = value
    return clean


@dataclass
class Loaded:
    """What loading wrote or found: the run and the records it runs over."""

    run: TrainingRun
    sites: dict[str, Site]
    datasets: dict[str, Dataset]
    purposes: dict[str, Purpose]
    reused: list[str] = field(default_factory=list)
    withdrawn: dict[str, set[str]] = field(default_factory=dict)


Progress = Callable[[str], None]


def load_scenario(
    scenario: Scenario,
    *,
    dpo: Actor,
    operator: Actor,
    approver: Actor,
    progress: Progress = lambda _: None,
) -> Loaded:
    """Write the scenario through the services; returns the new run and its records.

    ``dpo`` registers sites, datasets, the policy and consent; ``operator`` creates the
    run and records its DPIA; ``approver`` (another person: four-eyes) approves the DPIA.
    Raises ``fedgov.errors.InvalidInput`` or ``TransitionNotAllowed`` from the services.
    """
    reused: list[str] = []
    purposes: dict[str, Purpose] = {}
    for spec in scenario.purposes:
        existing = Purpose.objects.filter(code=spec.code).first()
        if existing is not None:
            reused.append(f"purpose {spec.code}")
            purposes[spec.code] = existing
        else:
            purposes[spec.code] = purpose_create(
                actor=dpo, code=spec.code, name=spec.name, description=spec.description
            )

    sites: dict[str, Site] = {}
    datasets: dict[str, Dataset] = {}
    fresh: set[str] = set()
    for spec in scenario.sites:
        site = Site.objects.filter(slug=spec.slug).first()
        if site is not None:
            reused.append(f"site {spec.slug}")
        else:
            site = site_register(
                actor=dpo,
                slug=spec.slug,
                organisation=spec.organisation,
                country=spec.country,
                contact_email=spec.contact_email,
                agreement_type=spec.agreement_type,
                agreement_document_hash=spec.agreement_document_hash,
                agreement_valid_from=spec.agreement_valid_from,
                agreement_valid_until=spec.agreement_valid_until,
                compute_country=spec.compute_country,
                one_zone_endpoint=spec.zone.endpoint,
                one_zone_id=spec.zone.id,
                one_credentials_ref=spec.zone.credentials,
                one_template_id=spec.zone.template_id,
                **_zone_operator_fields(spec),
            )
        sites[spec.slug] = site
        d = spec.dataset
        dataset = Dataset.objects.filter(site=site, name=d.name).first()
        if dataset is not None:
            reused.append(f"dataset {spec.slug}/{d.name}")
        else:
            dataset = dataset_register(
                actor=dpo,
                site=site,
                name=d.name,
                lawful_basis=d.lawful_basis,
                purposes=[purposes[c] for c in d.purposes],
                retention_until=d.retention_until,
                processing_countries=list(d.processing_countries),
                data_categories=list(d.data_categories),
                description=d.description,
                special_category=d.special_category,
                art9_condition=d.art9_condition,
                record_count=d.record_count,
                art10_basis=d.art10_basis,
                art10_reference=d.art10_reference,
            )
            fresh.add(spec.slug)
        datasets[spec.slug] = dataset
        progress(f"site {spec.slug} ({spec.country}, compute in {spec.compute_country}) ready")

    policy = _policy(scenario.policy, actor=dpo, reused=reused)
    progress(f"policy {policy.name} v{policy.version} published ({policy.content_hash[:12]}…)")

    now = clock.now()
    for spec in scenario.sites:
        # A fresh dataset gets the scenario's grant date; on a re-run the consents carry
        # a history, and a new grant may not predate it, so consent is re-collected now.
        at = scenario.consent.granted if spec.slug in fresh else now
        expires = scenario.consent.expires
        events = [
            {
                "subject_pseudonym": pseudonym,
                "purpose": code,
                "kind": "grant",
                "occurred_at": at,
                "expires_at": expires if expires is not None and expires > at else None,
            }
            for pseudonym in scenario.pseudonyms(spec.slug)
            for code in spec.dataset.purposes
        ]
        consent_record_batch(actor=dpo, dataset=datasets[spec.slug], events=events)
        progress(f"consent of {len(events)} subjects recorded for {spec.slug}")

    run_name = _free_run_name(scenario.run.name)
    run = run_create(
        actor=operator,
        name=run_name,
        purpose=purposes[scenario.run.purpose],
        datasets=[datasets[s.slug] for s in scenario.sites],
        policy=policy,
        aggregator_country=scenario.run.aggregator_country,
        num_rounds=scenario.run.num_rounds,
        dp_mechanism=scenario.run.dp_mechanism,
        dp_clipping_norm=scenario.run.dp_clipping_norm,
        dp_noise_multiplier=scenario.run.dp_noise_multiplier,
        dp_target_epsilon=scenario.run.dp_target_epsilon,
        # The scenario's driver (federate, the demo) gates and drives every round itself.
        start_on_worker=False,
    )
    dpia = dpia_record(
        actor=operator,
        run=run,
        reference=scenario.run.dpia_reference,
        document_hash=scenario.run.dpia_document_hash,
    )
    dpia_approve(actor=approver, dpia=dpia, valid_until=scenario.run.dpia_valid_until)
    progress(
        f"run {run.name} created by {operator.label}; DPIA {dpia.reference} approved by "
        f"{approver.label} until {scenario.run.dpia_valid_until}"
    )
    return Loaded(
        run=run,
        sites=sites,
        datasets=datasets,
        purposes=purposes,
        reused=reused,
        withdrawn={s.slug: set() for s in scenario.sites},
    )


def _zone_operator_fields(spec: SiteSpec) -> dict[str, str]:
    if spec.zone_operator is None:
        return {}
    organisation, country, role = spec.zone_operator
    return {
        "zone_operator": organisation,
        "zone_operator_country": country,
        "zone_operator_role": role,
    }


def _policy(spec: PolicySpec, *, actor: Actor, reused: list[str]) -> ResidencyPolicy:
    latest = (
        ResidencyPolicy.objects.filter(name=spec.name, status=PolicyStatus.PUBLISHED)
        .order_by("-version")
        .first()
    )
    if latest is not None:
        current = policy_content(latest)
        wanted = {**POLICY_DEFAULTS, **spec.fields}
        if all(current.get(k) == v for k, v in wanted.items()):
            reused.append(f"policy {spec.name} v{latest.version}")
            return latest
    draft = policy_create_draft(actor=actor, name=spec.name, **spec.fields)
    return policy_publish(actor=actor, policy=draft)


def _free_run_name(base: str) -> str:
    taken = set(TrainingRun.objects.filter(name__startswith=base).values_list("name", flat=True))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def apply_round_events(
    scenario: Scenario, loaded: Loaded, round_spec: RoundSpec, *, actor: Actor
) -> dict[str, int]:
    """Record the round's withdrawals (as the sites would upload them) and its whole-dataset
    withdrawals (as the DPO records them); subject counts per site."""
    counts: dict[str, int] = {}
    now = clock.now()
    for slug, reason in round_spec.dataset_withdrawals:
        dataset = loaded.datasets[slug]
        dataset.refresh_from_db(fields=["withdrawn_at"])
        if dataset.withdrawn_at is None:
            dataset_withdraw(actor=actor, dataset=dataset, reason=reason)
    for w in round_spec.withdrawals:
        spec = scenario.site(w.site)
        done = loaded.withdrawn.setdefault(w.site, set())
        chosen = scenario.pseudonyms(w.site) if w.subjects == ALL else list(w.subjects)
        # Withdrawing twice is refused by the service; "all" means all who still consent.
        pending = [p for p in chosen if p not in done]
        if not pending:
            continue
        events = [
            {"subject_pseudonym": p, "purpose": code, "kind": "withdraw", "occurred_at": now}
            for p in pending
            for code in spec.dataset.purposes
        ]
        consent_record_batch(actor=actor, dataset=loaded.datasets[w.site], events=events)
        done.update(pending)
        counts[w.site] = counts.get(w.site, 0) + len(pending)
    return counts
