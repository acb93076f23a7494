"""The site's DP mod: applies the mechanism the signed ticket names, with Flower's own mods.

It runs inside ``governance_mod`` (which verified the ticket), around the train handler:

- ``client-clipping``: Flower's ``fixedclipping_mod`` clips the update to C before it
  leaves the site. The clipping norm Flower's server wrapper puts in the message config
  is unsigned; the site uses it only if it equals the ticket's signed C.
- ``local``: Flower's ``LocalDpMod`` clips to C and adds N(0, (z·C)²) at the site
  (ε_l chosen so that its std is z·C, see ``training.flower.dp``).
- ``central`` or no plan: the update leaves unclipped; the server clips and adds noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import Context, Error, Message
from flwr.clientapp.mod import LocalDpMod, fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from training.flower.client_mod import REFUSAL_CODE, current_grant
from training.flower.dp import DpError, DpPlan, Mechanism

log = logging.getLogger("fedgov.flower.site.dp")


def _refuse(msg: Message, code: str, reason: str) -> Message:
    log.warning("refused %s message: %s (%s)", msg.metadata.message_type, reason, code)
    return Message(Error(code=REFUSAL_CODE, reason=f"fedgov:{code}: {reason}"), reply_to=msg)


def dp_mod(msg: Message, context: Context, call_next: Callable[[Message, Context], Message]):
    """Apply the ticket's DP mechanism to this site's update (train messages only)."""
    if not msg.metadata.message_type.startswith("train"):
        return call_next(msg, context)
    try:
        plan = DpPlan.from_ticket(current_grant().ticket.dp)
    except DpError as exc:
        return _refuse(msg, "dp_malformed", str(exc))
    if plan is None or plan.mechanism == Mechanism.CENTRAL:
        return call_next(msg, context)
    if plan.mechanism == Mechanism.CLIENT_CLIPPING:
        config = msg.content.config_records.get("config")
        sent = config.get(KEY_CLIPPING_NORM) if config is not None else None
        if sent is None or float(sent) != float(plan.clipping_norm):
            return _refuse(
                msg,
                "dp_clipping_mismatch",
                f"the message asks clipping norm {sent}, the ticket signs {plan.clipping_norm}",
            )
        return fixedclipping_mod(msg, context, call_next)
    local = LocalDpMod(
        clipping_norm=plan.clipping_norm,
        sensitivity=plan.clipping_norm,
        epsilon=plan.local_dp_epsilon(),
        delta=plan.delta,
    )
    return local(msg, context, call_next)
