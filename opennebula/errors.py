"""The one error type for everything that goes wrong talking to OpenNebula."""

from __future__ import annotations

from typing import TYPE_CHECKING

from training.ports import WorkloadError

if TYPE_CHECKING:
    # Only a type: the provisioner imports this module.
    from opennebula.provisioner import Cleanup


class OpenNebulaError(WorkloadError):
    """A call to an OpenNebula zone failed, or a VM did not reach RUNNING.

    ``code`` is oned's error code (0x100 authentication … 0x2000 internal) when oned sent
    one; ``permanent`` says whether retrying the same call can help. ``vm_id`` names the
    VM the failure concerns, when there is one. Messages never contain credentials.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None,
        permanent: bool,
        vm_id: int | None = None,
        zone_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.permanent = permanent
        self.vm_id = vm_id
        self.zone_id = zone_id
        # The provisioner's ``Cleanup`` of the VM this error left behind, if there was one.
        self.cleanup: Cleanup | None = None

    def __str__(self) -> str:
        return self.message
