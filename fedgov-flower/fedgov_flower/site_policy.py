"""The site's own policy: what it accepts whatever a fedgov ticket says (sovereignty).

A site keeps a local file (node config ``fedgov-site-policy`` or ``FEDGOV_SITE_POLICY``),
TOML or JSON, in the spirit of NVFlare's site-side authorization policies
(``local/authorization.json``: the site, not the server, decides what may run on it):

    accept_purposes = ["topic-classification"]   # run purposes it trains for
    aggregator_countries = ["DE", "FR"]         # where the aggregate may be computed
    min_approvals = 1                           # human approvals the round must carry
    refuse_runs = [13]                          # fedgov run ids it never trains

A key left out sets no limit. The ticket signs the facts checked here (``context``:
purpose, aggregator country, approvals); a fact the ticket does not state fails a limit
that needs it (deny by default). A file that cannot be read or parsed refuses every
message: a site that wrote a policy must never run without it. Stdlib only.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedgov_flower.ticket import Ticket, TicketRefused

KNOWN_KEYS = frozenset({"accept_purposes", "aggregator_countries", "min_approvals", "refuse_runs"})


@dataclass(frozen=True)
class SitePolicy:
    """A site's limits; ``None`` means no limit of that kind."""

    accept_purposes: frozenset[str] | None = None
    aggregator_countries: frozenset[str] | None = None
    min_approvals: int | None = None
    refuse_runs: frozenset[int] = frozenset()

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> SitePolicy:
        unknown = set(data) - KNOWN_KEYS
        if unknown:
            raise ValueError(f"unknown site policy keys: {sorted(unknown)}")

        def strings(key: str, upper: bool = False) -> frozenset[str] | None:
            value = data.get(key)
            if value is None:
                return None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} must be a list of strings")
            return frozenset(v.upper() if upper else v for v in value)

        approvals = data.get("min_approvals")
        if approvals is not None and (
            isinstance(approvals, bool) or not isinstance(approvals, int) or approvals < 0
        ):
            raise ValueError("min_approvals must be a non-negative integer")
        runs = data.get("refuse_runs", [])
        if not isinstance(runs, list) or not all(
            isinstance(r, int) and not isinstance(r, bool) for r in runs
        ):
            raise ValueError("refuse_runs must be a list of run ids")
        return cls(
            accept_purposes=strings("accept_purposes"),
            aggregator_countries=strings("aggregator_countries", upper=True),
            min_approvals=approvals,
            refuse_runs=frozenset(runs),
        )

    @classmethod
    def load(cls, path: str | Path) -> SitePolicy:
        """Read the policy file; raises ``TicketRefused("site_policy_unreadable")``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
            return cls.from_mapping(data)
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            raise TicketRefused(
                "site_policy_unreadable", f"the site policy {path} cannot be used: {exc}"
            ) from exc

    def check(self, ticket: Ticket) -> None:
        """Raise ``TicketRefused`` with a ``site_policy_*`` code when the ticket breaks it."""
        context = ticket.context or {}
        if ticket.run_id in self.refuse_runs:
            raise TicketRefused("site_policy_run", f"this site refuses run {ticket.run_id}")
        if self.accept_purposes is not None:
            purpose = context.get("purpose")
            if purpose not in self.accept_purposes:
                raise TicketRefused(
                    "site_policy_purpose",
                    f"purpose {purpose or '(not stated)'} is not one this site accepts "
                    f"({', '.join(sorted(self.accept_purposes))})",
                )
        if self.aggregator_countries is not None:
            country = str(context.get("aggregator_country") or "").upper()
            if country not in self.aggregator_countries:
                raise TicketRefused(
                    "site_policy_aggregator",
                    f"aggregator country {country or '(not stated)'} is not one this site "
                    f"accepts ({', '.join(sorted(self.aggregator_countries))})",
                )
        if self.min_approvals:
            approvals = context.get("approvals")
            is_count = isinstance(approvals, int) and not isinstance(approvals, bool)
            count = approvals if isinstance(approvals, int) and is_count else 0
            if count < self.min_approvals:
                raise TicketRefused(
                    "site_policy_approvals",
                    f"the round carries {count} approval{'' if count == 1 else 's'}; "
                    f"this site requires {self.min_approvals}",
                )
