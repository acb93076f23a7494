"""The governance port the strategy asks before and after each round, and its REST adapter.

No Django here: the ServerApp may run on another machine and reach fedgov over HTTPS with
a service token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from fedgov_flower.ticket import Ticket, parse_unverified


@dataclass(frozen=True)
class RoundGrant:
    """fedgov allowed the round: here is its signed ticket."""

    ticket: Ticket
    on_refusal: str = "skip"


@dataclass(frozen=True)
class RoundRefusal:
    """fedgov refused the round; ``failed_rules`` name the site, rule, article and reason."""

    run_id: int
    round_no: int
    reason: str
    state: str = ""
    on_refusal: str = "skip"
    failed_rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class UpdateRecord:
    """One site's reply as the strategy reports it: ids, hash and counts, no identities."""

    node_id: str
    update_hash: str
    num_examples: int
    # None: the site did not say (fedgov refuses to record such a round).
    records_used: int | None
    records_excluded: int | None
    metrics: dict[str, float]
    # The digest of the list the site filtered by (its allow-list, else its exclusions)
    # and of the subjects it used; "" when the site did not report them.
    filter_digest: str = ""
    subjects_digest: str = ""

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "node_id": self.node_id,
            "update_hash": self.update_hash,
            "num_examples": self.num_examples,
            "records_used": self.records_used,
            "records_excluded": self.records_excluded,
            "metrics": self.metrics,
        }
        if self.filter_digest:
            data["filter_digest"] = self.filter_digest
            data["subjects_digest"] = self.subjects_digest
        return data


class GovernanceError(RuntimeError):
    """fedgov could not be asked or refused the request itself (not a gate refusal)."""


class GovernancePort(Protocol):
    """What the governed strategy needs from fedgov."""

    def request_round(
        self, *, run_id: int, round_no: int, message_type: str = "train", flower_run_id: str = ""
    ) -> RoundGrant | RoundRefusal:
        """Gate round ``round_no`` and return its ticket for ``message_type`` messages of
        Flower run ``flower_run_id``, or the refusal."""

    def report_round(
        self,
        *,
        run_id: int,
        round_no: int,
        updates: list[UpdateRecord],
        rejected: list[UpdateRecord],
        aggregate_hash: str | None,
        dp: dict[str, Any] | None = None,
        site_refusals: list[dict[str, Any]] | None = None,
        message_type: str = "train",
    ) -> None:
        """Record the round's accepted and refused updates and its aggregate hash.

        ``dp`` is the ``DpRelease`` the strategy applied (absent: no noise was added);
        ``site_refusals`` are the sites that refused the ticket themselves. For
        ``message_type="evaluate"`` the replies are evaluation results (no aggregate).
        """


class RestGovernance:
    """``GovernancePort`` over fedgov's REST API with a DRF token of the Service role."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def _post(
        self, path: str, payload: dict[str, Any] | None = None, *, answers: tuple[int, ...] = ()
    ) -> requests.Response:
        """POST; a status of 400 or more is a ``GovernanceError`` unless ``answers`` names it
        as an answer the caller reads."""
        try:
            response = self.session.post(
                f"{self.base_url}{path}", json=payload or {}, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise GovernanceError(f"fedgov unreachable: {exc}") from exc
        if response.status_code >= 400 and response.status_code not in answers:
            raise GovernanceError(f"fedgov answered {response.status_code}: {response.text[:500]}")
        return response

    def register_node(self, *, site_slug: str, node_id: int) -> None:
        """Bind ``site_slug`` to ``node_id`` in fedgov (recorded in the ledger)."""
        self._post(f"/api/v1/sites/{site_slug}/supernode", {"node_id": str(node_id)})

    def request_round(
        self, *, run_id: int, round_no: int, message_type: str = "train", flower_run_id: str = ""
    ) -> RoundGrant | RoundRefusal:
        # 409: the round is cleared but its placement is not verified yet, so no ticket;
        # the body is a refusal like any other (state and reason), not a failure.
        data = self._post(
            f"/api/v1/runs/{run_id}/rounds/{round_no}/ticket",
            {"message_type": message_type, "flower_run_id": str(flower_run_id)},
            answers=(409,),
        ).json()
        if data.get("allowed"):
            raw = data["ticket"]
            ticket = parse_unverified(raw["body"], raw["signature"], raw["key_id"])
            return RoundGrant(ticket=ticket, on_refusal=data.get("on_refusal", "skip"))
        return RoundRefusal(
            run_id=run_id,
            round_no=round_no,
            reason=data.get("reason", ""),
            state=data.get("state", ""),
            on_refusal=data.get("on_refusal", "skip"),
            failed_rules=data.get("failed_rules", []),
        )

    def report_round(
        self,
        *,
        run_id: int,
        round_no: int,
        updates: list[UpdateRecord],
        rejected: list[UpdateRecord],
        aggregate_hash: str | None,
        dp: dict[str, Any] | None = None,
        site_refusals: list[dict[str, Any]] | None = None,
        message_type: str = "train",
    ) -> None:
        if message_type == "evaluate":
            self._post(
                f"/api/v1/runs/{run_id}/rounds/{round_no}/evaluations",
                {
                    "evaluations": [u.as_json() for u in updates],
                    "rejected": [u.as_json() for u in rejected],
                    "site_refusals": site_refusals or [],
                },
            )
            return
        payload: dict[str, Any] = {
            "updates": [u.as_json() for u in updates],
            "rejected": [u.as_json() for u in rejected],
            "aggregate_hash": aggregate_hash,
        }
        if dp is not None:
            payload["dp"] = dp
        if site_refusals:
            payload["site_refusals"] = site_refusals
        self._post(f"/api/v1/runs/{run_id}/rounds/{round_no}/updates", payload)
