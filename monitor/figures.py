"""Contact-center figures with one definition for the live monitor, the reports, the drill-down
and Prometheus (docs/metrics.md, "Reports and the monitor").

Pure: a finished contact is described by `ContactFacts` (built from a stored call record, or
from the contact's events as they happen) and counted by `Tally.add`. `counted_in` says which
counts one contact adds to; the tally and the drill-down both use it, so the contacts behind a
figure are exactly the ones it counted. The service level is `acd.metrics.service_level`, the
ACD's own formula.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from acd.metrics import service_level
from acd.model import ServiceLevelFormula
from commserver.contacts import Outcome


class Fate(enum.Enum):
    """How a contact left the queue (or, seen from one agent, what became of it there)."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"  # voicemail, announcement, hang-up by a limit, transfer out, failure
    ELSEWHERE = "elsewhere"  # agent view only: offered to this agent, finished with another


def fate_of(outcome: str, answered: bool) -> Fate:
    """A contact's fate from its recorded outcome and whether an agent answered it."""
    if answered:
        return Fate.ANSWERED
    if outcome == Outcome.ABANDONED.value:
        return Fate.ABANDONED
    return Fate.OVERFLOWED


#: The counts, in the order reports list them; each is a number of contacts.
COUNTS = (
    "offered", "answered", "answered_within", "abandoned", "short_abandoned", "overflowed",
    "voicemail", "transferred", "missed",
)


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """What the figures need about one contact that finished in a queue.

    `wait` runs from entering the queue until answered or until it left; `handle` is talk plus
    wrap-up time (answered contacts; None while unknown). `offered_to` are the agents it rang,
    `missed_by` those who let it ring without answering.
    """

    contact_id: str
    queue: str | None
    agent_id: str | None
    fate: Fate
    wait: float
    handle: float | None = None
    transferred: bool = False
    voicemail: bool = False
    offered_to: frozenset[str] = field(default_factory=frozenset)
    missed_by: frozenset[str] = field(default_factory=frozenset)

    def for_agent(self, agent_id: str) -> ContactFacts | None:
        """This contact as one agent's figures see it; None if it never reached them."""
        if self.agent_id == agent_id and self.fate in (Fate.ANSWERED, Fate.ABANDONED):
            fate: Fate = self.fate  # answered by them, or abandoned while ringing them
        elif agent_id in self.offered_to or agent_id in self.missed_by:
            fate = Fate.ELSEWHERE
        else:
            return None
        return replace(
            self,
            fate=fate,
            transferred=self.transferred and fate is Fate.ANSWERED,
            voicemail=False,
            missed_by=self.missed_by & {agent_id},
        )


def counted_in(facts: ContactFacts, threshold: float) -> frozenset[str]:
    """The counts one contact adds 1 to, `threshold` being the queue's T in seconds."""
    names = {"offered"}
    within = facts.wait <= threshold
    if facts.fate is Fate.ANSWERED:
        names.add("answered")
        if within:
            names.add("answered_within")
        if facts.transferred:
            names.add("transferred")
    elif facts.fate is Fate.ABANDONED:
        names.add("abandoned")
        if within:
            names.add("short_abandoned")
    elif facts.fate is Fate.OVERFLOWED:
        names.add("overflowed")
        if facts.voicemail:
            names.add("voicemail")
    if facts.missed_by:
        names.add("missed")
    return frozenset(names)


@dataclass(slots=True)
class Tally:
    """Counts and sums over a set of contacts, and the rates derived from them."""

    offered: int = 0
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    overflowed: int = 0
    voicemail: int = 0
    transferred: int = 0
    missed: int = 0
    wait_answered: float = 0.0  # sum of the waits of answered contacts
    handle_total: float = 0.0  # sum of talk + wrap-up of answered contacts with a known one
    handled: int = 0

    def add(self, facts: ContactFacts, threshold: float) -> frozenset[str]:
        """Count one contact; returns the counts it went into."""
        names = counted_in(facts, threshold)
        for name in names:
            setattr(self, name, getattr(self, name) + 1)
        if facts.fate is Fate.ANSWERED:
            self.wait_answered += facts.wait
            if facts.handle is not None:
                self.handle_total += facts.handle
                self.handled += 1
        return names

    def merge(self, other: Tally) -> None:
        """Add another tally's counts and sums to this one."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def service_level(self, formula: ServiceLevelFormula) -> float | None:
        """By the configured formula (the ACD's code); None when undefined."""
        return service_level(
            formula,
            offered=self.offered,
            answered=self.answered,
            answered_within=self.answered_within,
            short_abandoned=self.short_abandoned,
        )

    @property
    def asa(self) -> float | None:
        """Average speed of answer: mean wait of answered contacts."""
        return self.wait_answered / self.answered if self.answered else None

    @property
    def aht(self) -> float | None:
        """Average handle time: mean talk + wrap-up of answered contacts."""
        return self.handle_total / self.handled if self.handled else None

    @property
    def abandon_rate(self) -> float | None:
        """Abandoned / offered."""
        return self.abandoned / self.offered if self.offered else None

    def counts(self) -> dict[str, int]:
        """Every count by name."""
        return {name: getattr(self, name) for name in COUNTS}


def tally(contacts: Iterable[ContactFacts], threshold: float) -> Tally:
    """A tally of many contacts of one queue."""
    result = Tally()
    for facts in contacts:
        result.add(facts, threshold)
    return result


@dataclass(slots=True)
class AgentTime:
    """Seconds an agent spent in each state over a span of time (from agent state changes)."""

    staffed: float = 0.0  # logged in, whatever the state
    ready: float = 0.0
    reserved: float = 0.0
    busy: float = 0.0
    wrap_up: float = 0.0
    paused: float = 0.0

    def add(self, state: str, seconds: float) -> None:
        """Time spent in one state (`AgentState` values)."""
        if state == "logged-out" or seconds <= 0:
            return
        self.staffed += seconds
        attribute = state.replace("-", "_")
        if attribute in ("ready", "reserved", "busy", "wrap_up", "paused"):
            setattr(self, attribute, getattr(self, attribute) + seconds)

    def merge(self, other: AgentTime) -> None:
        """Add another span's times."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def availability(self) -> float | None:
        """Share of staffed time at the ACD's disposal (not paused)."""
        return (self.staffed - self.paused) / self.staffed if self.staffed else None

    @property
    def occupancy(self) -> float | None:
        """Share of staffed time spent on contacts (talking or in wrap-up)."""
        return (self.busy + self.wrap_up) / self.staffed if self.staffed else None


@dataclass(frozen=True, slots=True)
class Ring:
    """One offer of a contact to one agent's phone."""

    agent_id: str
    started: datetime
    ended: datetime
    outcome: str  # the state that ended the ring: connected, queued (missed), abandoned...

    @property
    def answered(self) -> bool:
        """The agent answered."""
        return self.outcome == "connected"

    @property
    def missed(self) -> bool:
        """The agent let it ring and the contact went back to the queue (ring-no-answer)."""
        return self.outcome == "queued"


@dataclass(slots=True)
class Trail:
    """What a contact's state changes say about its routing: the agents it rang, who let it
    ring unanswered, when its wrap-up ran. Fed one change at a time (live, or from the stored
    contact events), so the monitor and the reports read the same things from them."""

    rings: list[Ring] = field(default_factory=list)
    wrap_started: datetime | None = None
    wrap_ended: datetime | None = None
    _ringing: tuple[str, datetime] | None = None

    def step(self, old: str, new: str, agent_id: str | None, at: datetime) -> None:
        """One state change (`ContactState` values) of the contact."""
        if self._ringing is not None and new != "offered":
            agent, started = self._ringing
            self.rings.append(Ring(agent, started, at, new))
            self._ringing = None
        if new == "offered" and old != "offered" and agent_id is not None:
            self._ringing = (agent_id, at)
        elif new == "wrap-up":
            self.wrap_started = at
        elif old == "wrap-up" and new == "ended":
            self.wrap_ended = at

    @property
    def offered_to(self) -> frozenset[str]:
        """Every agent the contact rang (ring-all offers name no single agent)."""
        current = {self._ringing[0]} if self._ringing is not None else set()
        return frozenset({r.agent_id for r in self.rings} | current)

    @property
    def missed_by(self) -> frozenset[str]:
        """Agents who let it ring without answering (the caller still there afterwards)."""
        return frozenset(r.agent_id for r in self.rings if r.missed)

    @property
    def wrap_up_seconds(self) -> float | None:
        """The wrap-up after the contact, once it has ended."""
        if self.wrap_started is None or self.wrap_ended is None:
            return None
        return max((self.wrap_ended - self.wrap_started).total_seconds(), 0.0)
