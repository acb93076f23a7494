"""``OpenNebulaProvisioner``: the adapter behind training's ``Provisioner`` port.

It instantiates a site's SuperNode template in the site's zone with the Flower appliance's
context, asks the scheduler for hosts whose ``COUNTRY`` is allowed, labels the VM so
fedgov finds it again, waits for RUNNING with a deadline and backoff, and reads where the
VM really landed. Labels are read only from full bodies (``one.vmpool.infoextended``,
``one.vm.info``): oned's ``one.vmpool.info`` serves short bodies without them. A VM that
fails on the way is taken down (``cleanup``: terminate-hard, or recover delete where oned
refuses terminate) and waited for until DONE before the error is raised. Every oned
behaviour this relies on is listed, with its source, in docs/opennebula-behaviour.md.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings

from audit import keys
from opennebula import states, template_syntax
from opennebula.breaker import Breaker, ZoneUnavailable
from opennebula.client import OneClient, VmInfo
from opennebula.credentials import resolve
from opennebula.errors import OpenNebulaError
from opennebula.identity import endpoint_identity
from training.ports import Placement, WorkloadRequest

logger = logging.getLogger("fedgov.opennebula")

LABEL = "fedgov"
MANAGED = "FEDGOV_MANAGED"
SITE_LABEL = "FEDGOV_SITE_ID"
RUN_LABEL = "FEDGOV_RUN_ID"
_CONTEXT_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
# one.vm.recover operation codes (VirtualMachineAPI::recover, src/rm/api/VirtualMachineAPI.cc).
RECOVER_DELETE = 3


@dataclass(frozen=True)
class ManagedVm:
    """A fedgov-labelled VM found in a zone (read from full bodies, never short ones)."""

    zone_id: int
    vm_id: int
    site_id: int | None
    run_id: int | None
    state: str
    ending: bool = False  # oned is already taking it down (SHUTDOWN, EPILOG, ...)


class NotOurVm(OpenNebulaError):
    """The VM id fedgov polls now names a VM without fedgov's labels for the request."""


@dataclass
class Cleanup:
    """What fedgov did to take a failed VM down, and how it ended (goes in the ledger)."""

    vm_id: int
    attempts: list[str] = field(default_factory=list)
    outcome: str = ""
    stopped: bool = False  # DONE (or gone): certainly not running

    def note(self, text: str) -> None:
        # Polling repeats the same refusal; the ledger needs each distinct step once.
        if not self.attempts or self.attempts[-1] != text:
            self.attempts.append(text)

    def as_payload(self) -> dict:
        return {
            "vm_id": self.vm_id,
            "attempts": list(self.attempts),
            "outcome": self.outcome,
            "stopped": self.stopped,
        }


def requirements_for(countries: Iterable[str]) -> str:
    """``SCHED_REQUIREMENTS`` that admit only hosts (or datastores) labelled with a country."""
    codes = sorted(countries)
    if not codes:
        raise ValueError("no allowed country")
    for code in codes:
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 code")
    return " | ".join(f'COUNTRY = "{code}"' for code in codes)


def _as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class OpenNebulaProvisioner:
    """Runs and stops SuperNode VMs through pyone. Reads settings at call time."""

    # -- the port ------------------------------------------------------------------------

    def ensure_running(self, request: WorkloadRequest) -> Placement:
        """Find or start the site's VM for the run, wait for RUNNING, return its placement.

        VMs are found in full bodies (``one.vmpool.infoextended``): the short bodies of
        ``one.vmpool.info`` carry no fedgov label. Only a PENDING, PROLOG, BOOT or RUNNING
        VM is adopted; one oned is taking down (SHUTDOWN, EPILOG, ...) is left to finish,
        so a re-provision right after a terminate starts a new VM.

        Raises ``OpenNebulaError`` (with ``vm_id`` and ``cleanup`` when a VM existed) after
        taking down a VM that failed, stayed PENDING past the deadline, or whose placement
        cannot be read.
        """
        client = self._client(request.zone_endpoint, request.credentials_ref, request.zone_id)
        mine = [vm for vm in client.vm_pool_extended() if self._belongs(vm, request)]
        adoptable = sorted((vm for vm in mine if vm.is_adoptable), key=lambda v: v.id)
        for extra in adoptable[1:]:
            # Two VMs for one site and run (a crashed earlier attempt): keep the oldest.
            self._cleanup_quietly(client, extra.id, request.zone_id)
        for other in mine:
            if not (other.is_adoptable or other.is_ending or other.is_done):
                self._cleanup_quietly(client, other.id, request.zone_id)
        vm_id = adoptable[0].id if adoptable else self._start(client, request)
        ours = partial(self._belongs, request=request)
        try:
            vm = self._wait_running(client, vm_id, request.zone_id, ours)
            return self._placement(client, vm, request.zone_id)
        except NotOurVm:
            raise  # the id names someone else's VM now: never touch it
        except OpenNebulaError as exc:
            exc.vm_id = vm_id
            exc.cleanup = self.cleanup(client, vm_id, request.zone_id, ours)
            raise

    def terminate(self, request: WorkloadRequest) -> None:
        """Terminate every VM labelled for the site and run in its zone; none is fine.

        A RUNNING VM gets a soft terminate; any other live VM is taken down by
        ``cleanup``. VMs already ending are left alone.
        """
        client = self._client(request.zone_endpoint, request.credentials_ref, request.zone_id)
        for vm in client.vm_pool_extended():
            if not self._belongs(vm, request) or vm.is_done or vm.is_ending:
                continue
            if vm.is_running:
                client.vm_action("terminate", vm.id)
            else:
                outcome = self.cleanup(client, vm.id, request.zone_id)
                if not outcome.stopped:
                    raise OpenNebulaError(
                        f"VM {vm.id} in zone {request.zone_id}: {outcome.outcome}",
                        code=None,
                        permanent=False,
                        vm_id=vm.id,
                        zone_id=request.zone_id,
                    )

    # -- for reconciliation --------------------------------------------------------------

    def list_managed(self, *, endpoint: str, zone_id: int, credentials_ref: str) -> list[ManagedVm]:
        client = self._client(endpoint, credentials_ref, zone_id)
        return [
            ManagedVm(
                zone_id=zone_id,
                vm_id=vm.id,
                site_id=_as_int(vm.user_template.get(SITE_LABEL, "")),
                run_id=_as_int(vm.user_template.get(RUN_LABEL, "")),
                state=vm.state_name,
                ending=vm.is_ending or vm.is_done,
            )
            for vm in client.vm_pool_extended()
            if str(vm.user_template.get(MANAGED, "")).upper() == "YES"
        ]

    def terminate_vm(
        self, *, endpoint: str, zone_id: int, credentials_ref: str, vm_id: int
    ) -> None:
        client = self._client(endpoint, credentials_ref, zone_id)
        vm = client.vm_info(vm_id)
        if vm.is_done or vm.is_ending:
            return
        if vm.is_running:
            client.vm_action("terminate", vm.id)
            return
        outcome = self.cleanup(client, vm_id, zone_id)
        if not outcome.stopped:
            raise OpenNebulaError(
                f"VM {vm_id} in zone {zone_id}: {outcome.outcome}",
                code=None,
                permanent=False,
                vm_id=vm_id,
                zone_id=zone_id,
            )

    # -- cleanup -------------------------------------------------------------------------

    def cleanup(
        self,
        client: OneClient,
        vm_id: int,
        zone_id: int,
        ours: Callable[[VmInfo], bool] | None = None,
    ) -> Cleanup:
        """Take a VM down for good and wait until oned reports it DONE, within a deadline.

        ``terminate-hard`` first: oned accepts it in RUNNING, in every *_FAILURE state
        (as a delete), PENDING, HOLD, POWEROFF ... but refuses it in PROLOG and BOOT
        (``DispatchManager::terminate``, src/dm/DispatchManagerActions.cc). There
        ``recover`` delete (op 3, ``DispatchManager::delete_vm``, any state) is used;
        when the account may not (it needs the ADMIN right on the VM), fedgov keeps
        polling until oned accepts the terminate. With ``ours``, a VM whose labels no
        longer match (oned lost its database and reused the id) is never touched.
        Never raises: the outcome says.
        """
        deadline = time.monotonic() + float(settings.FEDGOV_ONE_CLEANUP_DEADLINE)
        delay = float(settings.FEDGOV_ONE_POLL_INITIAL)
        report = Cleanup(vm_id=vm_id)
        hard_sent = False
        last = "an unknown state"
        unanswered = 0
        while True:
            try:
                vm = client.vm_info(vm_id)
                unanswered = 0
            except OpenNebulaError as exc:
                if exc.code == states.NO_EXISTS:
                    report.note("one.vm.info: no such VM")
                    report.outcome, report.stopped = "VM no longer exists", True
                    return report
                report.note(f"one.vm.info failed: {exc.message}")
                unanswered += 1
                if isinstance(exc, ZoneUnavailable) or unanswered > int(
                    settings.FEDGOV_ONE_RETRY_BUDGET
                ):
                    # A dead zone must not hold the worker: reconciliation retries later.
                    report.outcome = f"zone not answering ({exc.message}); reconciliation retries"
                    return report
                vm = None
            if vm is not None and ours is not None and not ours(vm):
                report.note(f"one.vm.info: VM {vm_id} now carries other labels; not touched")
                report.outcome, report.stopped = "the VM fedgov started no longer exists", True
                return report
            if vm is not None:
                last = vm.state_name
                if vm.is_done:
                    report.outcome, report.stopped = "DONE", True
                    return report
                frozen = vm.lcm_state == states.LcmState.SHUTDOWN and not hard_sent
                if not vm.is_ending or frozen:
                    hard_sent = self._take_down(client, vm, report) or hard_sent
            if time.monotonic() >= deadline:
                report.outcome = (
                    f"still {last} after {settings.FEDGOV_ONE_CLEANUP_DEADLINE}s; "
                    "reconciliation retries"
                )
                logger.warning("zone %s VM %s: cleanup: %s", zone_id, vm_id, report.outcome)
                return report
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 1.5, float(settings.FEDGOV_ONE_POLL_MAX))

    @staticmethod
    def _take_down(client: OneClient, vm: VmInfo, report: Cleanup) -> bool:
        """One attempt; True when oned accepted a terminate-hard.

        Each note names the state fedgov *read* just before the call ("seen in"): the
        VM may move on between ``one.vm.info`` and the action (a BOOT that finishes in
        between makes oned accept a terminate it refused a moment ago), so the note
        must not claim oned's state at the instant it answered.
        """
        try:
            client.vm_action("terminate-hard", vm.id)
        except OpenNebulaError as exc:
            report.note(f"terminate-hard, VM seen in {vm.state_name}: refused ({exc.message})")
            if exc.code != states.ACTION:
                return False
        else:
            report.note(f"terminate-hard, VM seen in {vm.state_name}: accepted")
            return True
        try:
            client.vm_recover(vm.id, RECOVER_DELETE)
        except OpenNebulaError as exc:
            report.note(f"recover delete, VM seen in {vm.state_name}: refused ({exc.message})")
        else:
            report.note(f"recover delete, VM seen in {vm.state_name}: accepted")
        return False

    # -- steps ---------------------------------------------------------------------------

    def _client(self, endpoint: str, credentials_ref: str, zone_id: int) -> OneClient:
        """A client for the zone, after checking the endpoint still serves the zone fedgov
        first met there (``one.zone.info`` name; see ``Breaker.check_identity``)."""
        breaker = Breaker(endpoint_identity(endpoint), zone_id)
        client = OneClient(
            endpoint,
            resolve(credentials_ref),
            zone_id=zone_id,
            timeout=float(settings.FEDGOV_ONE_CALL_TIMEOUT),
            https_verify=settings.FEDGOV_ONE_HTTPS_VERIFY,
            guard=breaker,
        )
        breaker.check_identity(client.zone_name(zone_id))
        return client

    @staticmethod
    def _belongs(vm: VmInfo, request: WorkloadRequest) -> bool:
        # Only full bodies (one.vm.info, one.vmpool.infoextended) carry these labels.
        labels = vm.user_template
        return (
            str(labels.get(MANAGED, "")).upper() == "YES"
            and _as_int(labels.get(SITE_LABEL, "")) == request.site_id
            and _as_int(labels.get(RUN_LABEL, "")) == request.run_id
        )

    def _start(self, client: OneClient, request: WorkloadRequest) -> int:
        requirements = requirements_for(request.allowed_countries)
        context = self._context(request)
        extra: dict[str, str | dict[str, str]] = {
            "CONTEXT": context,
            "SCHED_REQUIREMENTS": requirements,
            "SCHED_DS_REQUIREMENTS": requirements,
            "LABELS": LABEL,
            MANAGED: "YES",
            SITE_LABEL: str(request.site_id),
            RUN_LABEL: str(request.run_id),
        }
        name = f"fedgov-{request.site_slug}-run{request.run_id}"
        if request.template_id is not None:
            vm_id = client.template_instantiate(
                request.template_id, name, template_syntax.render(extra)
            )
        else:
            full = {"NAME": name, **dict(settings.FEDGOV_ONE_VM_TEMPLATE), **extra}
            vm_id = client.vm_allocate(template_syntax.render(full))
        logger.info(
            "zone %s: started VM %s for site %s run %s",
            request.zone_id,
            vm_id,
            request.site_id,
            request.run_id,
        )
        return vm_id

    @staticmethod
    def _context(request: WorkloadRequest) -> dict[str, str]:
        context = {
            "NETWORK": "YES",
            "ONEAPP_FL_SUPERLINK_ADDRESS": settings.FEDGOV_ONE_SUPERLINK_ADDRESS,
            "ONEAPP_FL_TLS_ENABLED": "NO",
            # Names fedgov's Flower client mod reads (fedgov_flower/client_mod.py).
            "FEDGOV_SITE_ID": str(request.site_id),
            "FEDGOV_SITE": request.site_slug,
            "FEDGOV_RUN_ID": str(request.run_id),
        }
        context.update(_ticket_key())
        for key, value in request.context.items():
            if not _CONTEXT_KEY.fullmatch(key):
                raise OpenNebulaError(
                    f"context variable {key!r} is not an upper-case name", code=None, permanent=True
                )
            context[key] = str(value)
        return context

    def _wait_running(
        self, client: OneClient, vm_id: int, zone_id: int, ours: Callable[[VmInfo], bool]
    ) -> VmInfo:
        deadline = time.monotonic() + float(settings.FEDGOV_ONE_RUNNING_DEADLINE)
        delay = float(settings.FEDGOV_ONE_POLL_INITIAL)
        last: VmInfo | None = None
        unanswered = 0
        while True:
            try:
                last = client.vm_info(vm_id)
                unanswered = 0
            except ZoneUnavailable:
                raise
            except OpenNebulaError as exc:
                unanswered += 1
                if exc.permanent or unanswered > int(settings.FEDGOV_ONE_RETRY_BUDGET):
                    raise
                logger.warning("zone %s VM %s: poll failed, retrying: %s", zone_id, vm_id, exc)
            if last is not None and not ours(last):
                raise NotOurVm(
                    f"VM {vm_id} in zone {zone_id} no longer carries fedgov's labels for this "
                    "site and run (oned lost its database and reused the id?)",
                    code=None,
                    permanent=False,
                    vm_id=vm_id,
                    zone_id=zone_id,
                )
            if last is not None and last.is_running:
                return last
            if last is not None and last.has_failed:
                raise OpenNebulaError(
                    f"VM {vm_id} in zone {zone_id} reached {last.state_name} instead of RUNNING",
                    code=None,
                    permanent=True,
                    vm_id=vm_id,
                    zone_id=zone_id,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                where = last.state_name if last is not None else "an unknown state"
                why = f": {last.sched_message}" if last is not None and last.sched_message else ""
                raise OpenNebulaError(
                    f"VM {vm_id} in zone {zone_id} still in {where} after "
                    f"{settings.FEDGOV_ONE_RUNNING_DEADLINE}s{why}",
                    code=None,
                    permanent=False,
                    vm_id=vm_id,
                    zone_id=zone_id,
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, float(settings.FEDGOV_ONE_POLL_MAX))

    @staticmethod
    def _placement(client: OneClient, vm: VmInfo, zone_id: int) -> Placement:
        record = vm.last_history
        if record is None:
            raise OpenNebulaError(
                f"VM {vm.id} in zone {zone_id} is RUNNING but has no history record",
                code=None,
                permanent=True,
                vm_id=vm.id,
                zone_id=zone_id,
            )
        host = client.host(record.host_id)
        cluster = client.cluster(record.cluster_id)
        datastore = client.datastore(record.datastore_id)
        return Placement(
            zone_id=zone_id,
            vm_id=vm.id,
            host=host.name,
            host_country=host.country,
            cluster=cluster.name,
            cluster_country=cluster.country,
            datastore=datastore.name,
            datastore_country=datastore.country,
            host_id=host.id,
            cluster_id=cluster.id,
            datastore_id=datastore.id,
        )

    def _cleanup_quietly(self, client: OneClient, vm_id: int, zone_id: int) -> None:
        outcome = self.cleanup(client, vm_id, zone_id)
        if not outcome.stopped:
            # Reconciliation finds the labelled VM on its next sweep and retries.
            logger.warning(
                "zone %s VM %s: cleanup left to reconciliation: %s",
                zone_id,
                vm_id,
                outcome.outcome,
            )


def _ticket_key() -> dict[str, str]:
    """fedgov's ticket public key for the site's client mod (raw Ed25519, base64).

    ``FEDGOV_PUBLIC_KEY`` is the name the client mod reads; the key id lets a site see
    which key signed a ticket after a rotation.
    """
    key = keys.active_key()
    raw = keys.raw_public_bytes(key.public_key)
    return {
        "FEDGOV_TICKET_KEY_ID": key.key_id,
        "FEDGOV_PUBLIC_KEY": base64.b64encode(raw).decode("ascii"),
    }
