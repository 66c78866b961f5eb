"""Read-only snapshots the dispatcher answers queries with (monitor, API, announcements)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from acd.model import Channel, ServiceLevelFormula
from acd.states import AgentState, ContactState, Presence


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent's state and figures at one instant."""

    agent_id: str
    state: AgentState
    state_since: float
    presence: Presence
    pause_reason: str | None
    skills: Mapping[str, int]
    capacity: Mapping[Channel, int]
    load: Mapping[Channel, int]
    contacts: tuple[str, ...]
    idle_since: Mapping[Channel, float]
    answered: int
    consecutive_misses: int
    occupancy: float


@dataclass(frozen=True, slots=True)
class ContactView:
    """A contact inside the ACD at one instant; `position`/`estimated_wait` only while waiting."""

    contact_id: str
    queue: str
    state: ContactState
    callback: bool
    priority: int
    requirements: tuple[tuple[str, int], ...]
    rule: str | None
    arrived_at: float
    entered_queue_at: float
    position: int | None
    estimated_wait: float | None
    agents: tuple[str, ...]
    customer: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """Live figures of a queue since start (or the last `reset_figures`).

    `offered` counts contacts that entered the queue and finished there (answered, abandoned,
    overflowed out or transferred away); `service_level` follows the configured formula.
    """

    queue: str
    open: bool
    waiting: int
    callbacks: int
    longest_wait: float
    staffed: int
    free: int
    offered: int
    answered: int
    answered_within: int
    abandoned: int
    short_abandoned: int
    overflowed: int
    transferred: int
    service_level: float | None
    service_level_formula: ServiceLevelFormula
    asa: float | None
    aht: float
