"""One stand-in zone: its objects, the VM state machine, the scheduler, the XML-RPC methods.

Every method returns oned's response array: ``[True, value, 0]`` on success and
``[False, "[one.method] message", code, object_id]`` on failure, with oned's error codes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opennebula import states
from opennebula import template_syntax as tsyntax
from opennebula.credentials import Credentials
from opennebula.standin import requirements, xmlbody
from opennebula.standin.config import TemplateSpec, ZoneSpec
from opennebula.states import LcmState, VmState

logger = logging.getLogger("fedgov.opennebula.standin")

ONED_VERSION = "7.0.0"

# History ACTION numbers (VMActions::Action, OpenNebula/one include/VMActions.h).
ACTION_NONE, ACTION_DELETE, ACTION_TERMINATE, ACTION_TERMINATE_HARD = 0, 13, 27, 28

# Actions ``VirtualMachineAPI::action`` accepts that the stand-in does not model.
KNOWN_UNMODELLED_ACTIONS = frozenset(
    {
        "stop",
        "suspend",
        "resume",
        "reboot",
        "reboot-hard",
        "resched",
        "unresched",
        "poweroff",
        "poweroff-hard",
        "undeploy",
        "undeploy-hard",
    }
)

# LCM states in which ``DispatchManager::terminate`` calls ``lcm->trigger_delete``.
TERMINATE_DELETES = frozenset(
    {
        LcmState.BOOT_FAILURE,
        LcmState.BOOT_MIGRATE_FAILURE,
        LcmState.PROLOG_MIGRATE_FAILURE,
        LcmState.PROLOG_FAILURE,
        LcmState.EPILOG_FAILURE,
        LcmState.EPILOG_STOP_FAILURE,
        LcmState.EPILOG_UNDEPLOY_FAILURE,
        LcmState.PROLOG_MIGRATE_POWEROFF_FAILURE,
        LcmState.PROLOG_MIGRATE_SUSPEND_FAILURE,
        LcmState.BOOT_UNDEPLOY_FAILURE,
        LcmState.BOOT_STOPPED_FAILURE,
        LcmState.PROLOG_RESUME_FAILURE,
        LcmState.PROLOG_UNDEPLOY_FAILURE,
        LcmState.PROLOG_MIGRATE_UNKNOWN_FAILURE,
    }
)

# Methods that change state: the zone file is written after each (see ``_save``).
_WRITES = frozenset(
    {
        "one.template.allocate",
        "one.template.instantiate",
        "one.vm.allocate",
        "one.vm.action",
        "one.vm.recover",
        "one.vm.update",
    }
)


class Failure(Exception):
    """A request oned refuses; becomes the failure array."""

    def __init__(self, code: int, message: str, object_id: int = -1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.object_id = object_id


@dataclass
class History:
    seq: int
    hostname: str
    host_id: int
    cluster_id: int
    datastore_id: int
    tm_mad: str
    stime: int
    etime: int = 0
    action: int = ACTION_NONE


@dataclass
class Vm:
    id: int
    name: str
    template: dict[str, Any]
    user_template: dict[str, Any]
    stime: int
    uid: int = 0
    gid: int = 0
    uname: str = "oneadmin"
    gname: str = "oneadmin"
    state: VmState = VmState.PENDING
    lcm_state: LcmState = LcmState.LCM_INIT
    prev_state: VmState = VmState.PENDING
    prev_lcm_state: LcmState = LcmState.LCM_INIT
    etime: int = 0
    last_poll: int = 0
    deploy_id: str = ""
    history: list[History] = field(default_factory=list)
    next_step_at: float = 0.0

    @property
    def context(self) -> dict[str, str]:
        ctx = self.template.get("CONTEXT", {})
        return dict(ctx) if isinstance(ctx, dict) else {}

    def set_state(self, state: VmState, lcm: LcmState) -> None:
        self.prev_state, self.prev_lcm_state = self.state, self.lcm_state
        self.state, self.lcm_state = state, lcm


def _now() -> int:
    return int(time.time())


def _vm_to_json(vm: Vm) -> dict[str, Any]:
    data = asdict(vm)
    data["state"], data["lcm_state"] = int(vm.state), int(vm.lcm_state)
    data["prev_state"], data["prev_lcm_state"] = int(vm.prev_state), int(vm.prev_lcm_state)
    data.pop("next_step_at")
    return data


def _vm_from_json(data: dict[str, Any]) -> Vm:
    history = [History(**h) for h in data.pop("history")]
    vm = Vm(**data, history=history)
    vm.state, vm.lcm_state = VmState(vm.state), LcmState(vm.lcm_state)
    vm.prev_state, vm.prev_lcm_state = VmState(vm.prev_state), LcmState(vm.prev_lcm_state)
    return vm


class Zone:
    """State of one zone. All methods hold the zone lock; ``tick`` advances the VMs."""

    def __init__(
        self,
        spec: ZoneSpec,
        credentials: Credentials,
        federation: Callable[[], list[ZoneSpec]],
        on_running: Callable[[Zone, Vm], None] | None = None,
        on_stopped: Callable[[Zone, Vm], None] | None = None,
        state_path: Path | None = None,
        processes_lost: bool = False,
    ) -> None:
        self.spec = spec
        self.faults = spec.faults
        self._credentials = credentials
        self._federation = federation
        self._on_running = on_running
        self._on_stopped = on_stopped
        self.lock = threading.RLock()
        self.clusters = {c.id: c for c in spec.clusters}
        self.hosts = {h.id: h for h in spec.hosts}
        self.datastores = {d.id: d for d in spec.datastores}
        self.templates: dict[int, TemplateSpec] = {t.id: t for t in spec.templates}
        self.template_regtime = {t.id: _now() for t in spec.templates}
        self.vms: dict[int, Vm] = {}
        self._next_vm_id = 0
        self._next_template_id = max(self.templates, default=-1) + 1
        self._state_path = state_path
        self._dirty = False
        if state_path is not None and state_path.exists():
            self._load_state(state_path, processes_lost=processes_lost)

    @property
    def id(self) -> int:
        return self.spec.id

    # -- dispatch ------------------------------------------------------------------------

    def dispatch(self, method: str, params: tuple) -> list:
        handler = self._methods().get(method)
        if handler is None:
            # oned (xmlrpc-c) answers an unknown method with a fault, not a failure array.
            raise xmlrpc.client.Fault(-506, f"Method '{method}' not defined")
        try:
            if not params or not isinstance(params[0], str):
                raise Failure(
                    states.AUTHENTICATION, "User couldn't be authenticated, aborting call."
                )
            self._authenticate(params[0])
            with self.lock:
                self.tick()
                value = handler(*params[1:])
                if method in _WRITES:
                    self._dirty = True
                self._save()
        except Failure as exc:
            return [False, f"[{method}] {exc.message}", exc.code, exc.object_id]
        except TypeError:
            return [
                False,
                f"[{method}] Wrong number or type of parameters.",
                states.XML_RPC_API,
                -1,
            ]
        if isinstance(value, str) and value.startswith("<") and self.faults.malformed_xml:
            value = value[: len(value) // 2]
        return [True, value, 0]

    def _methods(self) -> dict[str, Callable[..., Any]]:
        return {
            "one.system.version": self.system_version,
            "one.zone.info": self.zone_info,
            "one.zonepool.info": self.zonepool_info,
            "one.cluster.info": self.cluster_info,
            "one.host.info": self.host_info,
            "one.datastore.info": self.datastore_info,
            "one.template.allocate": self.template_allocate,
            "one.template.info": self.template_info,
            "one.template.instantiate": self.template_instantiate,
            "one.vm.allocate": self.vm_allocate,
            "one.vm.info": self.vm_info,
            "one.vm.action": self.vm_action,
            "one.vm.update": self.vm_update,
            "one.vm.recover": self.vm_recover,
            "one.vmpool.info": self.vmpool_info,
            "one.vmpool.infoextended": self.vmpool_infoextended,
        }

    def _authenticate(self, session: str) -> None:
        if self.faults.auth or session != self._credentials.session:
            raise Failure(states.AUTHENTICATION, "User couldn't be authenticated, aborting call.")

    # -- read methods --------------------------------------------------------------------

    def system_version(self) -> str:
        return ONED_VERSION

    def zone_info(self, zone_id: int, decrypt: bool = False) -> str:
        for spec in self._federation():
            if spec.id == zone_id:
                return xmlbody.zone(spec)
        raise Failure(states.NO_EXISTS, f"Error getting zone [{zone_id}].", zone_id)

    def zonepool_info(self) -> str:
        return xmlbody.zone_pool(self._federation())

    def cluster_info(self, cluster_id: int, decrypt: bool = False) -> str:
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            raise Failure(states.NO_EXISTS, f"Error getting cluster [{cluster_id}].", cluster_id)
        hosts = sorted(h.id for h in self.hosts.values() if h.cluster_id == cluster_id)
        stores = sorted(d.id for d in self.datastores.values() if cluster_id in d.cluster_ids)
        return xmlbody.cluster(cluster, hosts, stores)

    def host_info(self, host_id: int, decrypt: bool = False) -> str:
        host = self.hosts.get(host_id)
        if host is None:
            raise Failure(states.NO_EXISTS, f"Error getting host [{host_id}].", host_id)
        vm_ids = sorted(v.id for v in self.vms.values() if self._on_host(v, host_id))
        return xmlbody.host(host, self.clusters[host.cluster_id].name, vm_ids)

    def datastore_info(self, ds_id: int, decrypt: bool = False) -> str:
        store = self.datastores.get(ds_id)
        if store is None:
            raise Failure(states.NO_EXISTS, f"Error getting datastore [{ds_id}].", ds_id)
        return xmlbody.datastore(store)

    def template_info(self, template_id: int, extended: bool = False, decrypt: bool = False) -> str:
        tmpl = self._template(template_id)
        return xmlbody.vm_template(tmpl, self.template_regtime[tmpl.id])

    def vm_info(self, vm_id: int, decrypt: bool = False) -> str:
        return xmlbody.vm(self._vm(vm_id))

    def vmpool_info(
        self, filter_flag: int, start: int, end: int, state: int = -1, filter_str: str = ""
    ) -> str:
        """``one.vmpool.info``: the SHORT bodies (``xmlbody.vm_pool``)."""
        return xmlbody.vm_pool(self._pool(filter_flag, start, end, state, filter_str))

    def vmpool_infoextended(
        self, filter_flag: int, start: int, end: int, state: int = -1, filter_str: str = ""
    ) -> str:
        """``one.vmpool.infoextended``: the same selection with full bodies."""
        return xmlbody.vm_pool_extended(self._pool(filter_flag, start, end, state, filter_str))

    def _pool(self, filter_flag: int, start: int, end: int, state: int, filter_str: str) -> list:
        """``VirtualMachinePoolAPI::info`` (src/rm/api/VirtualMachinePoolAPI.cc): state -2
        is every VM, -1 every VM but DONE (so SHUTDOWN and EPILOG VMs, being ACTIVE, stay
        listed until DONE), 0..11 exactly that state, anything else RPC_API."""
        if filter_flag < -3:
            raise Failure(states.XML_RPC_API, "Incorrect filter_flag.")
        if not -2 <= state <= VmState.CLONING_FAILURE:
            raise Failure(states.XML_RPC_API, f"Incorrect state filter {state}")
        chosen = []
        for vm in sorted(self.vms.values(), key=lambda v: v.id):
            if (start >= 0 and vm.id < start) or (end >= 0 and vm.id > end):
                continue
            if state == -1 and vm.state == VmState.DONE:
                continue
            if state >= 0 and vm.state != state:
                continue
            if filter_flag >= 0 and vm.uid != filter_flag:
                continue
            if filter_str and not self._matches_filter(vm, filter_str):
                continue
            chosen.append(vm)
        return chosen

    @staticmethod
    def _matches_filter(vm: Vm, filter_str: str) -> bool:
        key, _, value = filter_str.partition("=")
        key = key.strip().upper().removeprefix("VM.USER_TEMPLATE.").removeprefix("USER_TEMPLATE/")
        return str(vm.user_template.get(key, "")) == value.strip()

    # -- write methods -------------------------------------------------------------------

    def template_allocate(self, text: str) -> int:
        template = self._parse(text, "Error allocating a new template.")
        name = template.pop("NAME", "") or f"template-{self._next_template_id}"
        spec = TemplateSpec(id=self._next_template_id, name=str(name), template=template)
        self.templates[spec.id] = spec
        self.template_regtime[spec.id] = _now()
        self._next_template_id += 1
        return spec.id

    def template_instantiate(
        self,
        template_id: int,
        name: str = "",
        hold: bool = False,
        extra: str = "",
        persistent: bool = False,
    ) -> int:
        tmpl = self._template(template_id)
        merged = dict(tmpl.template)
        if extra:
            merged.update(self._parse(extra, "Error parsing extra template."))
        merged["TEMPLATE_ID"] = str(template_id)
        return self._create_vm(merged, name or f"{tmpl.name}-{self._next_vm_id}", hold)

    def vm_allocate(self, text: str, hold: bool = False) -> int:
        template = self._parse(text, "Error allocating a new virtual machine template.")
        name = str(template.pop("NAME", "") or f"one-{self._next_vm_id}")
        return self._create_vm(template, name, hold)

    def vm_action(self, action: str, vm_id: int) -> int:
        """``one.vm.action``: ``VirtualMachineAPI::action`` (OpenNebula/one
        src/rm/api/VirtualMachineAPI.cc) turns a refusal (``rc == -2``) into ACTION
        (0x800) ``Error performing action "<action>": <error>`` with the error text of
        ``DispatchManager::<action>`` (src/dm/DispatchManagerActions.cc); an action it
        does not know is ACTION ``Action "<action>" is not supported``."""
        vm = self._vm(vm_id)
        if action in {"terminate", "terminate-hard"}:
            error = self._terminate(vm, hard=action == "terminate-hard")
        elif action == "hold":
            # DispatchManager::hold: PENDING only.
            error = "" if vm.state == VmState.PENDING else self._not_available(vm)
            if not error:
                vm.set_state(VmState.HOLD, LcmState.LCM_INIT)
        elif action == "release":
            # DispatchManager::release: HOLD only.
            error = "" if vm.state == VmState.HOLD else self._not_available(vm)
            if not error:
                vm.set_state(VmState.PENDING, LcmState.LCM_INIT)
        elif action in KNOWN_UNMODELLED_ACTIONS:
            # A real action the stand-in does not model: fail loudly, never pretend.
            raise Failure(states.INTERNAL, f'stand-in: action "{action}" is not modelled', vm_id)
        else:
            raise Failure(states.ACTION, f'Action "{action}" is not supported')
        if error:
            raise Failure(states.ACTION, f'Error performing action "{action}": {error}')
        self._dirty = True
        return vm_id

    def _terminate(self, vm: Vm, *, hard: bool) -> str:
        """``DispatchManager::terminate`` (src/dm/DispatchManagerActions.cc): the error
        text when oned refuses, else "" after starting the transition oned starts."""
        action = ACTION_TERMINATE_HARD if hard else ACTION_TERMINATE
        if vm.state in {VmState.SUSPENDED, VmState.POWEROFF, VmState.STOPPED, VmState.UNDEPLOYED}:
            # lcm->trigger_shutdown: the VM is not running, so the epilog runs (hard or not).
            vm.set_state(VmState.ACTIVE, LcmState.EPILOG)
            self._close_history(vm, action)
            vm.next_step_at = time.monotonic() + self.spec.step_seconds
            self._stopped(vm)
        elif vm.state in {
            VmState.INIT,
            VmState.PENDING,
            VmState.HOLD,
            VmState.CLONING,
            VmState.CLONING_FAILURE,
        }:
            # free_vm_resources: straight to DONE.
            self._finish(vm, action)
        elif vm.state == VmState.DONE:
            pass  # oned answers success and does nothing.
        elif vm.lcm_state in {LcmState.RUNNING, LcmState.UNKNOWN} or (
            hard and vm.lcm_state == LcmState.SHUTDOWN
        ):
            # lcm->trigger_shutdown; a hard terminate also overrides a frozen SHUTDOWN.
            vm.set_state(VmState.ACTIVE, LcmState.SHUTDOWN)
            self._close_history(vm, action)
            vm.next_step_at = time.monotonic() + self.spec.step_seconds
            self._stopped(vm)
        elif vm.lcm_state in TERMINATE_DELETES:
            # A *_FAILURE state: lcm->trigger_delete, hard or not.
            self._delete(vm, action)
        else:
            # PROLOG, BOOT, EPILOG, a soft terminate in SHUTDOWN, ...: refused.
            return f"Could not terminate VM {vm.id}, wrong state {self._state_str(vm)}."
        return ""

    def vm_recover(self, vm_id: int, operation: int) -> int:
        """``one.vm.recover``: ``VirtualMachineAPI::recover`` (src/rm/api/VirtualMachineAPI.cc).

        0 failure / 1 success: ``DispatchManager::recover`` (ACTIVE only) then
        ``LifeCycleManager::recover`` (src/lcm/LifeCycleActions.cc); 3 delete:
        ``DispatchManager::delete_vm``, accepted in every state (ACTIVE goes through
        ``LifeCycleManager::trigger_delete``: CLEANUP_DELETE, then DONE). Retry (2),
        delete-recreate (4) and delete-db (5) are not modelled and fail loudly.
        """
        if operation not in range(6):
            raise Failure(states.ACTION, "Wrong recovery operation code")
        if self.faults.recover_denied:
            # oned.conf VM_ADMIN_OPERATIONS lists recover and delete: an account without
            # ADMIN on the VM is refused (Request::failure_message, AUTHORIZATION).
            raise Failure(
                states.AUTHORIZATION,
                f"User [0] : Not authorized to perform ADMIN VM [{vm_id}].",
                vm_id,
            )
        vm = self._vm(vm_id)
        if operation == 3:
            if vm.state == VmState.ACTIVE:
                self._delete(vm, ACTION_DELETE)
            elif vm.state != VmState.DONE:
                self._finish(vm, ACTION_DELETE)
        elif operation in (0, 1):
            if vm.state != VmState.ACTIVE:
                raise Failure(
                    states.ACTION,
                    f"Could not perform a recover operation on VM {vm.id}, "
                    f"wrong state {self._state_str(vm)}.",
                )
            self._recover(vm, success=operation == 1)
        else:
            raise Failure(
                states.INTERNAL, f"stand-in: recover operation {operation} is not modelled", vm_id
            )
        self._dirty = True
        return vm_id

    def _recover(self, vm: Vm, *, success: bool) -> None:
        lcm = vm.lcm_state
        if lcm in {LcmState.LCM_INIT, LcmState.RUNNING}:
            return
        if lcm == LcmState.CLEANUP_DELETE:
            self._finish(vm, None)
        elif lcm == LcmState.UNKNOWN:
            vm.set_state(VmState.ACTIVE, LcmState.RUNNING)
        elif lcm in {LcmState.PROLOG, LcmState.PROLOG_FAILURE}:
            # trigger_prolog_success / trigger_prolog_failure
            vm.set_state(VmState.ACTIVE, LcmState.BOOT if success else LcmState.PROLOG_FAILURE)
            vm.next_step_at = time.monotonic() + self.spec.step_seconds
        elif lcm in {LcmState.BOOT, LcmState.BOOT_FAILURE}:
            # trigger_deploy_success / trigger_deploy_failure
            if success:
                self._running(vm)
            else:
                vm.set_state(VmState.ACTIVE, LcmState.BOOT_FAILURE)
        elif lcm == LcmState.EPILOG:
            if success:
                self._finish(vm, None)
            else:
                vm.set_state(VmState.ACTIVE, LcmState.EPILOG_FAILURE)
        else:
            raise Failure(
                states.INTERNAL,
                f"stand-in: recover from {self._state_str(vm)} is not modelled",
                vm.id,
            )

    def _delete(self, vm: Vm, action: int) -> None:
        # LifeCycleManager::trigger_delete: clean_up_vm (CLEANUP_DELETE), then done.
        vm.set_state(VmState.ACTIVE, LcmState.CLEANUP_DELETE)
        self._close_history(vm, action)
        vm.next_step_at = time.monotonic() + self.spec.step_seconds
        self._stopped(vm)

    @staticmethod
    def _state_str(vm: Vm) -> str:
        # VirtualMachine::state_str (src/vm/VirtualMachine.cc): the LCM name when ACTIVE.
        return vm.lcm_state.name if vm.state == VmState.ACTIVE else vm.state.name

    def _not_available(self, vm: Vm) -> str:
        return f"This action is not available for state {self._state_str(vm)}"

    def vm_update(self, vm_id: int, text: str, merge: int = 0) -> int:
        vm = self._vm(vm_id)
        template = self._parse(text, "Error parsing the template.")
        if merge:
            vm.user_template.update(template)
        else:
            vm.user_template = template
        return vm_id

    # -- state machine -------------------------------------------------------------------

    def tick(self) -> None:
        """Advance every VM whose current step is over. Safe to call often."""
        with self.lock:
            now = time.monotonic()
            for vm in list(self.vms.values()):
                if now < vm.next_step_at:
                    continue
                if vm.state == VmState.PENDING:
                    self._schedule(vm)
                    continue
                if vm.state != VmState.ACTIVE:
                    continue
                step = now + self.spec.step_seconds
                if vm.lcm_state.name == self.faults.stall_in:
                    continue  # fault: the driver never answers in this state
                if vm.lcm_state == LcmState.PROLOG:
                    if self.faults.prolog_failure:
                        vm.set_state(VmState.ACTIVE, LcmState.PROLOG_FAILURE)
                    else:
                        vm.set_state(VmState.ACTIVE, LcmState.BOOT)
                        vm.next_step_at = step
                elif vm.lcm_state == LcmState.BOOT:
                    if self.faults.boot_failure:
                        vm.set_state(VmState.ACTIVE, LcmState.BOOT_FAILURE)
                    else:
                        self._running(vm)
                elif vm.lcm_state == LcmState.SHUTDOWN:
                    if self.faults.frozen_shutdown:
                        continue
                    vm.set_state(VmState.ACTIVE, LcmState.EPILOG)
                    vm.next_step_at = step
                elif vm.lcm_state in {LcmState.EPILOG, LcmState.CLEANUP_DELETE}:
                    self._finish(vm, None)
                else:
                    continue
                self._dirty = True
            self._save()

    def _running(self, vm: Vm) -> None:
        vm.set_state(VmState.ACTIVE, LcmState.RUNNING)
        vm.deploy_id = f"one-{vm.id}"
        vm.last_poll = _now()
        if self._on_running is not None:
            self._on_running(self, vm)

    def _schedule(self, vm: Vm) -> None:
        if self.faults.stuck_pending:
            self._sched_message(vm, "Cannot dispatch VM: the scheduler is not dispatching")
            return
        placement = self._pick(vm)
        if isinstance(placement, str):
            self._sched_message(vm, placement)
            return
        host, store = placement
        vm.user_template.pop("SCHED_MESSAGE", None)
        vm.history.append(
            History(
                seq=len(vm.history),
                hostname=host.name,
                host_id=host.id,
                cluster_id=host.cluster_id,
                datastore_id=store.id,
                tm_mad=store.attributes.get("TM_MAD", "ssh"),
                stime=_now(),
            )
        )
        vm.template["TM_MAD_SYSTEM"] = store.attributes.get("TM_MAD", "ssh")
        vm.set_state(VmState.ACTIVE, LcmState.PROLOG)
        vm.next_step_at = time.monotonic() + self.spec.step_seconds
        self._dirty = True

    def _pick(self, vm: Vm):
        """(host, system datastore) for ``vm``, or the reason none fits."""
        system_stores = [d for d in self.datastores.values() if d.type == 1]
        if self.faults.rogue_host is not None and self.faults.rogue_host in self.hosts:
            # Fault: a dispatch that ignores the requirements (a forced deploy, a buggy
            # scheduler). Only fedgov's placement check after the fact can catch it.
            host = self.hosts[self.faults.rogue_host]
            stores = [d for d in system_stores if host.cluster_id in d.cluster_ids]
            if stores:
                return host, stores[0]
        host_req = requirements.parse(str(vm.user_template.get("SCHED_REQUIREMENTS", "")))
        ds_req = requirements.parse(str(vm.user_template.get("SCHED_DS_REQUIREMENTS", "")))
        candidates = []
        for host in sorted(self.hosts.values(), key=lambda h: h.id):
            cluster = self.clusters[host.cluster_id]
            # Cluster attributes are visible to requirements; the host's own ones win.
            attrs = {**cluster.attributes, **host.attributes}
            attrs.update(
                {
                    "ID": str(host.id),
                    "NAME": host.name,
                    "CLUSTER_ID": str(cluster.id),
                    "CLUSTER": cluster.name,
                }
            )
            if host_req(attrs):
                candidates.append(host)
        if not candidates:
            return "Cannot dispatch VM: No host meets SCHED_REQUIREMENTS"
        for host in sorted(candidates, key=lambda h: (self._load(h.id), h.id)):
            for store in sorted(system_stores, key=lambda d: d.id):
                attrs = {**store.attributes, "ID": str(store.id), "NAME": store.name}
                if host.cluster_id in store.cluster_ids and ds_req(attrs):
                    return host, store
        return "Cannot dispatch VM: No system datastore meets SCHED_DS_REQUIREMENTS"

    def _load(self, host_id: int) -> int:
        return sum(1 for v in self.vms.values() if self._on_host(v, host_id))

    @staticmethod
    def _on_host(vm: Vm, host_id: int) -> bool:
        return vm.state == VmState.ACTIVE and bool(vm.history) and vm.history[-1].host_id == host_id

    @staticmethod
    def _sched_message(vm: Vm, message: str) -> None:
        stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime())
        vm.user_template["SCHED_MESSAGE"] = f"{stamp} : {message}"

    def _close_history(self, vm: Vm, action: int) -> None:
        if vm.history and not vm.history[-1].etime:
            vm.history[-1].etime = _now()
            vm.history[-1].action = action

    def _finish(self, vm: Vm, action: int | None) -> None:
        if action is not None:
            self._close_history(vm, action)
        vm.set_state(VmState.DONE, LcmState.LCM_INIT)
        vm.etime = _now()
        self._stopped(vm)

    def _stopped(self, vm: Vm) -> None:
        if self._on_stopped is not None:
            self._on_stopped(self, vm)

    # -- state on disk -------------------------------------------------------------------

    def _save(self) -> None:
        """Write the zone's VMs and id counters, atomically, when something changed.

        oned keeps its pools in a database, so a restart keeps every VM and never hands
        out an id twice (``PoolSQL::allocate`` continues from the table's last oid).
        """
        if not self._dirty or self._state_path is None:
            return
        state = {
            "zone_id": self.id,
            "next_vm_id": self._next_vm_id,
            "next_template_id": self._next_template_id,
            "templates": [
                {"id": t.id, "name": t.name, "template": t.template}
                for t in self.templates.values()
            ],
            "vms": [_vm_to_json(vm) for vm in self.vms.values()],
        }
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._state_path)
        self._dirty = False

    def _load_state(self, path: Path, *, processes_lost: bool) -> None:
        try:
            state = json.loads(path.read_text())
            if state.get("zone_id") != self.id:
                raise ValueError(f"it belongs to zone {state.get('zone_id')}")
            self._next_vm_id = int(state["next_vm_id"])
            self._next_template_id = max(self._next_template_id, int(state["next_template_id"]))
            for raw in state["templates"]:
                spec = TemplateSpec(id=raw["id"], name=raw["name"], template=raw["template"])
                self.templates.setdefault(spec.id, spec)
                self.template_regtime.setdefault(spec.id, _now())
            self.vms = {vm.id: vm for vm in map(_vm_from_json, state["vms"])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Refuse to start on a broken database rather than reuse VM ids.
            raise RuntimeError(f"stand-in zone {self.id}: cannot load {path}: {exc}") from None
        step = time.monotonic() + self.spec.step_seconds
        for vm in self.vms.values():
            vm.next_step_at = step
            if processes_lost and vm.state == VmState.ACTIVE and vm.lcm_state == LcmState.RUNNING:
                # The SuperNode processes died with the stand-in. oned's monitor reports a
                # VM missing from its hypervisor as POWEROFF ("VM disappeared").
                vm.set_state(VmState.POWEROFF, LcmState.LCM_INIT)
                self._dirty = True
        self._save()

    # -- helpers -------------------------------------------------------------------------

    def _create_vm(self, template: dict[str, Any], name: str, hold: bool) -> int:
        for required in ("CPU", "MEMORY"):
            if required not in template:
                raise Failure(
                    states.INTERNAL,
                    f"Error allocating a new virtual machine. No {required} in template.",
                )
        for key in ("SCHED_REQUIREMENTS", "SCHED_DS_REQUIREMENTS"):
            try:
                requirements.parse(str(template.get(key, "")))
            except requirements.RequirementSyntaxError as exc:
                raise Failure(
                    states.INTERNAL,
                    f"Error allocating a new virtual machine. Parse error in {key}: {exc}",
                ) from None
        vm_id = self._next_vm_id
        self._next_vm_id += 1
        own = {k: v for k, v in template.items() if k in xmlbody.VM_TEMPLATE_ORDER}
        user = {k: v for k, v in template.items() if k not in xmlbody.VM_TEMPLATE_ORDER}
        own["VMID"] = str(vm_id)
        own.setdefault("TM_MAD_SYSTEM", "")
        if isinstance(own.get("CONTEXT"), dict):
            own["CONTEXT"] = {**own["CONTEXT"], "TARGET": "hda"}
        vm = Vm(id=vm_id, name=name, template=own, user_template=user, stime=_now())
        if hold:
            vm.state = VmState.HOLD
        # The scheduler runs on its own cycle: a new VM is PENDING for at least one step.
        vm.next_step_at = time.monotonic() + self.spec.step_seconds
        self.vms[vm_id] = vm
        return vm_id

    def _vm(self, vm_id: int) -> Vm:
        vm = self.vms.get(vm_id)
        if vm is None:
            raise Failure(states.NO_EXISTS, f"Error getting virtual machine [{vm_id}].", vm_id)
        return vm

    def _template(self, template_id: int) -> TemplateSpec:
        tmpl = self.templates.get(template_id)
        if tmpl is None:
            raise Failure(states.NO_EXISTS, f"Error getting template [{template_id}].", template_id)
        return tmpl

    @staticmethod
    def _parse(text: str, context: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise Failure(states.XML_RPC_API, f"{context} Template must be a string.")
        try:
            return dict(tsyntax.parse(text))
        except tsyntax.TemplateSyntaxError as exc:
            raise Failure(states.INTERNAL, f"{context} Parse error: {exc}") from None
