"""Serve stand-in zones over XML-RPC (stdlib), one endpoint per zone, at ``/RPC2``.

``Standin.start(spec)`` binds every zone that is not marked dead, runs a ticker that moves
VMs through their states, and (if enabled) the process driver; ``stop()`` undoes it all.
Tests run it in-process on free ports; ``manage.py run_oned`` runs it in the foreground.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from opennebula.credentials import resolve
from opennebula.standin.config import StandinSpec
from opennebula.standin.driver import ProcessDriver
from opennebula.standin.zone import Vm, Zone

logger = logging.getLogger("fedgov.opennebula.standin")

TICK_SECONDS = 0.05


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def log_message(self, format, *args):
        logger.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    allow_reuse_address = True


class _ZoneEndpoint:
    """The object the XML-RPC server dispatches to: faults first, then the zone."""

    def __init__(self, zone: Zone, stopping: threading.Event) -> None:
        self.zone = zone
        self.stopping = stopping

    def _dispatch(self, method: str, params: tuple):
        delay = self.zone.faults.slow_seconds
        if delay:
            # Interruptible, so stopping the stand-in never waits for a slow answer.
            self.stopping.wait(delay)
        return self.zone.dispatch(method, params)


class Standin:
    """A running set of stand-in zones."""

    def __init__(self, spec: StandinSpec, var_dir: Path) -> None:
        self.spec = spec
        self.var_dir = Path(var_dir)
        self.driver = (
            ProcessDriver(self.var_dir / "supernodes", spec.driver_ports)
            if spec.driver_enabled
            else None
        )
        self._stopping = threading.Event()
        self._servers: dict[int, _Server] = {}
        self._threads: list[threading.Thread] = []
        self.zones: dict[int, Zone] = {}
        for zone_spec in spec.zones:
            self.zones[zone_spec.id] = self._zone(zone_spec)
        self._to_stop: list[tuple[int, int]] = []

    def state_path(self, zone_id: int) -> Path:
        """Where a zone keeps its VMs across restarts (oned's database)."""
        return self.var_dir / "state" / f"zone-{zone_id}.json"

    def _zone(self, zone_spec) -> Zone:
        return Zone(
            zone_spec,
            resolve(zone_spec.credentials_ref),
            federation=lambda: list(self.spec.zones),
            on_running=self._vm_running,
            on_stopped=self._vm_stopped,
            state_path=self.state_path(zone_spec.id),
            # Driven SuperNodes are child processes: they did not survive a restart.
            processes_lost=self.driver is not None,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Standin:
        try:
            for zone in self.zones.values():
                if not zone.faults.dead:
                    self._serve(zone)
        except OSError:
            # A later zone's port was taken: close the zones already serving, so a failed
            # start leaves no listening socket or serving thread behind.
            self.stop()
            raise
        ticker = threading.Thread(target=self._tick_forever, name="oned-ticker", daemon=True)
        ticker.start()
        self._threads.append(ticker)
        return self

    def _serve(self, zone: Zone) -> None:
        server = _Server(
            (zone.spec.host, zone.spec.port),
            requestHandler=_Handler,
            logRequests=False,
            allow_none=False,
        )
        server.register_instance(_ZoneEndpoint(zone, self._stopping))
        # Port 0 asks the OS for a free port; the endpoint then names the real one.
        zone.spec.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        thread.start()
        self._servers[zone.id] = server
        self._threads.append(thread)
        logger.info("zone %s (%s) serving %s", zone.id, zone.spec.name, zone.spec.endpoint)

    def kill_zone(self, zone_id: int) -> None:
        """Stop one zone's endpoint: its clients now get 'connection refused'."""
        server = self._servers.pop(zone_id, None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def restart_zone(self, zone_id: int, *, keep_state: bool = True) -> Zone:
        """Stop one zone's oned and start it again on the same port.

        With ``keep_state`` it reloads its VMs from disk as oned reloads its database;
        without, the database is gone and VM ids start again at 0 (a reinstalled oned).
        """
        old = self.zones[zone_id]
        was_serving = zone_id in self._servers
        self.kill_zone(zone_id)
        with old.lock:
            old.tick()
            if not keep_state:
                self.state_path(zone_id).unlink(missing_ok=True)
            zone = self._zone(old.spec)
            self.zones[zone_id] = zone
        if was_serving:
            self._serve(zone)
        return zone

    def serve_zone(self, zone_id: int) -> None:
        """Serve a zone that ``kill_zone`` stopped (or ``restart_zone`` left unserved)."""
        if zone_id not in self._servers:
            self._serve(self.zones[zone_id])

    def stop(self) -> None:
        self._stopping.set()
        for zone_id in list(self._servers):
            self.kill_zone(zone_id)
        for thread in self._threads:
            thread.join(timeout=5)
        if self.driver is not None:
            self.driver.stop_all()

    def __enter__(self) -> Standin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def endpoint(self, zone_id: int) -> str:
        return self.zones[zone_id].spec.endpoint

    # -- ticking and the process driver --------------------------------------------------

    def _tick_forever(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            for zone in self.zones.values():
                try:
                    zone.tick()
                except Exception:
                    logger.exception("zone %s: tick failed", zone.id)
            self._drain_stops()

    def _vm_running(self, zone: Zone, vm: Vm) -> None:
        if self.driver is not None:
            self.driver.start(zone.id, vm.id, vm.context)

    def _vm_stopped(self, zone: Zone, vm: Vm) -> None:
        # Called under the zone lock: the (slow) kill happens in the ticker, outside it.
        if self.driver is not None:
            self._to_stop.append((zone.id, vm.id))

    def _drain_stops(self) -> None:
        while self._to_stop:
            zone_id, vm_id = self._to_stop.pop()
            if self.driver is not None:
                self.driver.stop(zone_id, vm_id)
