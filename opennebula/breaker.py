"""Per-zone circuit breaker: a dead oned zone fails fast instead of holding a worker.

The provisioner gives each ``OneClient`` a ``Breaker`` for the zone's endpoint identity
and zone id. Only calls that got *no answer* count (connection refused, timeout, HTTP
5xx): an answer from oned, even a refusal, proves the zone alive. State lives in the
``ZoneBreaker`` row so all workers share it; it is written only when it changes. These
writes are bookkeeping of an outside system's health, not domain evidence, so they do not
go through a service or the ledger (the ledger records each failed provisioning instead).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from fedgov import clock
from opennebula.errors import OpenNebulaError
from opennebula.models import ZoneBreaker

logger = logging.getLogger("fedgov.opennebula")


class ZoneUnavailable(OpenNebulaError):
    """The zone's breaker is open: no call was made."""


def counts(error: OpenNebulaError) -> bool:
    """True for an error that says the zone did not answer (not that it refused)."""
    return error.code is None and not error.permanent


class Breaker:
    """The breaker of one zone, loaded once per client; see ``ZoneBreaker``."""

    def __init__(self, identity: str, zone_id: int) -> None:
        self.identity = identity
        self.zone_id = zone_id
        row = ZoneBreaker.objects.filter(zone_endpoint=identity, zone_id=zone_id).first()
        self._failures = row.consecutive_failures if row else 0
        self._open_until = row.open_until if row else None
        self.zone_name = row.zone_name if row else ""

    def check_identity(self, answered_name: str) -> None:
        """Record the zone's name on first contact; refuse if oned later answers otherwise.

        Raises ``OpenNebulaError`` (permanent) naming both names.
        """
        if self.zone_name == answered_name:
            return
        if self.zone_name:
            raise OpenNebulaError(
                f"{self.identity} now answers for zone {self.zone_id} as {answered_name!r}, "
                f"recorded as {self.zone_name!r}: another oned? fedgov will not act on it "
                "until an operator deletes the zone's record",
                code=None,
                permanent=True,
                zone_id=self.zone_id,
            )
        with transaction.atomic():
            row, created = ZoneBreaker.objects.select_for_update().get_or_create(
                zone_endpoint=self.identity,
                zone_id=self.zone_id,
                defaults={"zone_name": answered_name, "updated_at": clock.now()},
            )
            if not created and not row.zone_name:
                row.zone_name = answered_name
                row.updated_at = clock.now()
                row.save(update_fields=["zone_name", "updated_at"])
        self.zone_name = row.zone_name
        if self.zone_name != answered_name:  # another worker recorded first
            self.check_identity(answered_name)

    def before_call(self, method: str) -> None:
        if self._open_until is None:
            return
        now = clock.now()
        if now < self._open_until:
            raise ZoneUnavailable(
                f"{method}: zone {self.zone_id} at {self.identity} is unavailable "
                f"({self._failures} calls in a row without an answer); next try after "
                f"{self._open_until:%H:%M:%S} UTC",
                code=None,
                permanent=False,
                zone_id=self.zone_id,
            )
        # Half-open: this call is the trial; a failure reopens at once (failures >= threshold).

    def record_success(self) -> None:
        if self._failures == 0 and self._open_until is None:
            return
        self._failures, self._open_until = 0, None
        with transaction.atomic():
            ZoneBreaker.objects.filter(zone_endpoint=self.identity, zone_id=self.zone_id).update(
                consecutive_failures=0, open_until=None, updated_at=clock.now()
            )
        logger.info("zone %s at %s answers again: breaker closed", self.zone_id, self.identity)

    def record_failure(self, error: OpenNebulaError) -> None:
        now = clock.now()
        threshold = int(settings.FEDGOV_ONE_BREAKER_THRESHOLD)
        with transaction.atomic():
            row, _ = ZoneBreaker.objects.select_for_update().get_or_create(
                zone_endpoint=self.identity, zone_id=self.zone_id, defaults={"updated_at": now}
            )
            row.consecutive_failures += 1
            row.last_error = error.message[:1000]
            row.last_failure_at = now
            row.updated_at = now
            if row.consecutive_failures >= threshold:
                if row.open_until is None or row.open_until <= now:
                    row.times_opened += 1
                    logger.warning(
                        "zone %s at %s: %s calls without an answer, breaker open",
                        self.zone_id,
                        self.identity,
                        row.consecutive_failures,
                    )
                row.open_until = now + timedelta(
                    seconds=float(settings.FEDGOV_ONE_BREAKER_COOLDOWN)
                )
            row.save()
        self._failures, self._open_until = row.consecutive_failures, row.open_until
