"""The round's state machine as data: which state may follow which.

Pure and import-light so the admin, the API, the services and the tests read one table.
"""

from __future__ import annotations

from training.choices import TERMINAL_ROUND_STATES, RoundState

S = RoundState

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PLANNED: frozenset({S.GATED, S.BLOCKED, S.ABORTED}),
    S.GATED: frozenset({S.AWAITING_APPROVAL, S.APPROVED, S.ABORTED}),
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.ABORTED}),
    # approved → running: a Flower run driven by `flwr run` alone on SuperNodes that
    # already run (no provisioning step) took the round's ticket (docs/byo-flower-app.md).
    S.APPROVED: frozenset({S.PROVISIONING, S.AWAITING_APPROVAL, S.RUNNING, S.FAILED, S.ABORTED}),
    S.PROVISIONING: frozenset({S.PLACEMENT_VERIFIED, S.BLOCKED, S.FAILED, S.ABORTED}),
    S.PLACEMENT_VERIFIED: frozenset({S.RUNNING, S.FAILED, S.ABORTED}),
    S.RUNNING: frozenset({S.AGGREGATED, S.FAILED, S.ABORTED}),
    S.AGGREGATED: frozenset({S.CLOSED, S.FAILED}),
    # Re-gating once the facts changed (training/services/handoff.py): the old decision
    # stays, a new one is made from planned. Blocked is otherwise an end state.
    S.BLOCKED: frozenset({S.PLANNED}),
}

# States in which a round may still be aborted by an operator.
ABORTABLE = frozenset(state for state, nexts in ALLOWED_TRANSITIONS.items() if S.ABORTED in nexts)


def can_transition(current: str, target: str) -> bool:
    return target in ALLOWED_TRANSITIONS.get(current, frozenset())


def sources_of(target: str) -> frozenset[str]:
    """Every state from which ``target`` may be entered."""
    return frozenset(s for s, nexts in ALLOWED_TRANSITIONS.items() if target in nexts)


def is_terminal(state: str) -> bool:
    return state in TERMINAL_ROUND_STATES
