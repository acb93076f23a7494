"""Deterministic kill points for crash tests: ``FEDGOV_CRASH_AT=<name>`` SIGKILLs the process.

A crash test must kill fedgov at a known step, not after a guessed delay. Each step of a
round calls ``crash_point(name)`` at the moment a crash hurts most: inside its
transaction, after its rows and ledger event are written and before the commit, so a
kill there loses the whole step. With the variable set to that name the process sends
itself SIGKILL, which no handler, ``finally`` or ``atexit`` can intercept: the same as
``kill -9`` from outside at that instant.

Inert unless set: the variable is read once at import, and an unset hook costs one
comparison of an empty string. Names, in the order a round reaches them:

``gate.decided`` · ``round.approved`` · ``round.provisioning`` ·
``round.placement_verified`` · ``ticket.issued`` · ``flower.round`` (federate, once the
Flower run is submitted) · ``round.aggregated`` · ``round.closed``

With a broker most steps run in a Celery worker, and those points fire there. For
``manage.py federate`` itself to die while the worker has left a round in a state, its
wait loop has ``federate.saw.<state>`` (``federate.saw.provisioning``,
``federate.saw.placement_verified``, ``federate.saw.aggregated``,
``federate.saw.closed``): it fires the moment federate reads that state.

``FEDGOV_CRASH_SKIP=<n>`` lets the first n arrivals pass (a later round, a retry).
Never set either variable outside a test.
"""

from __future__ import annotations

import os
import signal

CRASH_AT = os.environ.get("FEDGOV_CRASH_AT", "")
_skip = int(os.environ.get("FEDGOV_CRASH_SKIP", "0") or 0)


def crash_point(name: str) -> None:
    """SIGKILL this process here if ``FEDGOV_CRASH_AT`` names this point."""
    global _skip
    if not CRASH_AT or name != CRASH_AT:
        return
    if _skip > 0:
        _skip -= 1
        return
    os.kill(os.getpid(), signal.SIGKILL)
