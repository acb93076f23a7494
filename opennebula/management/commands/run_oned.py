"""``manage.py run_oned --zones FILE``: run the local oned stand-in in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from opennebula.errors import OpenNebulaError
from opennebula.standin import config
from opennebula.standin.server import Standin

DEFAULT_ZONES = Path(__file__).resolve().parents[2] / "zones" / "local.json"


class Command(BaseCommand):
    help = "Serve the local OpenNebula stand-in (one XML-RPC endpoint per zone) until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--zones", default=str(DEFAULT_ZONES), help="zone file (JSON)")
        parser.add_argument(
            "--driver",
            action="store_true",
            help="start a flower-supernode process for every VM that reaches RUNNING",
        )
        parser.add_argument(
            "--for-seconds",
            type=float,
            default=0,
            help="stop after this many seconds (0: until SIGINT/SIGTERM)",
        )

    def handle(self, *args, zones: str, driver: bool, for_seconds: float, **options):
        var_dir = Path(settings.VAR_DIR)
        try:
            spec = config.load(Path(zones), var_dir)
        except config.ZoneConfigError as exc:
            raise CommandError(str(exc)) from None
        for path in config.ensure_local_credentials(spec):
            self.stdout.write(f"created zone credentials {path} (point sites at file:{path})")
        if driver:
            spec.driver_enabled = True
        try:
            standin = Standin(spec, var_dir / "oned")
        except OpenNebulaError as exc:
            raise CommandError(f"zone credentials: {exc}") from None
        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            try:
                standin.start()
            except OSError as exc:
                raise CommandError(f"cannot bind a zone endpoint: {exc.strerror}") from None
            for zone in standin.zones.values():
                where = "dead (fault)" if zone.faults.dead else zone.spec.endpoint
                self.stdout.write(f"zone {zone.id} {zone.spec.name}: {where}")
            stop.wait(for_seconds or None)
        finally:
            standin.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write("stand-in stopped")
