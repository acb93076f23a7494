"""Shorter Flower polls for fedgov's tuned local deployment (loaded via PYTHONPATH).

flwr 1.42 hard-codes two 3-second sleeps on a round's path: the SuperNode's wait when no
message is pending and the ServerApp grid's wait between pulls for replies. Python runs
``sitecustomize`` at start-up in every process whose PYTHONPATH holds this folder, so
``training.flower.supervisor`` adds it only for a tuned federation. The cap applies only
to sleeps called from the modules named below; every other sleep is untouched.
"""

from __future__ import annotations

import os
import sys
import time

_real_sleep = time.sleep
_CAP = float(os.environ.get("FEDGOV_FLOWER_POLL_CAP", "0.1"))
_TARGETS = frozenset(
    {
        "flwr.supernode.start_client_internal",
        "flwr.superlink.grid.http_grid",
    }
)


def _capped_sleep(seconds: float) -> None:
    caller = sys._getframe(1).f_globals.get("__name__", "")
    _real_sleep(min(seconds, _CAP) if caller in _TARGETS else seconds)


time.sleep = _capped_sleep
