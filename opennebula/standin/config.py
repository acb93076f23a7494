"""Zone files for the stand-in: JSON describing each zone's endpoint, hosts and faults.

A zone file is data a zone admin would otherwise set in oned: clusters, hosts and
datastores with their custom ``COUNTRY`` labels, the SuperNode template, and (for tests and
demos) faults to inject. ``load`` refuses a file with a clear message naming the field.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opennebula.credentials import check_ref

DATASTORE_TYPES = {"image": 0, "system": 1, "file": 2}


class ZoneConfigError(ValueError):
    """The zone file is unreadable or describes an impossible zone."""


@dataclass
class Faults:
    """Faults one zone injects; tests flip them at run time."""

    auth: bool = False  # every call fails with AUTHENTICATION (0x100)
    slow_seconds: float = 0.0  # every answer waits this long (the client times out)
    dead: bool = False  # the endpoint does not listen (connection refused)
    stuck_pending: bool = False  # the scheduler never dispatches: VMs stay PENDING
    boot_failure: bool = False  # BOOT ends in BOOT_FAILURE instead of RUNNING
    rogue_host: int | None = None  # the scheduler dispatches here whatever the requirements
    malformed_xml: bool = False  # XML bodies are cut short
    prolog_failure: bool = False  # PROLOG ends in PROLOG_FAILURE
    stall_in: str = ""  # an LCM state name (PROLOG, BOOT) the VM never leaves by itself
    frozen_shutdown: bool = False  # a soft SHUTDOWN never completes (the guest ignores ACPI)
    recover_denied: bool = False  # the account lacks ADMIN on VMs: one.vm.recover refused


@dataclass
class ClusterSpec:
    id: int
    name: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class HostSpec:
    id: int
    name: str
    cluster_id: int
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class DatastoreSpec:
    id: int
    name: str
    type: int
    cluster_ids: list[int]
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class TemplateSpec:
    id: int
    name: str
    template: dict[str, Any]


@dataclass
class ZoneSpec:
    id: int
    name: str
    host: str
    port: int
    credentials_ref: str
    clusters: list[ClusterSpec]
    hosts: list[HostSpec]
    datastores: list[DatastoreSpec]
    templates: list[TemplateSpec]
    step_seconds: float = 0.2
    faults: Faults = field(default_factory=Faults)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/RPC2"


@dataclass
class StandinSpec:
    zones: list[ZoneSpec]
    driver_enabled: bool = False
    driver_ports: tuple[int, int] = (18450, 18499)


def _need(obj: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ZoneConfigError(f"{where}: missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ZoneConfigError(f"{where}: field '{key}' has the wrong type")
    return value


def _attrs(obj: dict, where: str) -> dict[str, str]:
    attrs = obj.get("attributes", {})
    if not isinstance(attrs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()
    ):
        raise ZoneConfigError(f"{where}: 'attributes' must map names to strings")
    return {k.upper(): v for k, v in attrs.items()}


def _zone(raw: Any, index: int) -> ZoneSpec:
    where = f"zones[{index}]"
    if not isinstance(raw, dict):
        raise ZoneConfigError(f"{where}: must be an object")
    zone_id = _need(raw, "id", int, where)
    port = _need(raw, "port", int, where)
    if not 0 <= port < 65536:
        raise ZoneConfigError(f"{where}: 'port' must be 0-65535")
    ref = _need(raw, "credentials_ref", str, where)
    try:
        check_ref(ref)
    except Exception as exc:
        raise ZoneConfigError(f"{where}: 'credentials_ref' {exc}") from None
    clusters = [
        ClusterSpec(
            id=_need(c, "id", int, f"{where}.clusters[{i}]"),
            name=_need(c, "name", str, f"{where}.clusters[{i}]"),
            attributes=_attrs(c, f"{where}.clusters[{i}]"),
        )
        for i, c in enumerate(_need(raw, "clusters", list, where))
    ]
    cluster_ids = {c.id for c in clusters}
    hosts = []
    for i, h in enumerate(_need(raw, "hosts", list, where)):
        hw = f"{where}.hosts[{i}]"
        host = HostSpec(
            id=_need(h, "id", int, hw),
            name=_need(h, "name", str, hw),
            cluster_id=_need(h, "cluster", int, hw),
            attributes=_attrs(h, hw),
        )
        if host.cluster_id not in cluster_ids:
            raise ZoneConfigError(f"{hw}: cluster {host.cluster_id} is not defined")
        hosts.append(host)
    datastores = []
    for i, d in enumerate(_need(raw, "datastores", list, where)):
        dw = f"{where}.datastores[{i}]"
        kind = d.get("type", "system")
        if kind not in DATASTORE_TYPES:
            raise ZoneConfigError(f"{dw}: 'type' must be one of {sorted(DATASTORE_TYPES)}")
        ds_clusters = d.get("clusters", [])
        if not isinstance(ds_clusters, list) or not set(ds_clusters) <= cluster_ids:
            raise ZoneConfigError(f"{dw}: 'clusters' must list defined cluster ids")
        datastores.append(
            DatastoreSpec(
                id=_need(d, "id", int, dw),
                name=_need(d, "name", str, dw),
                type=DATASTORE_TYPES[kind],
                cluster_ids=ds_clusters,
                attributes=_attrs(d, dw),
            )
        )
    templates = [
        TemplateSpec(
            id=_need(t, "id", int, f"{where}.templates[{i}]"),
            name=_need(t, "name", str, f"{where}.templates[{i}]"),
            template={
                k.upper(): v
                for k, v in _need(t, "template", dict, f"{where}.templates[{i}]").items()
            },
        )
        for i, t in enumerate(raw.get("templates", []))
    ]
    faults_raw = raw.get("faults", {})
    if not isinstance(faults_raw, dict):
        raise ZoneConfigError(f"{where}: 'faults' must be an object")
    try:
        faults = Faults(**faults_raw)
    except TypeError as exc:
        raise ZoneConfigError(f"{where}: 'faults': {exc}") from None
    step = raw.get("step_seconds", 0.2)
    if not isinstance(step, int | float) or step < 0:
        raise ZoneConfigError(f"{where}: 'step_seconds' must be a number >= 0")
    return ZoneSpec(
        id=zone_id,
        name=_need(raw, "name", str, where),
        host=raw.get("host", "127.0.0.1"),
        port=port,
        credentials_ref=ref,
        clusters=clusters,
        hosts=hosts,
        datastores=datastores,
        templates=templates,
        step_seconds=float(step),
        faults=faults,
    )


def parse(data: Any, var_dir: Path | None = None) -> StandinSpec:
    """Check and convert a zone file's data; ``{VAR_DIR}`` in credential refs is expanded."""
    if var_dir is not None and isinstance(data, dict):
        for raw in data.get("zones", []) if isinstance(data.get("zones"), list) else []:
            if isinstance(raw, dict) and isinstance(raw.get("credentials_ref"), str):
                raw["credentials_ref"] = raw["credentials_ref"].replace("{VAR_DIR}", str(var_dir))
    if not isinstance(data, dict) or not isinstance(data.get("zones"), list) or not data["zones"]:
        raise ZoneConfigError("a zone file needs a non-empty 'zones' list")
    zones = [_zone(raw, i) for i, raw in enumerate(data["zones"])]
    ids = [z.id for z in zones]
    if len(set(ids)) != len(ids):
        raise ZoneConfigError("zone ids must be unique")
    ports = [z.port for z in zones if z.port]
    if len(set(ports)) != len(ports):
        raise ZoneConfigError("zone ports must be unique")
    driver = data.get("driver", {})
    ports_raw = driver.get("ports", [18450, 18499])
    if not (isinstance(ports_raw, list) and len(ports_raw) == 2 and ports_raw[0] <= ports_raw[1]):
        raise ZoneConfigError("driver.ports must be [first, last]")
    return StandinSpec(
        zones=zones,
        driver_enabled=bool(driver.get("enabled", False)),
        driver_ports=(int(ports_raw[0]), int(ports_raw[1])),
    )


def load(path: Path, var_dir: Path | None = None) -> StandinSpec:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ZoneConfigError(f"cannot read zone file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ZoneConfigError(f"zone file {path} is not valid JSON: {exc}") from None
    return parse(data, var_dir)


def ensure_local_credentials(spec: StandinSpec) -> list[Path]:
    """Create missing ``file:`` credential files (``fedgov:<random>``, mode 0600).

    The embedded default ships no secret: each installation makes its own on first run.
    Returns the files created.
    """
    created = []
    for zone in spec.zones:
        scheme, _, target = zone.credentials_ref.partition(":")
        path = Path(target)
        if scheme != "file" or path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"fedgov:{secrets.token_urlsafe(24)}\n")
        created.append(path)
    return created
