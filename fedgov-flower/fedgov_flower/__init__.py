"""fedgov-flower: what a Flower app imports to be governed by fedgov (no Django).

ServerApp::

    strategy = fedgov_flower.governed(FedProx(proximal_mu=0.1), context=context)
    result = strategy.start(grid, arrays, num_rounds=3)

ClientApp (two lines)::

    app = ClientApp(mods=fedgov_flower.mods())
    fedgov_flower.register(app)

and, in each handler, the data the ticket permits::

    records = fedgov_flower.data.filter_records(my_records, key="subject")

Modules: ``ticket`` (verify a signed round ticket), ``update_hash`` (the canonical hash),
``governance`` (the REST client), ``client_mod`` (the site's mod), ``site_policy`` (the
site's own limits), ``used_tickets`` (one use per ticket), ``data`` (subject filters),
``governed`` (any strategy under tickets), ``dp``/``dp_mod`` (the ticket's DP plan).
"""

from __future__ import annotations

from typing import Any

from fedgov_flower import data
from fedgov_flower.client_mod import (
    IDENTIFY,
    Grant,
    current_grant,
    governance_mod,
    make_governance_mod,
)
from fedgov_flower.governed import GovernedStrategy, RunStopped, governed, identify
from fedgov_flower.ticket import TicketRefused

__version__ = "0.1.0"


def mods(*, subject_aware: bool = True, **options: Any) -> list[Any]:
    """The mods a governed ClientApp runs, in order: fedgov's ticket check (signature,
    run, message type, one use, the site's own policy, subject lists), then the ticket's
    DP plan. Pass ``subject_aware=False`` for an app whose records carry no subject id:
    it is then refused on consent-based data, with a message that says how to fix it.
    Other keyword arguments go to ``make_governance_mod`` (keys, fetchers, clock)."""
    from fedgov_flower.dp_mod import dp_mod

    if subject_aware and not options:
        mod = governance_mod
    else:
        mod = make_governance_mod(subject_aware=subject_aware, **options)
    return [mod, dp_mod]


def register(app: Any) -> Any:
    """Add the registration query (``query.fedgov_identify``) to ``app``; returns ``app``."""
    app.query(IDENTIFY.split(".", 1)[1])(identify)
    return app


__all__ = [
    "GovernedStrategy",
    "Grant",
    "RunStopped",
    "TicketRefused",
    "current_grant",
    "data",
    "governed",
    "mods",
    "register",
]
