"""The GDPR round gate: frozen context, pure rules, verdict and replay.

``training.services.gate.round_gate`` is the write path; this package never touches the
database except through ``training.gate.builder``.
"""

from training.gate.context import GateContext, from_snapshot, to_snapshot
from training.gate.engine import GateVerdict, SiteVerdict, evaluate, replay
from training.gate.rules import ROUND_RULES, RULE_IDS, SITE_RULES, RuleResult

__all__ = [
    "ROUND_RULES",
    "RULE_IDS",
    "SITE_RULES",
    "GateContext",
    "GateVerdict",
    "RuleResult",
    "SiteVerdict",
    "evaluate",
    "from_snapshot",
    "replay",
    "to_snapshot",
]
