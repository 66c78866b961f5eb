"""A campaign's settings and its leads (the customers it calls), as plain frozen data."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, time


class DialMode(enum.Enum):
    """How calls are placed: the agent decides, one call per free agent, or ahead of them."""

    PREVIEW = "preview"  # the agent sees the lead first and dials it
    PROGRESSIVE = "progressive"  # one call per free agent, never a dropped call
    PREDICTIVE = "predictive"  # more calls than free agents, by the answer rate, drops capped


class AttemptOutcome(enum.Enum):
    """How one call to a lead ended."""

    CONNECTED = "connected"  # the customer answered and talked to an agent
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"  # the network could not place it (congestion, unreachable)
    INVALID_NUMBER = "invalid-number"  # the number does not exist: never retried
    DROPPED = "dropped"  # the customer answered and no agent was free (an abandoned call)
    REFUSED = "refused"  # the customer asked not to be called again


class LeadState(enum.Enum):
    """Where a lead stands in its campaign."""

    PENDING = "pending"  # to be called (now, or at `next_attempt_at`)
    DIALLING = "dialling"
    DONE = "done"  # reached an agent
    EXHAUSTED = "exhausted"  # out of attempts, or not worth another
    DO_NOT_CALL = "do-not-call"


#: Outcomes after which a lead is finished whatever the retry rules say.
FINAL = {
    AttemptOutcome.CONNECTED: LeadState.DONE,
    AttemptOutcome.INVALID_NUMBER: LeadState.EXHAUSTED,
    AttemptOutcome.REFUSED: LeadState.DO_NOT_CALL,
}


@dataclass(frozen=True, slots=True)
class RetryRule:
    """After an outcome, try again `delay` seconds later, up to `max_attempts` in all."""

    outcome: AttemptOutcome
    delay: float
    max_attempts: int


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Hours in which customers may be called, on some days of the week (0 = Monday)."""

    days: frozenset[int]
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        """True when `local` (the customer's local time) falls inside this window."""
        return local.weekday() in self.days and self.start <= local.time() < self.end


DEFAULT_RETRIES = (
    RetryRule(AttemptOutcome.NO_ANSWER, 3600.0, 3),
    RetryRule(AttemptOutcome.BUSY, 600.0, 5),
    RetryRule(AttemptOutcome.FAILED, 900.0, 3),
    RetryRule(AttemptOutcome.DROPPED, 1800.0, 3),
)
WORKING_HOURS = (CallingWindow(frozenset(range(5)), time(9), time(20)),)


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    """One campaign: its queue (whose agents take the calls), mode, limits and rules."""

    name: str
    queue: str
    mode: DialMode = DialMode.PROGRESSIVE
    #: Highest share of customer-answered calls that may be dropped (Ofcom/FTC: 3 %).
    max_drop_rate: float = 0.03
    #: Predictive never places more than this many calls per free agent.
    max_ratio: float = 3.0
    ring_timeout: float = 25.0
    windows: tuple[CallingWindow, ...] = WORKING_HOURS
    timezone: str = "UTC"
    retries: tuple[RetryRule, ...] = DEFAULT_RETRIES
    caller_id: str = ""

    def retry_rule(self, outcome: AttemptOutcome) -> RetryRule | None:
        """The rule for an outcome, if there is one."""
        return next((r for r in self.retries if r.outcome is outcome), None)


@dataclass(frozen=True, slots=True)
class Lead:
    """One customer to call in a campaign, and what happened so far."""

    id: str
    number: str
    customer_id: str | None = None
    priority: int = 0
    state: LeadState = LeadState.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_outcome: AttemptOutcome | None = None
    outcomes: tuple[AttemptOutcome, ...] = field(default=())
