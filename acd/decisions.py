"""What the dispatcher tells the server to do: frozen decisions, each with its reason.

Every input of the `Dispatcher` returns a list of these, in the order they must be carried out.
Agent state changes the ACD makes on its own are conveyed by them: `Assign`/`RingAll` reserve
agents, `CancelOffer` releases one, `AutoPause` pauses one, `WrapUpEnded` frees one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from acd.model import ActionKind, OverflowReason, Strategy


class Trigger(StrEnum):
    """The event that led to an assignment."""

    CONTACT_ARRIVED = "contact-arrived"  # a contact entered a queue with a free agent
    AGENT_AVAILABLE = "agent-available"  # an agent freed up and took the best waiting contact
    REQUIREMENTS_CHANGED = "requirements-changed"  # a rule relaxed what the contact needs
    REQUEUED = "requeued"  # an offer failed and the contact was placed again
    RETRY = "retry"  # the pause after a missed offer ran out


class Criterion(StrEnum):
    """What decided the choice."""

    LONGEST_IDLE = "longest-idle"
    FEWEST_CALLS = "fewest-calls"
    LEAST_OCCUPIED = "least-occupied"
    BEST_SKILL = "best-skill"
    ROUND_ROBIN = "round-robin"
    RING_ALL = "ring-all"
    RANDOM = "random"
    BEST_CONTACT = "best-contact"  # highest priority, then longest waiting, across queues


@dataclass(frozen=True, slots=True)
class Why:
    """Why this agent and this contact: the rule in force, the candidates, the deciding criterion.

    `value` is what the criterion compared for the winner (idle seconds, calls taken,
    occupancy, skill level sum, or for `best-contact` the contact's wait in seconds).
    `candidates` are the free agents that could take the contact (for `agent-available`, the
    agent itself); `groups_considered` counts the groups of waiting contacts (same
    requirements) the agent could serve and compared heads of.
    """

    trigger: Trigger
    queue: str
    rule: str | None
    requirements: tuple[tuple[str, int], ...]
    priority: int
    waited: float
    strategy: Strategy
    criterion: Criterion
    value: float
    candidates: frozenset[str]
    groups_considered: int

    def describe(self) -> str:
        """One human line, for logs and the monitor."""
        reqs = ", ".join(f"{s}>={lvl}" for s, lvl in self.requirements) or "none"
        rule = self.rule or "base"
        if self.criterion is Criterion.BEST_CONTACT:
            choice = (
                f"best waiting contact (priority {self.priority}, waited {self.waited:.1f} s) "
                f"among {self.groups_considered} group(s) the agent can serve"
            )
        else:
            shown = ", ".join(sorted(self.candidates)[:5])
            more = f" +{len(self.candidates) - 5}" if len(self.candidates) > 5 else ""
            choice = (
                f"{self.criterion.value} ({_value_text(self.criterion, self.value)}) among "
                f"{len(self.candidates)} free agent(s): {shown}{more}"
            )
        return f"{self.trigger.value} in {self.queue}, rule {rule}, needs {reqs}: {choice}"


def _value_text(criterion: Criterion, value: float) -> str:
    if criterion is Criterion.LONGEST_IDLE:
        return f"idle {value:.1f} s"
    if criterion is Criterion.FEWEST_CALLS:
        return f"{value:.0f} calls"
    if criterion is Criterion.LEAST_OCCUPIED:
        return f"occupancy {value:.0%}"
    if criterion is Criterion.BEST_SKILL:
        return f"level {value:.0f}"
    if criterion is Criterion.ROUND_ROBIN:
        return "next in turn"
    if criterion is Criterion.RING_ALL:
        return f"{value:.0f} rung"
    return "seeded draw"


class CancelReason(StrEnum):
    """Why an agent's phone must stop ringing."""

    RING_TIMEOUT = "ring-timeout"
    ANSWERED_ELSEWHERE = "answered-elsewhere"
    CONTACT_ABANDONED = "contact-abandoned"
    AGENT_LOGGED_OUT = "agent-logged-out"
    REPAIRED = "repaired"


class Problem(StrEnum):
    """An inconsistency found by the invariant checks."""

    STUCK_RESERVED = "stuck-reserved"  # reserved for a contact that is not ringing them
    STUCK_BUSY = "stuck-busy"  # busy with a contact that is gone or far too long
    CONTACT_GONE = "contact-gone"  # the telephony no longer knows this contact
    LOAD_MISMATCH = "load-mismatch"  # the per-channel count disagreed with the contacts
    INDEX_MISMATCH = "index-mismatch"  # the free-agent or waiting index disagreed with states


@dataclass(frozen=True, slots=True)
class Assign:
    """Reserve `agent_id` and ring them with `contact_id` (a callback: dial the customer)."""

    contact_id: str
    agent_id: str
    queue: str
    callback: bool
    why: Why


@dataclass(frozen=True, slots=True)
class RingAll:
    """Reserve and ring all of `agent_ids` at once; the first to answer takes the contact."""

    contact_id: str
    agent_ids: tuple[str, ...]
    queue: str
    callback: bool
    why: Why


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """Stop ringing `agent_id` for `contact_id`; the agent is released."""

    contact_id: str
    agent_id: str
    reason: CancelReason


@dataclass(frozen=True, slots=True)
class AutoPause:
    """The agent missed too many offers in a row and is now paused with `reason`."""

    agent_id: str
    reason: str
    misses: int


@dataclass(frozen=True, slots=True)
class Overflow:
    """The contact hit a limit in `queue`: carry out `action` (towards `target`).

    For `queue` the ACD has already moved the contact; for `callback` it keeps its place off
    the line; for `voicemail`, `announcement` and `hangup` it has left the ACD.
    """

    contact_id: str
    queue: str
    reason: OverflowReason
    action: ActionKind
    target: str | None


@dataclass(frozen=True, slots=True)
class Moved:
    """A rule moved the contact from one queue to another."""

    contact_id: str
    from_queue: str
    to_queue: str
    rule: str


@dataclass(frozen=True, slots=True)
class RuleApplied:
    """A different rule is now in force for a waiting contact (None: the queue's base)."""

    contact_id: str
    queue: str
    rule: str | None
    requirements: tuple[tuple[str, int], ...]
    priority: int


@dataclass(frozen=True, slots=True)
class WrapUpEnded:
    """The queue's wrap-up time for this contact ran out; the agent is free again."""

    agent_id: str
    contact_id: str


@dataclass(frozen=True, slots=True)
class Repair:
    """An invariant was broken and repaired: what was wrong and what the ACD did."""

    problem: Problem
    agent_id: str | None
    contact_id: str | None
    action: str


Decision = (
    Assign
    | RingAll
    | CancelOffer
    | AutoPause
    | Overflow
    | Moved
    | RuleApplied
    | WrapUpEnded
    | Repair
)
"""Anything the dispatcher can decide."""
