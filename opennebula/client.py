"""The one seam to OpenNebula: a small typed wrapper over pyone's XML-RPC client.

This is the only module that imports pyone. Every pyone exception, transport error,
timeout and unparsable XML body becomes ``OpenNebulaError`` with oned's error code and a
``permanent`` flag. Every call has a timeout.
"""

from __future__ import annotations

import logging
import re
import socket
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from xml.parsers.expat import ExpatError

import pyone
import pyone.server_xrpc
import requests
from lxml import etree
from pyone.bindings.supbind import GDSParseError

from opennebula import states
from opennebula.credentials import Credentials
from opennebula.errors import OpenNebulaError

logger = logging.getLogger("fedgov.opennebula")

T = TypeVar("T")

# ACTION (wrong state) and INTERNAL errors may pass; the others need a human or new input.
_CODES: dict[type[Exception], tuple[int, bool, str]] = {
    pyone.OneAuthenticationException: (states.AUTHENTICATION, True, "authentication failed"),
    pyone.OneAuthorizationException: (states.AUTHORIZATION, True, "not authorised"),
    pyone.OneNoExistsException: (states.NO_EXISTS, True, "no such object"),
    pyone.OneActionException: (states.ACTION, False, "action not allowed now"),
    pyone.OneApiException: (states.XML_RPC_API, True, "API call refused"),
    pyone.OneInternalException: (states.INTERNAL, False, "internal error in oned"),
}
_FAULT = re.compile(r"<Fault (-?\d+):")


@dataclass(frozen=True)
class HistoryRecord:
    """The placement of one VM deployment: host, cluster and system datastore ids."""

    seq: int
    hostname: str
    host_id: int
    cluster_id: int
    datastore_id: int


@dataclass(frozen=True)
class VmInfo:
    """What fedgov reads from ``one.vm.info`` / ``one.vmpool.info`` for one VM."""

    id: int
    name: str
    state: int
    lcm_state: int
    user_template: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[HistoryRecord, ...] = ()

    @property
    def state_name(self) -> str:
        return states.describe(self.state, self.lcm_state)

    @property
    def is_running(self) -> bool:
        return self.state == states.VmState.ACTIVE and self.lcm_state == states.LcmState.RUNNING

    @property
    def is_done(self) -> bool:
        return self.state == states.VmState.DONE

    @property
    def is_ending(self) -> bool:
        """oned is taking the VM down already (SHUTDOWN, EPILOG, CLEANUP_DELETE, ...)."""
        return self.state == states.VmState.ACTIVE and self.lcm_state in states.ENDING_LCM_STATES

    @property
    def is_adoptable(self) -> bool:
        """PENDING, or ACTIVE on the way to (or in) RUNNING: nothing else is ever adopted."""
        if self.state == states.VmState.PENDING:
            return True
        return self.state == states.VmState.ACTIVE and self.lcm_state in states.ADOPTABLE_LCM_STATES

    @property
    def has_failed(self) -> bool:
        if self.state in states.STOPPED_VM_STATES:
            return True
        return self.state == states.VmState.ACTIVE and self.lcm_state in states.FAILURE_LCM_STATES

    @property
    def sched_message(self) -> str:
        return str(self.user_template.get("SCHED_MESSAGE", ""))

    @property
    def last_history(self) -> HistoryRecord | None:
        return max(self.history, key=lambda h: h.seq) if self.history else None


@dataclass(frozen=True)
class LabelledObject:
    """A host, cluster or datastore with its template attributes (``COUNTRY`` among them)."""

    kind: str
    id: int
    name: str
    attributes: Mapping[str, Any]

    @property
    def country(self) -> str:
        value = self.attributes.get("COUNTRY", "")
        return value.strip().upper() if isinstance(value, str) else ""


class _TimeoutTransport(pyone.server_xrpc.RequestsTransport):
    """pyone's requests transport with a per-request timeout.

    pyone's own ``timeout`` calls ``socket.setdefaulttimeout``, which would change every
    socket in the process (database, broker); a per-request timeout touches only this call.
    """

    def __init__(self, timeout: float, https: bool, verify: bool) -> None:
        super().__init__()
        self.timeout = timeout
        self.set_https(https)
        self.set_https_verify(verify)

    def request(self, host, handler, request_body, verbose=False):
        url = self._build_url(host, handler)
        resp = requests.post(
            url,
            data=request_body,
            headers=self.headers,
            verify=self.https_verify,
            timeout=self.timeout,
        )
        if resp.status_code >= 400:
            raise xmlrpc.client.ProtocolError(url, resp.status_code, resp.reason, resp.headers)
        return self.parse_response(resp)


class OneClient:
    """Typed calls to one zone's oned. Construct per use; it holds no connection."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        zone_id: int | None = None,
        timeout: float = 10.0,
        https_verify: bool = True,
        guard: Any = None,
    ) -> None:
        self.endpoint = endpoint
        self.zone_id = zone_id
        # The zone's circuit breaker (breaker.Breaker): before_call / record_*.
        self._guard = guard
        self._secrets = (credentials.session, credentials.password)
        self._server = pyone.server_xrpc.OneServerXRPC(
            endpoint, credentials.session, timeout=None, https_verify=https_verify
        )
        # Swap in the timeout transport (see _TimeoutTransport for why not pyone's timeout).
        self._server._ServerProxy__transport = _TimeoutTransport(
            timeout, endpoint.startswith("https"), https_verify
        )

    def __repr__(self) -> str:
        return f"<OneClient {self.endpoint} zone={self.zone_id}>"

    # -- calls ---------------------------------------------------------------------------

    def version(self) -> str:
        return self._call("one.system.version", lambda s: s.system.version(), str)

    def zone_name(self, zone_id: int) -> str:
        return self._call("one.zone.info", lambda s: s.zone.info(zone_id), lambda z: str(z.NAME))

    def template_instantiate(self, template_id: int, name: str, extra_template: str) -> int:
        return self._call(
            "one.template.instantiate",
            lambda s: s.template.instantiate(template_id, name, False, extra_template, False),
            int,
        )

    def vm_allocate(self, template: str) -> int:
        return self._call("one.vm.allocate", lambda s: s.vm.allocate(template, False), int)

    def vm_info(self, vm_id: int) -> VmInfo:
        return self._call("one.vm.info", lambda s: s.vm.info(vm_id), _vm_from_binding)

    def vm_action(self, action: str, vm_id: int) -> None:
        self._call("one.vm.action", lambda s: s.vm.action(action, vm_id), int)

    def vm_recover(self, vm_id: int, operation: int) -> None:
        """``one.vm.recover``; operation 3 is delete (accepted by oned in every state)."""
        self._call("one.vm.recover", lambda s: s.vm.recover(vm_id, operation), int)

    def vm_update(self, vm_id: int, template: str, *, merge: bool = True) -> None:
        self._call("one.vm.update", lambda s: s.vm.update(vm_id, template, 1 if merge else 0), int)

    def vm_pool(self) -> list[VmInfo]:
        """Every VM the account may see that is not DONE (filter -2, state -1), SHORT bodies.

        oned serves ``VirtualMachine::to_xml_short`` here (OpenNebula/one
        src/vm/VirtualMachine.cc): the user template holds only LABELS, ERROR and the
        SCHED_* attributes, never fedgov's labels. Use ``vm_pool_extended`` to find VMs.
        """
        return self._call(
            "one.vmpool.info",
            lambda s: s.vmpool.info(-2, -1, -1, -1),
            lambda pool: [_vm_from_binding(vm) for vm in (pool.VM or [])],
        )

    def vm_pool_extended(self) -> list[VmInfo]:
        """The same VMs with full bodies (``one.vmpool.infoextended``): labels included."""
        return self._call(
            "one.vmpool.infoextended",
            lambda s: s.vmpool.infoextended(-2, -1, -1, -1),
            lambda pool: [_vm_from_binding(vm) for vm in (pool.VM or [])],
        )

    def host(self, host_id: int) -> LabelledObject:
        return self._call("one.host.info", lambda s: s.host.info(host_id), _labelled("host"))

    def cluster(self, cluster_id: int) -> LabelledObject:
        return self._call(
            "one.cluster.info", lambda s: s.cluster.info(cluster_id), _labelled("cluster")
        )

    def datastore(self, datastore_id: int) -> LabelledObject:
        return self._call(
            "one.datastore.info", lambda s: s.datastore.info(datastore_id), _labelled("datastore")
        )

    # -- error mapping -------------------------------------------------------------------

    def _call(self, method: str, call: Callable[[Any], Any], convert: Callable[[Any], T]) -> T:
        if self._guard is not None:
            self._guard.before_call(method)
        try:
            raw = call(self._server)
        except Exception as exc:
            error = self._map(method, exc)
            if self._guard is not None:
                # Only "no answer" counts: a refusal proves the zone alive.
                if error.code is None and not error.permanent:
                    self._guard.record_failure(error)
                else:
                    self._guard.record_success()
            raise error from None
        if self._guard is not None:
            self._guard.record_success()
        try:
            return convert(raw)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise self._error(
                f"{method}: oned answered with a body fedgov cannot read ({type(exc).__name__})",
                code=None,
                permanent=True,
            ) from None

    def _error(self, message: str, *, code: int | None, permanent: bool) -> OpenNebulaError:
        # Defence in depth: oned and transports do not echo the session, but a proxy might.
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return OpenNebulaError(message, code=code, permanent=permanent, zone_id=self.zone_id)

    def _map(self, method: str, exc: Exception) -> OpenNebulaError:
        where = f"{method} on {self.endpoint}"
        for kind, (code, permanent, what) in _CODES.items():
            if isinstance(exc, kind):
                return self._error(f"{where}: {what}: {exc}", code=code, permanent=permanent)
        if isinstance(exc, pyone.OneException):
            # pyone turns an XML-RPC Fault into a plain OneException carrying its text.
            fault = _FAULT.search(str(exc))
            if fault:
                return self._error(
                    f"{where}: XML-RPC fault {fault.group(1)}",
                    code=int(fault.group(1)),
                    permanent=True,
                )
            return self._error(f"{where}: {exc}", code=None, permanent=False)
        if isinstance(exc, xmlrpc.client.Fault):
            return self._error(
                f"{where}: XML-RPC fault {exc.faultCode}: {exc.faultString}",
                code=exc.faultCode,
                permanent=True,
            )
        if isinstance(exc, requests.Timeout | socket.timeout | TimeoutError):
            return self._error(f"{where}: no answer in time", code=None, permanent=False)
        if isinstance(exc, requests.ConnectionError | ConnectionError):
            return self._error(f"{where}: cannot connect", code=None, permanent=False)
        if isinstance(exc, xmlrpc.client.ProtocolError):
            return self._error(
                f"{where}: HTTP {exc.errcode} {exc.errmsg}",
                code=None,
                permanent=400 <= exc.errcode < 500,
            )
        if isinstance(exc, requests.RequestException):
            return self._error(
                f"{where}: transport error ({type(exc).__name__})", code=None, permanent=False
            )
        if isinstance(exc, etree.XMLSyntaxError | ExpatError | GDSParseError):
            return self._error(f"{where}: malformed XML in the answer", code=None, permanent=True)
        if isinstance(exc, IndexError | ValueError | TypeError | AttributeError):
            return self._error(
                f"{where}: unreadable answer ({type(exc).__name__})", code=None, permanent=True
            )
        raise exc


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _vm_from_binding(vm: Any) -> VmInfo:
    records = vm.HISTORY_RECORDS.HISTORY if vm.HISTORY_RECORDS is not None else []
    history = tuple(
        HistoryRecord(
            seq=int(h.SEQ),
            hostname=_text(h.HOSTNAME),
            host_id=int(h.HID),
            cluster_id=int(h.CID),
            datastore_id=int(h.DS_ID),
        )
        for h in records or []
    )
    return VmInfo(
        id=int(vm.ID),
        name=_text(vm.NAME),
        state=int(vm.STATE),
        lcm_state=int(vm.LCM_STATE),
        user_template=dict(vm.USER_TEMPLATE or {}),
        history=history,
    )


def _labelled(kind: str) -> Callable[[Any], LabelledObject]:
    def convert(obj: Any) -> LabelledObject:
        return LabelledObject(
            kind=kind, id=int(obj.ID), name=_text(obj.NAME), attributes=dict(obj.TEMPLATE or {})
        )

    return convert
