"""The site's DP mod: applies the mechanism the signed ticket names, with Flower's own mods.

It runs inside ``governance_mod`` (which verified the ticket), around the train handler:

- ``client-clipping``: Flower's ``fixedclipping_mod`` clips the update to C before it
  leaves the site. The clipping norm Flower's server wrapper puts in the message config
  is unsigned; the site uses it only if it equals the ticket's signed C.
- ``local``: Flower's ``LocalDpMod`` clips to C and adds N(0, (z·C)²) at the site
  (ε_l chosen so that its std is z·C, see ``fedgov_flower.dp``).
- ``central`` or no plan: the update leaves unclipped; the server clips and adds noise.

The site's own limit comes first, whatever fedgov says (node config, or the env):
``fedgov-max-epsilon`` / ``FEDGOV_MAX_EPSILON`` refuses a ticket whose planned
cumulative ε (``dp.planned_epsilon``, the accountant's figure after this round) exceeds
it, or that plans no DP at all; ``fedgov-dp-mechanism`` / ``FEDGOV_DP_MECHANISM``
refuses any other mechanism (e.g. ``client-clipping``: the site clips its own updates).
The refusal is an error reply the strategy reports to fedgov (``site.refused``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from flwr.app import Context, Error, Message
from flwr.clientapp.mod import LocalDpMod, fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from fedgov_flower.client_mod import REFUSAL_CODE, current_grant
from fedgov_flower.dp import DpError, DpPlan, Mechanism
from fedgov_flower.values import as_float

log = logging.getLogger("fedgov.flower.site.dp")


def _refuse(msg: Message, code: str, reason: str) -> Message:
    log.warning("refused %s message: %s (%s)", msg.metadata.message_type, reason, code)
    return Message(Error(code=REFUSAL_CODE, reason=f"fedgov:{code}: {reason}"), reply_to=msg)


def _site_setting(context: Context, key: str, env: str) -> str:
    value = context.node_config.get(key)
    if value is None or value == "":
        value = os.environ.get(env, "")
    return str(value).strip()


def site_limit_refusal(dp: dict[str, Any] | None, context: Context) -> tuple[str, str] | None:
    """``(code, reason)`` when the ticket's plan breaks this site's own DP limits."""
    required = _site_setting(context, "fedgov-dp-mechanism", "FEDGOV_DP_MECHANISM")
    max_text = _site_setting(context, "fedgov-max-epsilon", "FEDGOV_MAX_EPSILON")
    mechanism = (dp or {}).get("mechanism", Mechanism.NONE)
    if required and mechanism != required:
        return (
            "site_dp_mechanism",
            f"this site requires {required} DP; the ticket plans {mechanism}",
        )
    if not max_text:
        return None
    try:
        limit = float(max_text)
    except ValueError:
        return "site_config", f"fedgov-max-epsilon {max_text!r} is not a number"
    planned = (dp or {}).get("planned_epsilon")
    if isinstance(planned, bool) or not isinstance(planned, int | float):
        return "site_epsilon_limit", f"the ticket plans no ε this site can check (limit {limit:g})"
    if not planned <= limit:
        return (
            "site_epsilon_limit",
            f"planned cumulative ε={planned:.4g} exceeds this site's limit {limit:g}",
        )
    return None


def dp_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Apply the ticket's DP mechanism to this site's update (train messages only)."""
    if not msg.metadata.message_type.startswith("train"):
        return call_next(msg, context)
    ticket_dp = current_grant().ticket.dp
    refusal = site_limit_refusal(ticket_dp, context)
    if refusal is not None:
        return _refuse(msg, *refusal)
    try:
        plan = DpPlan.from_ticket(ticket_dp)
    except DpError as exc:
        return _refuse(msg, "dp_malformed", str(exc))
    if plan is None or plan.mechanism == Mechanism.CENTRAL:
        return call_next(msg, context)
    if plan.mechanism == Mechanism.CLIENT_CLIPPING:
        config = msg.content.config_records.get("config")
        sent = config.get(KEY_CLIPPING_NORM) if config is not None else None
        if sent is None or as_float(sent) != float(plan.clipping_norm):
            return _refuse(
                msg,
                "dp_clipping_mismatch",
                f"the message asks clipping norm {sent!s}, the ticket signs {plan.clipping_norm}",
            )
        return fixedclipping_mod(msg, context, call_next)
    local = LocalDpMod(
        clipping_norm=plan.clipping_norm,
        sensitivity=plan.clipping_norm,
        epsilon=plan.local_dp_epsilon(),
        delta=plan.delta,
    )
    return local(msg, context, call_next)
