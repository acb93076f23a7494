"""oned's numeric VM states (STATE and LCM_STATE), shared by the client and the stand-in.

The numbers are oned's own (include/VirtualMachine.h); the stand-in must serve them and the
client must read them without importing pyone outside ``client.py``.
"""

from __future__ import annotations

from enum import IntEnum


class VmState(IntEnum):
    INIT = 0
    PENDING = 1
    HOLD = 2
    ACTIVE = 3
    STOPPED = 4
    SUSPENDED = 5
    DONE = 6
    FAILED = 7
    POWEROFF = 8
    UNDEPLOYED = 9
    CLONING = 10
    CLONING_FAILURE = 11


class LcmState(IntEnum):
    LCM_INIT = 0
    PROLOG = 1
    BOOT = 2
    RUNNING = 3
    MIGRATE = 4
    EPILOG_STOP = 10
    EPILOG = 11
    SHUTDOWN = 12
    FAILURE = 14  # commented out in current oned; kept so old bodies still read
    CLEANUP_RESUBMIT = 15
    UNKNOWN = 16
    SHUTDOWN_POWEROFF = 18
    CLEANUP_DELETE = 23
    SHUTDOWN_UNDEPLOY = 29
    EPILOG_UNDEPLOY = 30
    BOOT_FAILURE = 36
    BOOT_MIGRATE_FAILURE = 37
    PROLOG_MIGRATE_FAILURE = 38
    PROLOG_FAILURE = 39
    EPILOG_FAILURE = 40
    EPILOG_STOP_FAILURE = 41
    EPILOG_UNDEPLOY_FAILURE = 42
    PROLOG_MIGRATE_POWEROFF_FAILURE = 44
    PROLOG_MIGRATE_SUSPEND_FAILURE = 46
    BOOT_UNDEPLOY_FAILURE = 47
    BOOT_STOPPED_FAILURE = 48
    PROLOG_RESUME_FAILURE = 49
    PROLOG_UNDEPLOY_FAILURE = 50
    PROLOG_MIGRATE_UNKNOWN_FAILURE = 61


FAILURE_LCM_STATES = frozenset(s for s in LcmState if s.name.endswith("FAILURE"))

# ACTIVE LCM states of a VM oned is already taking down: never adopted, never re-terminated
# (the VM reaches DONE, POWEROFF or UNDEPLOYED by itself; LifeCycleManager, src/lcm/).
ENDING_LCM_STATES = frozenset(
    {
        LcmState.EPILOG_STOP,
        LcmState.EPILOG,
        LcmState.SHUTDOWN,
        LcmState.CLEANUP_RESUBMIT,
        LcmState.SHUTDOWN_POWEROFF,
        LcmState.CLEANUP_DELETE,
        LcmState.SHUTDOWN_UNDEPLOY,
        LcmState.EPILOG_UNDEPLOY,
    }
)

# The only LCM states fedgov adopts a VM in: on its way to RUNNING, or there.
ADOPTABLE_LCM_STATES = frozenset(
    {LcmState.LCM_INIT, LcmState.PROLOG, LcmState.BOOT, LcmState.RUNNING}
)

# VM states from which a SuperNode will not reach RUNNING without a human.
STOPPED_VM_STATES = frozenset(
    {
        VmState.DONE,
        VmState.FAILED,
        VmState.STOPPED,
        VmState.SUSPENDED,
        VmState.POWEROFF,
        VmState.UNDEPLOYED,
        VmState.CLONING_FAILURE,
    }
)


def describe(state: int, lcm_state: int) -> str:
    """Human name of a (STATE, LCM_STATE) pair, e.g. ``ACTIVE/BOOT_FAILURE``."""
    try:
        name = VmState(state).name
    except ValueError:
        name = f"STATE {state}"
    if state != VmState.ACTIVE:
        return name
    try:
        return f"{name}/{LcmState(lcm_state).name}"
    except ValueError:
        return f"{name}/LCM_STATE {lcm_state}"


# oned's error codes (include/RequestManager.h, ErrorCode).
AUTHENTICATION = 0x0100
AUTHORIZATION = 0x0200
NO_EXISTS = 0x0400
ACTION = 0x0800
XML_RPC_API = 0x1000
INTERNAL = 0x2000
