"""The ACD's configuration and inputs as plain frozen dataclasses, and its enumerations.

The server builds these from its TOML (see `acd.config` and docs/acd.md); the simulator builds
them from a scenario. Skill maps are copied into read-only mappings so a config object can be
shared without anyone changing it underneath the dispatcher.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

from acd.conditions import ALWAYS, Condition
from acd.errors import AcdError, InvalidAcdConfig, InvalidContactRequest


class Channel(StrEnum):
    """The medium of a contact; an agent has a capacity per channel."""

    VOICE = "voice"
    EMAIL = "email"
    WEB = "web"


CHANNELS: tuple[Channel, ...] = tuple(Channel)
"""Every channel, as a tuple: iterating an Enum class is slow on hot paths."""


class Strategy(StrEnum):
    """How a queue picks among the free agents able to take a contact."""

    LONGEST_IDLE = "longest-idle"
    FEWEST_CALLS = "fewest-calls"
    LEAST_OCCUPIED = "least-occupied"
    BEST_SKILL = "best-skill"
    ROUND_ROBIN = "round-robin"
    RING_ALL = "ring-all"
    RANDOM = "random"


class ActionKind(StrEnum):
    """What happens to a contact that hits a limit."""

    QUEUE = "queue"  # move to the queue named by `target`
    VOICEMAIL = "voicemail"  # leave the ACD for the voicemail box `target`
    CALLBACK = "callback"  # stay in the queue off the line, keeping the place
    ANNOUNCEMENT = "announcement"  # play prompt `target`, then leave the ACD
    HANGUP = "hangup"  # leave the ACD


class OverflowReason(StrEnum):
    """Which limit a contact hit."""

    MAX_WAIT = "max-wait"
    QUEUE_FULL = "queue-full"
    NO_AGENTS = "no-agents"
    CLOSED = "closed"


class ServiceLevelFormula(StrEnum):
    """How the service level is computed (see docs/metrics.md)."""

    OFFERED = "offered"  # answered within T / offered
    OFFERED_EXCLUDING_SHORT_ABANDONS = "offered-excluding-short-abandons"
    ANSWERED = "answered"  # answered within T / answered


Skills = Mapping[str, int]
"""Skill name -> level (agents) or minimum level (requirements), 1-100."""


def _no_skills() -> Mapping[str, int]:
    return MappingProxyType({})


def frozen_skills(
    skills: Mapping[str, int], what: str, error: type[AcdError] = InvalidAcdConfig
) -> Mapping[str, int]:
    """A read-only copy of a skill map, every level checked to be an int in 1-100."""
    for name, level in skills.items():
        if not isinstance(name, str) or not name:
            raise error(f"{what}: skill names must be non-empty strings", where=what)
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 100:
            raise error(
                f"{what}: skill {name!r} has level {level!r}, outside 1-100",
                where=what,
                skill=name,
            )
    return MappingProxyType(dict(skills))


E = TypeVar("E", bound=StrEnum)


def _coerce(enum: type[E], value: object, what: str) -> E:
    """Accept an enum member or its value (configs built by hand pass plain strings)."""
    try:
        return enum(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidAcdConfig(
            f"{what}: {value!r} is not one of {allowed}", where=what, value=str(value)
        ) from None


@dataclass(frozen=True, slots=True)
class OverflowAction:
    """An action taken when a limit is hit; `target` is a queue, mailbox or prompt name."""

    action: ActionKind
    target: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", _coerce(ActionKind, self.action, "action"))
        needs_target = self.action in (ActionKind.QUEUE, ActionKind.ANNOUNCEMENT)
        if needs_target and not self.target:
            raise InvalidAcdConfig(
                f"overflow action {self.action.value!r} needs a target", action=self.action.value
            )


@dataclass(frozen=True, slots=True)
class Rule:
    """An escalation step: while `when` holds (and no earlier rule does), these changes apply.

    `skills` replaces the queue's required skills; `add_skills` then sets levels (raising or
    lowering them); `drop_skills` removes requirements (also the contact's own). A rule with
    `move_to` sends the contact to that queue as soon as it applies.
    """

    name: str
    when: Condition = ALWAYS
    skills: Mapping[str, int] | None = None
    add_skills: Mapping[str, int] = field(default_factory=_no_skills)
    drop_skills: frozenset[str] = frozenset()
    priority_delta: int = 0
    move_to: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidAcdConfig("a rule needs a name")
        where = f"rule {self.name!r}"
        if self.skills is not None:
            object.__setattr__(self, "skills", frozen_skills(self.skills, where))
        object.__setattr__(self, "add_skills", frozen_skills(self.add_skills, where))
        object.__setattr__(self, "drop_skills", frozenset(self.drop_skills))


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue: what its contacts need, how agents are picked, its timers and limits."""

    name: str
    skills: Mapping[str, int] = field(default_factory=_no_skills)
    priority: int = 0
    strategy: Strategy = Strategy.LONGEST_IDLE
    channel: Channel = Channel.VOICE
    service_level_seconds: float = 20.0
    wrap_up: float = 0.0
    ring_timeout: float = 15.0
    expected_handle_time: float = 180.0
    rules: tuple[Rule, ...] = ()
    max_wait: float | None = None
    on_max_wait: OverflowAction | None = None
    max_length: int | None = None
    on_full: OverflowAction | None = None
    on_no_agents: OverflowAction | None = None
    on_closed: OverflowAction | None = None

    def __post_init__(self) -> None:
        where = f"queue {self.name!r}"
        if not self.name:
            raise InvalidAcdConfig("a queue needs a name")
        object.__setattr__(self, "skills", frozen_skills(self.skills, where))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "strategy", _coerce(Strategy, self.strategy, where))
        object.__setattr__(self, "channel", _coerce(Channel, self.channel, where))
        for key in ("service_level_seconds", "wrap_up"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise InvalidAcdConfig(f"{where}: {key} must be >= 0", queue=self.name, key=key)
        for key in ("ring_timeout", "expected_handle_time"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise InvalidAcdConfig(f"{where}: {key} must be > 0", queue=self.name, key=key)
        if self.max_wait is not None and not self.max_wait > 0:
            raise InvalidAcdConfig(f"{where}: max_wait must be > 0", queue=self.name)
        if self.max_length is not None and self.max_length < 0:
            raise InvalidAcdConfig(f"{where}: max_length must be >= 0", queue=self.name)
        if (self.max_wait is None) != (self.on_max_wait is None):
            raise InvalidAcdConfig(
                f"{where}: max_wait and on_max_wait go together", queue=self.name
            )
        if (self.max_length is None) != (self.on_full is None):
            raise InvalidAcdConfig(f"{where}: max_length and on_full go together", queue=self.name)
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise InvalidAcdConfig(f"{where}: rule names must be unique", queue=self.name)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """An agent: skills with levels and how many contacts per channel they handle at once."""

    id: str
    name: str = ""
    skills: Mapping[str, int] = field(default_factory=_no_skills)
    capacity: Mapping[Channel, int] = field(
        default_factory=lambda: MappingProxyType({Channel.VOICE: 1})
    )

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidAcdConfig("an agent needs an id")
        where = f"agent {self.id!r}"
        object.__setattr__(self, "skills", frozen_skills(self.skills, where))
        capacity: dict[Channel, int] = {}
        for channel, count in self.capacity.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InvalidAcdConfig(
                    f"{where}: capacity for {channel} must be an int >= 0", agent=self.id
                )
            capacity[Channel(channel)] = count
        object.__setattr__(self, "capacity", MappingProxyType(capacity))


@dataclass(frozen=True, slots=True)
class AcdSettings:
    """Dispatcher-wide settings (the `[acd]` table)."""

    auto_pause_after_misses: int = 3  # consecutive ring-no-answers before auto-pause; 0: never
    ring_retry: float = 5.0  # an agent who missed a contact is not offered it again this soon
    rule_interval: float = 1.0  # how often rules on ewt/position/queue_length are re-evaluated
    audit_interval: float | None = 60.0  # self-check of the invariants; None: off
    max_handle_time: float | None = 4 * 3600.0  # a busy contact older than this is stuck
    seed: int = 0  # seeds the `random` strategy
    service_level_formula: ServiceLevelFormula = ServiceLevelFormula.OFFERED
    why_history: int = 10_000  # how many assignment reasons are kept for queries
    handle_time_smoothing: float = 0.05  # weight of the newest handle time in the moving AHT

    def __post_init__(self) -> None:
        formula = _coerce(ServiceLevelFormula, self.service_level_formula, "acd")
        object.__setattr__(self, "service_level_formula", formula)
        if self.auto_pause_after_misses < 0:
            raise InvalidAcdConfig("acd.auto_pause_after_misses must be >= 0")
        if self.ring_retry < 0:
            raise InvalidAcdConfig("acd.ring_retry must be >= 0")
        if not self.rule_interval > 0:
            raise InvalidAcdConfig("acd.rule_interval must be > 0")
        if self.audit_interval is not None and not self.audit_interval > 0:
            raise InvalidAcdConfig("acd.audit_interval must be > 0")
        if self.max_handle_time is not None and not self.max_handle_time > 0:
            raise InvalidAcdConfig("acd.max_handle_time must be > 0")
        if self.why_history < 0:
            raise InvalidAcdConfig("acd.why_history must be >= 0")
        if not 0 < self.handle_time_smoothing <= 1:
            raise InvalidAcdConfig("acd.handle_time_smoothing must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class AcdConfig:
    """Everything the dispatcher is built from; `validate` checks cross-references."""

    queues: tuple[QueueConfig, ...]
    agents: tuple[AgentConfig, ...] = ()
    settings: AcdSettings = field(default_factory=AcdSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "queues", tuple(self.queues))
        object.__setattr__(self, "agents", tuple(self.agents))
        self.validate()

    def validate(self) -> None:
        """Unique names, targets that exist on the same channel, and no move cycles."""
        by_name: dict[str, QueueConfig] = {}
        for q in self.queues:
            if q.name in by_name:
                raise InvalidAcdConfig(f"queue {q.name!r} is defined twice", queue=q.name)
            by_name[q.name] = q
        ids: set[str] = set()
        for a in self.agents:
            if a.id in ids:
                raise InvalidAcdConfig(f"agent {a.id!r} is defined twice", agent=a.id)
            ids.add(a.id)
        moves: dict[str, set[str]] = {name: set() for name in by_name}
        for q in self.queues:
            targets: list[tuple[str, str]] = [
                (f"rule {r.name!r}", r.move_to) for r in q.rules if r.move_to is not None
            ]
            for key in ("on_max_wait", "on_full", "on_no_agents", "on_closed"):
                action: OverflowAction | None = getattr(q, key)
                if action is not None and action.action is ActionKind.QUEUE:
                    assert action.target is not None  # checked by OverflowAction
                    targets.append((key, action.target))
            for what, target in targets:
                other = by_name.get(target)
                if other is None:
                    raise InvalidAcdConfig(
                        f"queue {q.name!r}: {what} names unknown queue {target!r}",
                        queue=q.name,
                        target=target,
                    )
                if other.channel is not q.channel:
                    raise InvalidAcdConfig(
                        f"queue {q.name!r}: {what} moves contacts to {target!r}, "
                        f"a {other.channel.value} queue",
                        queue=q.name,
                        target=target,
                    )
                if target == q.name:
                    raise InvalidAcdConfig(
                        f"queue {q.name!r}: {what} moves contacts to the same queue",
                        queue=q.name,
                    )
                moves[q.name].add(target)
        # A contact may only ever move "downstream": a cycle would bounce it forever.
        cycle = _find_cycle(moves)
        if cycle:
            raise InvalidAcdConfig(
                "queues move contacts in a cycle: " + " -> ".join(cycle), cycle=cycle
            )


def _find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    """One cycle of the directed graph as a path (first node repeated), or []."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if colour[nxt] == white and (found := visit(nxt)):
                return found
        stack.pop()
        colour[node] = black
        return []

    for start in sorted(graph):
        if colour[start] == white and (found := visit(start)):
            return found
    return []


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """A contact entering the ACD: its queue, priority and own required skills.

    `skills` adds to the queue's requirements (e.g. a language the IVR detected); `customer`
    is carried for the server (screen pop) and never used in a decision. `callback=True`
    enters a callback request (the customer is not on the line).
    """

    contact_id: str
    queue: str
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=_no_skills)
    customer: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    callback: bool = False

    def __post_init__(self) -> None:
        if not self.contact_id:
            raise InvalidContactRequest("a contact needs an id")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidContactRequest(
                f"contact {self.contact_id}: priority must be an int", contact_id=self.contact_id
            )
        skills = frozen_skills(self.skills, f"contact {self.contact_id}", InvalidContactRequest)
        object.__setattr__(self, "skills", skills)
