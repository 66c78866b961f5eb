"""Automatic call distribution: skill-based routing across all queues, pure and fast.

The server drives one `Dispatcher` with inputs stamped with `now` (seconds) and carries out
the `Decision`s it returns; see docs/acd.md for the façade, the states and the TOML shape.
"""

from acd.conditions import Comparison, Condition, Metric, Op, parse_condition
from acd.decisions import (
    Assign,
    AutoPause,
    CancelOffer,
    CancelReason,
    Criterion,
    Decision,
    Moved,
    Overflow,
    Problem,
    Repair,
    RingAll,
    RuleApplied,
    Trigger,
    Why,
    WrapUpEnded,
)
from acd.dispatcher import AUTO_PAUSE_REASON, Dispatcher
from acd.errors import AcdError
from acd.model import (
    AcdConfig,
    AcdSettings,
    ActionKind,
    AgentConfig,
    Channel,
    ContactRequest,
    OverflowAction,
    OverflowReason,
    QueueConfig,
    Rule,
    ServiceLevelFormula,
    Strategy,
)
from acd.states import AgentState, ContactState, Presence, SessionState
from acd.views import AgentView, ContactView, QueueFigures

__all__ = [
    "AUTO_PAUSE_REASON",
    "AcdConfig",
    "AcdError",
    "AcdSettings",
    "ActionKind",
    "AgentConfig",
    "AgentState",
    "AgentView",
    "Assign",
    "AutoPause",
    "CancelOffer",
    "CancelReason",
    "Channel",
    "Comparison",
    "Condition",
    "ContactRequest",
    "ContactState",
    "ContactView",
    "Criterion",
    "Decision",
    "Dispatcher",
    "Metric",
    "Moved",
    "Op",
    "Overflow",
    "OverflowAction",
    "OverflowReason",
    "Presence",
    "Problem",
    "QueueConfig",
    "QueueFigures",
    "Repair",
    "RingAll",
    "Rule",
    "RuleApplied",
    "ServiceLevelFormula",
    "SessionState",
    "Strategy",
    "Trigger",
    "Why",
    "WrapUpEnded",
    "parse_condition",
]
