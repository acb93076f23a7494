"""manage.py flower up|down|status|run: a local SuperLink and one SuperNode per site."""

from __future__ import annotations

import base64
import json
import os
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.keys import active_key, raw_public_bytes
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from sites.choices import SiteStatus
from sites.models import Site
from training.flower.admission import (
    SuperlinkAdmin,
    write_local_pki,
    write_supernode_key,
    write_tls_flwr_home,
)
from training.flower.supervisor import (
    SiteNode,
    Supervisor,
    federation_specs,
    flwr_run,
    wait_for_port,
    write_flwr_home,
)
from training.services.flower import supernode_admit
from training.services.orchestrate import LOCAL_HOST_FILE


def state_dir():
    return settings.VAR_DIR / "flower"


class Command(BaseCommand):
    help = "Start, stop or inspect the local Flower federation (SuperLink + SuperNodes)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        up = sub.add_parser("up", help="start the SuperLink and one SuperNode per site")
        up.add_argument(
            "--base-port", type=int, default=int(os.environ.get("FEDGOV_FLOWER_PORT", 9100))
        )
        up.add_argument(
            "--site", action="append", default=[], help="site slug (default: all active)"
        )
        up.add_argument("--api", default=os.environ.get("FEDGOV_API", "http://127.0.0.1:8000"))
        up.add_argument("--foreground", action="store_true", help="stay and stop all on Ctrl-C")
        up.add_argument(
            "--tls",
            action="store_true",
            help="local CA + TLS, SuperNode keys registered by fedgov (--enable-supernode-auth)",
        )
        sub.add_parser("down", help="stop every supervised Flower process")
        sub.add_parser("status", help="print the supervised processes as JSON")
        run = sub.add_parser("run", help="submit the governed demo app for a training run")
        run.add_argument("run_id", type=int)
        run.add_argument("--rounds", type=int, default=2)
        run.add_argument("--expected-nodes", type=int, default=0)

    def handle(self, *args, **options):
        action = options["action"]
        # `up` without --foreground leaves daemons for `down` to stop: not tied to this run.
        supervisor = Supervisor(state_dir(), owned=bool(options.get("foreground")))
        if action == "down":
            supervisor.stop_all()
            (state_dir() / "admission.json").unlink(missing_ok=True)
            (state_dir() / LOCAL_HOST_FILE).unlink(missing_ok=True)
            self.stdout.write("flower: stopped")
        elif action == "status":
            self.stdout.write(json.dumps(supervisor.status(), indent=2, sort_keys=True))
            if any(not s["alive"] for s in supervisor.status().values()):
                raise CommandError("some supervised Flower processes are not running")
        elif action == "up":
            self._up(supervisor, options)
        else:
            self._run(options)

    def _up(self, supervisor: Supervisor, options) -> None:
        if supervisor.names():
            raise CommandError(f"already up: {', '.join(supervisor.names())} (run 'flower down')")
        sites = Site.objects.filter(status=SiteStatus.ACTIVE).order_by("slug")
        if options["site"]:
            sites = sites.filter(slug__in=options["site"])
            missing = set(options["site"]) - {s.slug for s in sites}
            if missing:
                raise CommandError(f"no active site {', '.join(sorted(missing))}")
        if not sites:
            raise CommandError("no active site: register sites first")
        base = options["base_port"]
        if not 1024 < base < 65535 - len(sites):
            raise CommandError(f"--base-port {base} leaves no room for {len(sites)} SuperNodes")
        key = base64.b64encode(raw_public_bytes(active_key().public_key)).decode()
        nodes = [SiteNode(s.pk, s.slug, base + 1 + i) for i, s in enumerate(sites)]
        tls = node_keys = admin = None
        home = state_dir() / "home"
        if options["tls"]:
            tls = write_local_pki(state_dir() / "pki")
            node_keys = {
                s.slug: write_supernode_key(state_dir() / "node-keys", s.slug) for s in sites
            }
            write_tls_flwr_home(home, name="fedgov", port=base, ca_cert=tls.ca_cert)
            admin = SuperlinkAdmin(home, "fedgov")
        specs = federation_specs(
            base_port=base,
            sites=nodes,
            public_key_b64=key,
            api_url=options["api"],
            service_token=os.environ.get("FEDGOV_SERVICE_TOKEN", ""),
            cache_dir=state_dir() / "site-cache",
            tls=tls,
            node_keys=node_keys,
        )
        actor = Actor.system("flower-up")
        try:
            supervisor.start(specs[0])
            wait_for_port(base, timeout=60)
            if admin is not None:
                # A SuperNode with an unregistered key is refused: register before start.
                for site in sites:
                    supernode_admit(
                        actor=actor, site=site, superlink=admin, key=node_keys[site.slug]
                    )
                admin.save(state_dir())
            for spec in specs[1:]:
                supervisor.start(spec)
        except (OSError, TimeoutError, RuntimeError, InvalidInput) as exc:
            supervisor.stop_all()
            (state_dir() / "admission.json").unlink(missing_ok=True)
            raise CommandError(f"flower up failed: {exc}; logs in {supervisor.log_dir}") from exc
        if tls is None:
            write_flwr_home(home, name="fedgov", port=base)
        # Which sites' SuperNodes run on this host: the ticket endpoint places their rounds
        # here, checking FEDGOV_LOCAL_HOST_COUNTRY against each site's countries.
        (state_dir() / LOCAL_HOST_FILE).write_text(
            json.dumps({"sites": [s.slug for s in sites]}), encoding="utf-8"
        )
        mode = "TLS, SuperNode auth" if tls else "insecure, local only"
        self.stdout.write(
            f"flower: SuperLink on 127.0.0.1:{base} ({mode}), {len(nodes)} SuperNodes"
        )
        self.stdout.write(f"flower: logs in {supervisor.log_dir}")
        if options["foreground"]:
            self._wait(supervisor)

    def _wait(self, supervisor: Supervisor) -> None:
        stop = {"now": False}

        def on_signal(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stop["now"]:
                time.sleep(0.5)
        finally:
            supervisor.stop_all()
            (state_dir() / LOCAL_HOST_FILE).unlink(missing_ok=True)
            self.stdout.write("flower: stopped")

    def _run(self, options) -> None:
        home = state_dir() / "home"
        if not (home / "config.toml").exists():
            raise CommandError("flower is not up: run 'manage.py flower up' first")
        output = flwr_run(
            home=home,
            connection="fedgov",
            run_config={
                "fedgov-api": os.environ.get("FEDGOV_API", "http://127.0.0.1:8000"),
                "fedgov-run-id": options["run_id"],
                "num-server-rounds": options["rounds"],
                "expected-nodes": options["expected_nodes"],
            },
        )
        self.stdout.write(output)
