"""The dispatcher's mutable run-time records: agents, sessions, contacts, queues, groups.

These are the dispatcher's own bookkeeping (plain `__slots__` classes for speed); nothing
outside `acd` should change them. Read-only views for the server are in `acd.views`.
"""

from __future__ import annotations

from acd.conditions import TIME_METRICS, Comparison, Metric
from acd.errors import InvalidAgentTransition, InvalidContactTransition
from acd.model import CHANNELS, AgentConfig, Channel, QueueConfig
from acd.states import (
    CONTACT_TRANSITIONS,
    PRESENCE_TRANSITIONS,
    SESSION_TRANSITIONS,
    AgentState,
    ContactState,
    Presence,
    SessionState,
)

Requirements = tuple[tuple[str, int], ...]
"""Required skills as sorted (skill, minimum level) pairs: hashable, and one group key."""

Entry = tuple[int, float, int, "ContactRecord"]
"""A waiting contact's place: (-priority, arrived_at, seq, contact). `seq` is unique, so tuple
comparison never reaches the contact itself."""


def meets(skills: dict[str, int], requirements: Requirements) -> bool:
    """Whether `skills` meet every (skill, minimum level) of `requirements`."""
    # A plain loop: measurably faster than all(<generator>) on the matcher's hot path.
    for skill, level in requirements:  # noqa: SIM110
        if skills.get(skill, 0) < level:
            return False
    return True


class WaitingGroup:
    """Waiting contacts of one channel with the same requirements, best first.

    Contacts of several queues share a group when they need the same skills: an agent who
    qualifies for the group needs to look only at its head.
    """

    __slots__ = ("channel", "entries", "requirements")

    def __init__(self, channel: Channel, requirements: Requirements) -> None:
        self.channel = channel
        self.requirements = requirements
        self.entries: list[Entry] = []

    def __repr__(self) -> str:
        return f"WaitingGroup({self.channel.value}, {self.requirements}, {len(self.entries)})"


class Session:
    """One contact held by one agent: reserved, busy, then wrap-up."""

    __slots__ = (
        "agent",
        "answered_at",
        "channel",
        "contact",
        "queue",
        "started_at",
        "state",
        "version",
    )

    def __init__(self, agent: AgentRecord, contact: ContactRecord, now: float) -> None:
        self.agent = agent
        self.contact = contact
        self.queue = contact.queue  # the queue it was offered from (wrap-up, handle time)
        self.channel = contact.channel
        self.state = SessionState.RESERVED
        self.started_at = now
        self.answered_at: float | None = None
        self.version = 0  # bumped on each transition; timers carry the version they expect

    def move(self, new: SessionState) -> None:
        """Change state if the session state machine allows it."""
        if new not in SESSION_TRANSITIONS[self.state]:
            raise InvalidAgentTransition(
                f"agent {self.agent.id}: contact {self.contact.id} cannot go from "
                f"{self.state.value} to {new.value}",
                agent_id=self.agent.id,
                contact_id=self.contact.id,
                old=self.state.value,
                new=new.value,
            )
        self.state = new
        self.version += 1


class AgentRecord:
    """An agent as the dispatcher tracks them."""

    __slots__ = (
        "answered",
        "available",
        "capacity",
        "config",
        "elig_cache",
        "elig_groups",
        "elig_version",
        "id",
        "idle_since",
        "load",
        "logged_in_at",
        "misses",
        "ordinal",
        "pause_reason",
        "presence",
        "sessions",
        "skills",
        "state",
        "state_since",
        "work_since",
        "work_time",
        "working",
    )

    def __init__(self, config: AgentConfig, ordinal: int, now: float) -> None:
        self.id = config.id
        self.ordinal = ordinal  # fixed at creation: the last tie-breaker everywhere
        self.config = config
        self.skills: dict[str, int] = dict(config.skills)
        self.capacity: dict[Channel, int] = dict(config.capacity)
        self.presence = Presence.LOGGED_OUT
        self.pause_reason: str | None = None
        self.load: dict[Channel, int] = dict.fromkeys(CHANNELS, 0)
        self.sessions: dict[str, Session] = {}
        self.idle_since: dict[Channel, float] = dict.fromkeys(CHANNELS, now)
        self.available: set[Channel] = set()
        self.answered = 0
        self.misses = 0
        self.logged_in_at = now
        self.work_time = 0.0
        self.work_since = now
        self.working = 0  # sessions busy or in wrap-up
        # Waiting groups this agent qualifies for, per channel, valid for one group version.
        self.elig_groups: dict[Channel, list[WaitingGroup]] = {}
        self.elig_version: dict[Channel, int] = {}
        self.elig_cache: dict[WaitingGroup, bool] = {}
        self.state = AgentState.LOGGED_OUT
        self.state_since = now

    def move_presence(self, new: Presence) -> None:
        """Change presence if the presence state machine allows it."""
        if new not in PRESENCE_TRANSITIONS[self.presence]:
            raise InvalidAgentTransition(
                f"agent {self.id}: cannot go from {self.presence.value} to {new.value}",
                agent_id=self.id,
                old=self.presence.value,
                new=new.value,
            )
        self.presence = new

    def derived_state(self) -> AgentState:
        """The one state the monitor shows."""
        if self.presence is Presence.LOGGED_OUT:
            return AgentState.LOGGED_OUT
        best = None
        for session in self.sessions.values():
            st = session.state
            if st is SessionState.RESERVED:
                return AgentState.RESERVED
            if st is SessionState.BUSY:
                best = AgentState.BUSY
            elif best is None:
                best = AgentState.WRAP_UP
        if best is not None:
            return best
        return AgentState.PAUSED if self.presence is Presence.PAUSED else AgentState.READY

    def occupancy(self, now: float) -> float:
        """Share of the time since login spent busy or in wrap-up."""
        total = now - self.logged_in_at
        if total <= 0:
            return 0.0
        work = self.work_time + (now - self.work_since if self.working else 0.0)
        return work / total

    def __repr__(self) -> str:
        return f"AgentRecord({self.id!r}, {self.presence.value}, load={self.load})"


class ContactRecord:
    """A contact inside the ACD."""

    __slots__ = (
        "arrived_at",
        "callback",
        "channel",
        "customer",
        "enqueued_at",
        "entry",
        "excluded",
        "extra_skills",
        "group",
        "id",
        "moves",
        "offers",
        "own_priority",
        "priority",
        "queue",
        "requirements",
        "rule_index",
        "seq",
        "session",
        "state",
        "version",
    )

    def __init__(
        self,
        contact_id: str,
        queue: QueueRecord,
        own_priority: int,
        extra_skills: dict[str, int],
        customer: object,
        now: float,
        seq: int,
    ) -> None:
        self.id = contact_id
        self.queue = queue
        self.channel = queue.config.channel
        self.own_priority = own_priority
        self.extra_skills = extra_skills
        self.customer = customer
        self.arrived_at = now
        self.enqueued_at = now
        self.seq = seq
        self.state = ContactState.QUEUED
        self.callback = False
        self.rule_index = -1  # -1: the queue's base requirements
        self.requirements: Requirements = ()
        self.priority = 0
        self.entry: Entry | None = None  # set while waiting in a group
        self.group: WaitingGroup | None = None
        self.offers: dict[AgentRecord, Session] = {}  # ringing agents
        self.session: Session | None = None  # the connected agent's session
        self.excluded: dict[AgentRecord, float] | None = None  # missed-by agent -> until
        self.moves = 0
        self.version = 0  # bumped on each state change; timers carry the version they expect

    def move(self, new: ContactState) -> None:
        """Change state if the contact state machine allows it."""
        if new not in CONTACT_TRANSITIONS[self.state]:
            raise InvalidContactTransition(
                f"contact {self.id}: cannot go from {self.state.value} to {new.value}",
                contact_id=self.id,
                old=self.state.value,
                new=new.value,
            )
        self.state = new
        self.version += 1

    @property
    def waiting(self) -> bool:
        """Queued on or off the line."""
        return self.state is ContactState.QUEUED or self.state is ContactState.CALLBACK

    def __repr__(self) -> str:
        return f"ContactRecord({self.id!r}, {self.queue.name}, {self.state.value})"


class QueueRecord:
    """A queue's run-time state: its waiting list in order, turn memory, figures."""

    __slots__ = (
        "abandoned",
        "aht",
        "answered",
        "answered_within",
        "config",
        "dynamic_rules",
        "entries",
        "handle_count",
        "handle_total",
        "name",
        "offered",
        "on_line",
        "open",
        "overflowed",
        "periodic_pending",
        "rr_last",
        "short_abandoned",
        "time_comparisons",
        "transferred",
        "wait_total",
    )

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.name = config.name
        self.entries: list[Entry] = []  # every waiting contact of the queue, best first
        self.on_line = 0  # waiting on the line (callbacks excluded): what max_length limits
        self.rr_last = -1  # ordinal of the agent chosen last (round robin with memory)
        self.aht = config.expected_handle_time
        self.open = True
        self.dynamic_rules = any(r.when.is_dynamic for r in config.rules)
        self.periodic_pending = False
        self.time_comparisons: tuple[Comparison, ...] = tuple(
            c for r in config.rules for c in r.when.comparisons if c.metric in TIME_METRICS
        )
        self.offered = 0
        self.answered = 0
        self.answered_within = 0
        self.abandoned = 0
        self.short_abandoned = 0
        self.overflowed = 0
        self.transferred = 0
        self.wait_total = 0.0
        self.handle_total = 0.0
        self.handle_count = 0

    def next_rule_change(self, contact: ContactRecord, now: float) -> float | None:
        """The first instant after `now` when a time condition of this queue's rules flips."""
        best: float | None = None
        for comparison in self.time_comparisons:
            base = contact.enqueued_at if comparison.metric is Metric.WAIT else contact.arrived_at
            at = comparison.flips_at(base)
            if at > now and (best is None or at < best):
                best = at
        return best

    def __repr__(self) -> str:
        return f"QueueRecord({self.name!r}, waiting={len(self.entries)})"
