"""manage.py federate: run a whole governed federation from a scenario, round by round.

Loads the scenario through the services, starts the local oned stand-in for the zones the
scenario marks ``standin = true`` (one zone per such site zone, with its process driver:
each RUNNING VM is a real ``flower-supernode``); every other site runs on the OpenNebula
zone recorded for it (``one_zone_endpoint``, ``one_zone_id``, ``one_credentials_ref``,
``one_template_id``, from the scenario or set later with ``site_update``). Then it starts
a local SuperLink and fedgov's own API, and drives every round
through the orchestrator (gate, approval by a second scripted operator, provisioning and
placement, ticket, one real Flower round, update records, close and checkpoint). Without
a broker it calls the services; with ``CELERY_BROKER_URL`` it enqueues
``training.round_advance`` and waits for the round to move. Everything it started is
stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.db.models import Max
from rest_framework.authtoken.models import Token
from rich.table import Table

from audit import local as local_evidence
from audit.models import Checkpoint, LedgerEntry
from audit.services import checkpoint_create_if_new
from audit.timestamping import checkpoint_timestamp
from audit.witnessing import checkpoint_witness
from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import FedgovError
from fedgov.faults import crash_point
from opennebula.choices import WorkloadState
from opennebula.credentials import check_ref
from opennebula.errors import OpenNebulaError
from opennebula.identity import endpoint_identity
from opennebula.models import Workload
from opennebula.standin import config as standin_config
from opennebula.standin.server import Standin
from sites.models import SiteSteward
from sites.services import site_update
from training import selectors
from training.choices import TERMINAL_ROUND_STATES, RoundState, UpdateKind
from training.flower.supervisor import (
    REPO_ROOT,
    TUNING_DIR,
    Supervisor,
    federation_specs,
    flwr_run,
    flwr_run_status,
    free_port_block,
    tuned_env,
    wait_for_port,
    write_flwr_home,
)
from training.management.output import RichOutput, scenario_person, subjects_word
from training.models import Round
from training.scenario import (
    RoundSpec,
    Scenario,
    ScenarioError,
    apply_round_events,
    load_scenario,
    parse_scenario,
)
from training.services import orchestrate
from training.services.privacy import dp_run_config
from training.services.processes import orphans_reap, program_name
from training.services.recovery import federate_claim, runs_recover_abandoned
from training.services.rounds import round_abort, round_approve
from training.statemachine import is_terminal

S = RoundState
DEFAULT_SCENARIO = Path(settings.BASE_DIR) / "scenarios" / "virt8ra.toml"
# The scripted people: a DPO keeps the records, an operator requests the run and its
# rounds, a second DPO approves the DPIA and a second operator approves rounds (four-eyes).
PEOPLE = {
    "dpo": ("demo-dpo", roles.DPO),
    "operator": ("demo-operator", roles.OPERATOR),
    "dpia_approver": ("demo-dpo-approver", roles.DPO),
    "round_approver": ("demo-operator-2", roles.OPERATOR),
    "service": ("federate-service", roles.SERVICE),
}
# Where the orchestrator stops and this command acts: people approve, Flower trains.
HAND_OFF = frozenset({S.AWAITING_APPROVAL, S.PLACEMENT_VERIFIED})


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: stop the federation cleanly."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class ApiServer:
    """fedgov's API on 127.0.0.1:<port> in a thread, for the ServerApp and the sites."""

    def __init__(self, port: int) -> None:
        self.httpd = ThreadedWSGIServer(
            ("127.0.0.1", port), _QuietHandler, allow_reuse_address=True
        )
        self.httpd.daemon_threads = True
        self.httpd.set_app(get_wsgi_application())
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> ApiServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def external_bindings(scenario: Scenario, sites: dict) -> dict[str, str]:
    """``slug -> "zone N at endpoint"`` for the sites not served by the stand-in.

    Their binding is the one in the database (from the scenario's zone when the site was
    registered, or set since with ``site_update``). Raises ``CommandError`` naming every
    such site without an endpoint or a credentials reference, before anything starts.
    """
    bindings, problems = {}, []
    for spec in scenario.sites:
        if spec.zone.standin:
            continue
        site = sites[spec.slug]
        missing = [f for f in ("one_zone_endpoint", "one_credentials_ref") if not getattr(site, f)]
        if missing:
            problems.append(f"{spec.slug} has no {' and no '.join(missing)}")
            continue
        try:
            check_ref(site.one_credentials_ref)
            identity = endpoint_identity(site.one_zone_endpoint)
        except (OpenNebulaError, ValueError) as exc:
            problems.append(f"{spec.slug}: {exc}")
            continue
        bindings[spec.slug] = f"zone {site.one_zone_id} at {identity}"
    if problems:
        raise CommandError(
            "sites on a real OpenNebula need a zone binding (the scenario's zone "
            "endpoint/credentials, or site_update): " + "; ".join(problems)
        )
    return bindings


def standin_data(scenario: Scenario, var_dir: Path) -> dict:
    """A stand-in zone per ``standin = true`` scenario zone, its hosts, clusters and
    datastores labelled by country.

    Ports are 0 (the OS picks a free one; sites are bound to the real endpoint after).
    """
    zones: dict[int, dict] = {}
    for site in scenario.sites:
        zone = site.zone
        if zone.id in zones or not zone.standin:
            continue
        hosts = zone.hosts or ()
        countries = sorted({h.country for h in hosts}) or [site.compute_country]
        cluster_of = {c: 100 + i for i, c in enumerate(countries)}
        zones[zone.id] = {
            "id": zone.id,
            "name": f"{scenario.name}-{site.slug}",
            "port": 0,
            "credentials_ref": f"file:{var_dir}/oned/credentials/zone-{zone.id}",
            "step_seconds": 0.1,
            "clusters": [
                {"id": cid, "name": f"{c.lower()}-cluster", "attributes": {"COUNTRY": c}}
                for c, cid in cluster_of.items()
            ],
            "hosts": [
                {
                    "id": i,
                    "name": h.name,
                    "cluster": cluster_of[h.country],
                    "attributes": {"COUNTRY": h.country},
                }
                for i, h in enumerate(hosts)
            ]
            or [
                {
                    "id": 0,
                    "name": f"{site.slug}-kvm-01",
                    "cluster": cluster_of[site.compute_country],
                    "attributes": {"COUNTRY": site.compute_country},
                }
            ],
            "datastores": [
                {
                    "id": i,
                    "name": f"system-{c.lower()}",
                    "type": "system",
                    "clusters": [cid],
                    "attributes": {"COUNTRY": c, "TM_MAD": "ssh"},
                }
                for i, (c, cid) in enumerate(cluster_of.items())
            ],
            "templates": [
                {
                    "id": 0,
                    "name": "fedgov-supernode",
                    "template": {"CPU": "1", "VCPU": "1", "MEMORY": "1024"},
                }
            ],
        }
    return {"zones": list(zones.values())}


def _ports(text: str) -> tuple[int, int]:
    try:
        first, last = (int(p) for p in text.split("-", 1))
    except ValueError:
        raise CommandError(f"--ports must be FIRST-LAST, got {text!r}") from None
    if not 1024 <= first < last <= 65535 or last - first < 15:
        raise CommandError("--ports needs at least 16 ports between 1024 and 65535")
    return first, last


def node_config_text(config: dict) -> str:
    """Flower's ``--node-config`` text (``key=value`` pairs, TOML values) of a site's
    app node config from the scenario."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, str):
            return json.dumps(v)
        return str(v)

    return " ".join(f"{k}={value(v)}" for k, v in sorted(config.items()))


class Command(RichOutput, BaseCommand):
    help = (
        "Run a governed federation from a scenario: gate, approve, provision on the local "
        "OpenNebula stand-in, ticket, train with real Flower processes, record, close and "
        "checkpoint every round. Leaves no process or VM behind."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
        parser.add_argument("--rounds", type=int, default=0, help="run only the first N rounds")
        parser.add_argument(
            "--ports",
            default="19000-19099",
            help="local ports for the SuperLink, fedgov's API and the SuperNodes",
        )
        parser.add_argument(
            "--local-epochs",
            type=int,
            default=None,
            help="override the demo app's local-epochs (default: the app's own setting)",
        )
        parser.add_argument(
            "--app",
            type=Path,
            default=None,
            help="a Flower app folder to run instead of fedgov's demo; it must use "
            "fedgov_flower.governed() and declare the fedgov.* run config keys "
            "(docs/byo-flower-app.md)",
        )
        parser.add_argument(
            "--round-timeout", type=float, default=300, help="seconds one Flower round may take"
        )
        parser.add_argument("--width", type=int, default=120, help="table width in columns")
        parser.add_argument(
            "--recover",
            action="store_true",
            help="only clean up after an earlier federate that was killed (its Flower "
            "processes, rounds and VMs), then exit",
        )

    # -- the run ------------------------------------------------------------------------

    def _read_options(
        self, scenario: Path, rounds: int, ports: str, options: dict[str, Any]
    ) -> tuple[Scenario, list[RoundSpec], tuple[int, int]]:
        """Check the command line and read the scenario; a bad one is a CommandError."""
        self.console_width = options["width"]
        self.epochs = options["local_epochs"]
        self.app = options["app"].resolve() if options["app"] else None
        if self.app is not None and not (self.app / "pyproject.toml").exists():
            raise CommandError(f"--app {self.app}: no pyproject.toml (not a Flower app)")
        self.round_timeout = options["round_timeout"]
        port_range = _ports(ports)
        if rounds < 0:
            raise CommandError("--rounds must be 0 (all) or a positive number")
        try:
            spec = parse_scenario(scenario)
        except ScenarioError as exc:
            raise CommandError(f"bad scenario {scenario}: {exc}") from None
        self.spec = spec
        round_specs = list(spec.rounds[:rounds] if rounds else spec.rounds)
        if not round_specs:
            raise CommandError(f"scenario {scenario} has no rounds")
        return spec, round_specs, port_range

    def _end_leftovers(self) -> None:
        """A federate killed outright (kill -9, a lost machine) may have left Flower,
        witness and TSA processes whose watchdog died with it, and rounds nothing else
        moves: end them before starting anew."""
        reaped = orphans_reap(actor=Actor.system("federate"))
        if reaped:
            self._say(
                f"  • ended {len(reaped)} process(es) left by an earlier crash: "
                + ", ".join(sorted({program_name(p.command) for p in reaped}))
            )
        for ended in runs_recover_abandoned(actor=Actor.system("federate")):
            self._say(
                f"  • round {ended.number} of run {ended.run.name}, left by an earlier crash: "
                f"{ended.state} — {ended.state_reason}"
            )

    def handle(self, *args, scenario: Path, rounds: int, ports: str, **options) -> None:
        spec, round_specs, (first, last) = self._read_options(scenario, rounds, ports, options)
        self.broker = bool(settings.CELERY_BROKER_URL)
        started = time.monotonic()
        # The round approver decides and the DPO requests the signed report: both
        # prove a second factor, as the services require of a person.
        people = {
            key: scenario_person(*value, second_factor=key in ("round_approver", "dpo"))
            for key, value in PEOPLE.items()
        }
        self.operator = people["operator"]
        self.dpo = people["dpo"]
        self._say(f"[bold]fedgov federate[/] · scenario [cyan]{spec.name}[/] ({scenario})")
        self._say(
            "  • steps run "
            + (f"on the broker {settings.CELERY_BROKER_URL}" if self.broker else "in-process")
        )
        self._end_leftovers()
        if options.get("recover"):
            # The release of VMs and the round ends are evidence: sign them in.
            checkpoint_create_if_new(actor=Actor.system("federate"))
            self._say("  • recovery done")
            return
        try:
            loaded = load_scenario(
                spec,
                dpo=people["dpo"],
                operator=people["operator"],
                approver=people["dpia_approver"],
                progress=lambda line: self._say(f"  • {line}"),
            )
        except FedgovError as exc:
            raise CommandError(f"loading the scenario failed: {exc}") from None
        self.run = loaded.run
        self.var = Path(settings.VAR_DIR) / "federate" / self.run.name
        self.var.mkdir(parents=True, exist_ok=True)
        self.stack = contextlib.ExitStack()
        self.current: Round | None = None
        # Outlives self.stack: the report at the end asks the witnesses and the TSA.
        self.evidence_stack = contextlib.ExitStack()
        self._start_witnesses(loaded)
        finished = False
        previous = {
            sig: signal.signal(sig, self._interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._start_infrastructure(spec, loaded, people, first, last)
            owner = federate_claim(
                var=self.var,
                run=self.run,
                endpoints=[self.standin.endpoint(z) for z in self.standin.zones]
                if self.standin is not None
                else [],
            )
            self.stack.callback(owner.unlink, missing_ok=True)
            carried = ""
            for round_spec in round_specs:
                withdrawn = apply_round_events(spec, loaded, round_spec, actor=people["dpo"])
                carried = self._round(round_spec.number, withdrawn, people, carried)
            finished = True
        except Interrupted:
            self._say("[yellow]interrupted: aborting the round and stopping everything[/]")
            self._abort_current("interrupted by the operator (Ctrl-C)")
            raise CommandError("interrupted; nothing left running") from None
        except FedgovError as exc:
            self._abort_current(f"federate stopped: {exc}")
            raise CommandError(f"the federation stopped: {exc}") from None
        finally:
            # A second Ctrl-C must not cut the clean-up short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                self._release_all()
                self.stack.close()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                if not finished:
                    self.evidence_stack.close()
        with self.evidence_stack:
            self._summary(time.monotonic() - started)

    def _start_witnesses(self, loaded) -> None:
        """One witness process per site and a TSA process, named in the settings."""

        def override(name: str, value) -> None:
            missing = object()
            old = getattr(settings, name, missing)
            setattr(settings, name, value)
            self.evidence_stack.callback(
                lambda: delattr(settings, name) if old is missing else setattr(settings, name, old)
            )

        evidence = self.evidence_stack.enter_context(
            local_evidence.running(
                self.var.parent / "evidence",
                sorted(loaded.sites),
                actor=self.operator,
                override=override,
            )
        )
        for problem in evidence.problems:
            self._say(f"  • [yellow]{problem}[/] (witnessing or timestamping is delayed)")
        self._say(
            f"  • {len(evidence.witnesses)} site witness process(es), quorum "
            f"{evidence.quorum}; TSA {evidence.tsa_url or '(none: no trusted time)'}"
        )

    def _interrupt(self, signum, frame) -> None:
        raise Interrupted(signal.Signals(signum).name)

    def _start_infrastructure(self, spec, loaded, people, first: int, last: int) -> None:
        base = free_port_block(2, first=first, last=last)
        superlink_port, api_port = base, base + 1
        driver_ports = (base + 2, last)
        api = ApiServer(api_port).start()
        self.stack.callback(api.stop)
        self.api_url = api.url

        for slug, binding in external_bindings(spec, loaded.sites).items():
            self._say(f"  • {slug} runs on its own OpenNebula: {binding}")
        standin = None
        if any(s.zone.standin for s in spec.sites):
            standin_spec = standin_config.parse(standin_data(spec, self.var))
            standin_spec.driver_enabled = True
            standin_spec.driver_ports = driver_ports
            standin_config.ensure_local_credentials(standin_spec)
            standin = Standin(standin_spec, self.var / "oned")
            for zone_id, zone in standin.zones.items():
                # The stand-in keeps its VMs on disk (var/federate/<run>/oned/state); an
                # older var dir may lack them, so continue after the ids rows recorded.
                used = Workload.objects.filter(zone_id=zone_id).aggregate(m=Max("vm_id"))["m"]
                zone._next_vm_id = max(zone._next_vm_id, (used or 0) + 1)
            standin.start()
            self.stack.callback(standin.stop)
        self.standin = standin

        service_token = Token.objects.get_or_create(user=people["service"].user)[0].key
        site_context = {}
        for slug, site in loaded.sites.items():
            zone_id = spec.site(slug).zone.id
            if standin is not None and spec.site(slug).zone.standin:
                # Only stand-in sites are rebound; the others keep their real zone.
                site_update(
                    actor=people["dpo"],
                    site=site,
                    one_zone_endpoint=standin.endpoint(zone_id),
                    one_zone_id=zone_id,
                    one_credentials_ref=standin.zones[zone_id].spec.credentials_ref,
                    one_template_id=0,
                )
            steward = scenario_person(f"steward-{slug}", roles.SITE_STEWARD)
            SiteSteward.objects.get_or_create(user=steward.user, site=site)
            site_context[slug] = {
                "FEDGOV_SITE_TOKEN": Token.objects.get_or_create(user=steward.user)[0].key
            }
            if spec.site(slug).node_config:
                site_context[slug]["FEDGOV_NODE_CONFIG"] = node_config_text(
                    spec.site(slug).node_config
                )
        tuned = tuned_env()
        self._override("FEDGOV_ONE_SUPERLINK_ADDRESS", f"127.0.0.1:{superlink_port}")
        self._override("FEDGOV_ONE_POLL_INITIAL", 0.1)
        self._override("FEDGOV_ONE_POLL_MAX", 0.5)
        self._override("FEDGOV_ONE_RUNNING_DEADLINE", 60.0)
        self._override(
            "FEDGOV_SUPERNODE_CONTEXT",
            {
                "FEDGOV_API": self.api_url,
                "PYTHONPATH": f"{TUNING_DIR}:{REPO_ROOT}",
                **tuned,
            },
        )
        self._override("FEDGOV_SUPERNODE_SITE_CONTEXT", site_context)
        if self.broker:
            # Workers read the VMs' context from the shared var dir (it holds site tokens).
            common = {
                **settings.FEDGOV_SUPERNODE_CONTEXT,
                "ONEAPP_FL_SUPERLINK_ADDRESS": f"127.0.0.1:{superlink_port}",
            }
            path = Path(settings.VAR_DIR) / orchestrate.CONTEXT_FILE
            path.touch(mode=0o600)
            path.write_text(json.dumps({"common": common, "sites": site_context}))
            self.stack.callback(path.unlink, missing_ok=True)

        supervisor = Supervisor(self.var / "flower")
        self.stack.callback(supervisor.stop_all, grace=3)
        (link,) = federation_specs(
            base_port=superlink_port,
            sites=[],
            public_key_b64="",
            api_url=self.api_url,
            service_token=service_token,
            cache_dir=self.var / "cache",
            extra_env=tuned,
        )
        supervisor.start(link)
        wait_for_port(superlink_port)
        self.flwr_home = write_flwr_home(self.var / "flwr-home", name="fedgov", port=superlink_port)
        zones = ", ".join(
            f"{z.id} {z.spec.name} ({z.spec.endpoint})" for z in standin.zones.values()
        )
        self._say(f"  • oned stand-in zones: {zones}")
        self._say(f"  • SuperLink 127.0.0.1:{superlink_port}; fedgov API {self.api_url}")

    def _override(self, name: str, value) -> None:
        missing = object()
        old = getattr(settings, name, missing)
        setattr(settings, name, value)
        self.stack.callback(
            lambda: delattr(settings, name) if old is missing else setattr(settings, name, old)
        )

    # -- one round ----------------------------------------------------------------------

    def _round(self, number: int, withdrawn: dict[str, int], people, carried: str) -> str:
        self._say("")
        self._say(f"[bold]Round {number}[/] of run [cyan]{self.run.name}[/]")
        for slug, count in withdrawn.items():
            self._say(f"  • {slug}: {count} {subjects_word(count)} withdrew consent")
        round_ = orchestrate.round_start(actor=self.operator, run=self.run, round_no=number)
        self.current = round_
        self._say(f"  • gate: {round_.state} — {round_.state_reason}")
        round_ = self._drive(round_)
        if round_.state == S.AWAITING_APPROVAL:
            round_approve(
                actor=people["round_approver"],
                round=round_,
                reason="gate decision and DPIA reviewed (scripted second operator)",
            )
            self._say(f"  • approved by {people['round_approver'].label} (four-eyes)")
            round_ = self._drive(Round.objects.get(pk=round_.pk))
        accuracy = None
        if round_.state == S.PLACEMENT_VERIFIED:
            self._say(f"  • placement verified: {round_.state_reason}")
            accuracy, trained = self._flower_round(round_, carried)
            round_ = Round.objects.get(pk=round_.pk)
            if round_.state == S.PLACEMENT_VERIFIED or (
                round_.state == S.RUNNING and not round_.updates.exists()
            ):
                orchestrate.round_fail(
                    actor=self.operator,
                    round=round_,
                    reason="the Flower round ended without recording any update",
                )
            round_ = self._drive(Round.objects.get(pk=round_.pk))
            if round_.state == S.CLOSED:
                # Only a closed round's aggregate is the model the next round starts from.
                carried = trained
        self._table(round_, accuracy)
        self.current = None
        return carried

    def _drive(self, round_: Round) -> Round:
        """Advance until the round is terminal or waits for this command."""
        while not is_terminal(round_.state) and round_.state not in HAND_OFF:
            before = round_.state
            if round_.state == S.RUNNING and not round_.updates.exists():
                return round_
            if self.broker:
                round_ = self._advance_on_broker(round_)
            else:
                orchestrate.round_advance(actor=self.operator, round_id=round_.pk)
                round_ = Round.objects.get(pk=round_.pk)
            if round_.state != before:
                self._say(f"  • {before} → {round_.state}")
            else:
                break
        if round_.state == S.CLOSED and not self.broker:
            orchestrate.round_advance(actor=self.operator, round_id=round_.pk)
        return round_

    def _advance_on_broker(self, round_: Round) -> Round:
        """Queue the round's next step for a worker and wait until the round moves.

        The queued message is not trusted to arrive: a broker can drop it, a purge can
        remove it, a process can die between the commit and the publish. Once the round
        has sat still for ``FEDGOV_ROUND_STALL_SECONDS`` (the stalled-round sweep's own
        limit), the step is queued again, and again after each such stretch. A duplicate
        is harmless: ``round_advance`` claims the round in the database, so a second
        message while a worker is still in the step comes back unmoved, and each message
        names the state it was sent for, so one that arrives after the round moved on
        takes no step of its own.
        """
        from training.tasks import round_advance

        before = round_.state
        round_advance.delay(round_.pk, str(before))
        started = time.monotonic()
        deadline = started + self.round_timeout
        stall = max(1.0, float(settings.FEDGOV_ROUND_STALL_SECONDS))
        requeue_at = started + stall
        while time.monotonic() < deadline:
            close_old_connections()
            current = Round.objects.get(pk=round_.pk)
            if current.state == before and time.monotonic() >= requeue_at:
                waited = time.monotonic() - started
                self._say(
                    f"  • round {current.number} still {before} after {waited:.0f} s: "
                    "its step is queued again (the earlier message may be lost)"
                )
                round_advance.delay(round_.pk, str(before))
                requeue_at = time.monotonic() + stall
                continue
            if current.state != before:
                # Crash tests only (inert unless FEDGOV_CRASH_AT names it): this process
                # dies while the worker's step has left the round in this state.
                crash_point(f"federate.saw.{current.state}")
                if current.state == S.CLOSED:
                    # The checkpoint follows the close in the same task: wait for it.
                    self._wait_checkpoint(current)
                return current
            time.sleep(0.2)
        raise CommandError(f"round {round_.number} stayed {before} for {self.round_timeout}s")

    def _wait_checkpoint(self, round_: Round) -> None:
        closed = LedgerEntry.objects.filter(
            event_type="round.closed", subject_id=str(round_.pk)
        ).first()
        deadline = time.monotonic() + 60
        while closed is not None and time.monotonic() < deadline:
            if Checkpoint.objects.filter(size__gt=closed.seq).exists():
                return
            time.sleep(0.2)

    def _flower_round(self, round_: Round, carried: str) -> tuple[float | None, str]:
        running = Workload.objects.filter(run=self.run, state=WorkloadState.RUNNING).count()
        evidence = self.var / f"round{round_.number}"
        vms = "VM" if running == 1 else "VMs"
        self._say(f"  • Flower round on {running} SuperNode {vms} …")
        if self.app is not None:
            return self._app_round(round_, running), carried
        epochs = {"local-epochs": self.epochs} if self.epochs is not None else {}
        flwr_run(
            home=self.flwr_home,
            connection="fedgov",
            run_config={
                "fedgov-api": self.api_url,
                "fedgov-run-id": self.run.pk,
                "num-server-rounds": 1,
                "round-offset": round_.number - 1,
                **epochs,
                "expected-nodes": running,
                "evidence-dir": str(evidence),
                "initial-arrays": carried,
                **dp_run_config(self.run),
            },
        )
        crash_point("flower.round")  # crash tests only: inert unless FEDGOV_CRASH_AT names it
        deadline = time.monotonic() + self.round_timeout
        while not (evidence / "summary.json").exists():
            if time.monotonic() > deadline:
                raise CommandError(f"round {round_.number}: the Flower round did not finish")
            time.sleep(0.2)
        # The summary is written when the ServerApp ends; wait for a complete file.
        summary = None
        while summary is None and time.monotonic() < deadline:
            try:
                summary = json.loads((evidence / "summary.json").read_text())
            except json.JSONDecodeError:
                time.sleep(0.1)
        summary = summary or {}
        for failure in summary.get("failure", []):
            self._say(f"  [red]• Flower: {failure}[/]")
        accuracy = (summary.get("accuracy") or {}).get("1")
        final = evidence / "final-arrays.npz"
        return accuracy, (str(final) if final.exists() else carried)

    def _app_round(self, round_: Round, running: int) -> float | None:
        """One fedgov round of the user's own app: ``flwr run APP`` with the scenario's run
        config and fedgov's namespaced keys; done when fedgov recorded the round's
        aggregate (the app reports through ``fedgov_flower.governed``) or it failed.

        The app keeps its own model between rounds (each ``flwr run`` is one fedgov
        round, ``fedgov.round-offset`` numbers it): see docs/byo-flower-app.md.
        """
        output = flwr_run(
            home=self.flwr_home,
            connection="fedgov",
            app_dir=self.app,
            run_config={
                **self.spec.app_run_config,
                "fedgov.api": self.api_url,
                "fedgov.run-id": self.run.pk,
                "fedgov.round-offset": round_.number - 1,
                "fedgov.expected-nodes": running,
            },
        )
        found = re.search(r"run (\d+)", output)
        flower_run = found.group(1) if found else ""
        deadline = time.monotonic() + self.round_timeout
        while time.monotonic() < deadline:
            # Done when Flower says the run finished (its evaluate step included), or,
            # if Flower cannot say, when fedgov has the round's aggregate.
            if flower_run:
                status = flwr_run_status(
                    home=self.flwr_home, connection="fedgov", run_id=flower_run
                )
                if status.startswith("finished"):
                    break
            else:
                current = Round.objects.get(pk=round_.pk)
                if current.state in TERMINAL_ROUND_STATES:
                    break
                if current.updates.filter(kind=UpdateKind.AGGREGATE).exists():
                    break
            time.sleep(0.5)
        else:
            raise CommandError(f"round {round_.number}: the app's Flower round did not finish")
        return None

    def _abort_current(self, reason: str) -> None:
        if self.current is None:
            return
        round_ = Round.objects.get(pk=self.current.pk)
        if is_terminal(round_.state):
            return
        with contextlib.suppress(FedgovError):
            round_abort(actor=self.operator, round=round_, reason=reason)

    def _release_all(self) -> None:
        if not hasattr(self, "run"):
            return
        last = Round.objects.filter(run=self.run).order_by("-number").first()
        if last is not None:
            orchestrate.round_release_workloads(
                actor=self.operator, round=last, reason="manage.py federate finished"
            )

    # -- output -------------------------------------------------------------------------

    def _table(self, round_: Round, accuracy: float | None) -> None:
        decision = round_.gate_decisions.order_by("-evaluated_at", "-pk").first()
        view = selectors.gate_decision_view(decision) if decision else None
        failing: dict[str, list[str]] = {}
        for r in view.results if view else []:
            if not r.ok:
                failing.setdefault(r.site_slug or "round", []).append(
                    f"{r.rule_id} ({r.article}): {r.reason}"
                )
        workloads = {
            w.site_slug: w
            for w in Workload.objects.filter(run=self.run).order_by("created_at", "id")
        }
        updates = {
            u.site.slug: u
            for u in round_.updates.filter(kind=UpdateKind.SITE, accepted=True).select_related(
                "site"
            )
        }
        table = Table(header_style="bold", show_lines=False)
        for column in ("site", "gate", "VM placement (now)", "records used / excl.", "update"):
            table.add_column(column)
        for e in view.eligibilities if view else []:
            gate = "[green]eligible[/]" if e.eligible else "[red]blocked[/]"
            if not e.eligible and failing.get(e.site_slug):
                gate += "\n" + "\n".join(failing[e.site_slug])
            w = workloads.get(e.site_slug)
            placement = (
                f"zone {w.zone_id} · {w.host or '—'} · {w.host_country or '—'}\n[dim]{w.state}[/]"
                if w and e.eligible
                else "—"
            )
            if w and e.eligible and w.state == WorkloadState.BLOCKED:
                placement += f"\n[red]{w.reason}[/]"
            u = updates.get(e.site_slug)
            records = f"{u.records_used} / {u.records_excluded}" if u else "—"
            table.add_row(e.site_slug, gate, placement, records, u.update_hash[:12] if u else "—")
        self._emit(table)
        for reason in failing.get("round", []):
            self._say(f"  [red]✗[/] round · {reason}")
        aggregate = round_.updates.filter(kind=UpdateKind.AGGREGATE).first()
        colour = "green" if round_.state == S.CLOSED else "red"
        self._say(f"  State: [bold {colour}]{round_.state.upper()}[/] — {round_.state_reason}")
        if aggregate is not None:
            self._say(f"  Aggregate: {aggregate.update_hash[:12]}")
        if accuracy is not None:
            self._say(f"  Held-out accuracy: {accuracy:.3f}")
        self._say_privacy(round_)
        checkpoint = Checkpoint.objects.order_by("-size").first()
        if checkpoint is not None and round_.state == S.CLOSED:
            self._say(
                f"  Checkpoint: size {checkpoint.size}, root {bytes(checkpoint.root).hex()[:16]}…"
            )

    def _dp_comparison(self) -> None:
        """Held-out accuracy with and without the run's DP on the same seeds (in-process)."""
        config = dp_run_config(self.run)
        if not config:
            return
        from fedgov_flower.dp import DpPlan
        from training.flower.dp_eval import compare

        plan = DpPlan.from_run_config(config)
        result = compare(plan, rounds=self.run.num_rounds, local_epochs=self.epochs or 10)
        without = " → ".join(f"{a:.3f}" for a in result["without_dp"])
        with_dp = " → ".join(f"{a:.3f}" for a in result["with_dp"])
        self._say(
            f"Accuracy on the same seeds (in-process, all EEA sites, {result['rounds']} rounds): "
            f"without DP {without}; with {plan.mechanism} DP (C={plan.clipping_norm:g}, "
            f"z={plan.noise_multiplier:g}) {with_dp}"
        )

    def _say_privacy(self, round_: Round) -> None:
        """The round's privacy record: mechanism, parameters and the accountant's ε."""
        from training.models import RoundPrivacy

        p = RoundPrivacy.objects.filter(round=round_).first()
        if p is None:
            return
        if not p.private:
            self._say("  Privacy: [red]aggregate released without noise — no ε can be claimed[/]")
            return
        self._say(
            f"  Privacy: {p.mechanism} DP, C={p.clipping_norm:g}, z={p.noise_multiplier:g}, "
            f"{p.sampled_clients}/{p.total_clients} sites, noise σ={p.noise_std:.3g}; "
            f"ε spent {p.epsilon:.3f} of {p.epsilon_limit:g} at δ={p.delta:g} (Flower RDP)"
        )

    def _say_witnessed(self, checkpoint: Checkpoint) -> None:
        """Cosignatures and trusted time of the latest checkpoint; a witness that is down is
        named, and the checkpoint is witnessed later."""
        stamp = checkpoint_timestamp(size=checkpoint.size)
        self._say(
            f"Trusted time: {stamp.stored.gen_time:%Y-%m-%d %H:%M:%S} UTC (RFC 3161)"
            if stamp.ok
            else f"Trusted time: [yellow]{stamp.detail}[/]"
        )
        if not settings.FEDGOV_WITNESSES:
            return
        outcome = checkpoint_witness(size=checkpoint.size)
        cosigned = checkpoint.cosignatures.count()
        colour = "green" if cosigned >= settings.FEDGOV_WITNESS_QUORUM else "yellow"
        self._say(
            f"Witnessed: [{colour}]{cosigned} of {len(settings.FEDGOV_WITNESSES)}[/] site "
            f"witnesses cosigned size {checkpoint.size} (quorum {settings.FEDGOV_WITNESS_QUORUM})"
        )
        for reply in outcome.failures:
            self._say(f"  • [yellow]{reply.name}: {reply.detail}[/]")

    def _report(self) -> None:
        """Ask for the run's signed audit report (PDF and evidence bundle) and say where."""
        try:
            from reports.choices import ReportStatus
            from reports.services import report_file, report_generate
        except ImportError:  # the reports app is optional for this command
            return
        report = report_generate(actor=self.dpo, run=self.run)
        report.refresh_from_db()
        if report.status == ReportStatus.DONE:
            self._say(f"Report (PDF): {report_file(report=report, kind='pdf')}")
            self._say(f"Evidence bundle: {report_file(report=report, kind='bundle')}")
        else:
            self._say(f"Report {report.public_id}: {report.status} {report.error or ''}".rstrip())

    def _summary(self, seconds: float) -> None:
        self._report()
        rounds = Round.objects.filter(run=self.run).order_by("number")
        # The VMs released after the last close are evidence too: sign them in.
        checkpoint = checkpoint_create_if_new(actor=self.operator) or (
            Checkpoint.objects.order_by("-size").first()
        )
        db = settings.DATABASES["default"]
        where = db["NAME"] if db["ENGINE"].endswith("sqlite3") else f"{db['ENGINE']} {db['NAME']}"
        self._say("")
        self._say(
            "Rounds: " + ", ".join(f"{r.number} {r.state}" for r in rounds) + f" · {seconds:.0f} s"
        )
        self._say(f"Ledger: {LedgerEntry.objects.count()} events in audit_ledgerentry of {where}")
        if checkpoint is not None:
            path = self.var / "checkpoint.txt"
            path.write_text(checkpoint.note)
            self._say(f"Latest checkpoint: size {checkpoint.size}, signed note in {path}")
            self._say_witnessed(checkpoint)
        pinned = ",".join(str(path) for path in settings.FEDGOV_TSA_CERT_FILES)
        verify = f"FEDGOV_TSA_CERT_FILES={pinned} " if pinned else ""
        self._say(f"Verify: {verify}manage.py ledger_verify · evidence of each round in {self.var}")
        self._dp_comparison()
        left = Workload.objects.filter(run=self.run, state=WorkloadState.RUNNING).count()
        self._say(f"VMs left running: {left}")
