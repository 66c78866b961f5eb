"""Agents as the server shows them: identity, phone, and a mirror of the ACD's view.

The ACD (`acd.Dispatcher`) owns every agent's state and enforces its state machine; the call
controller refreshes these mirrors after each ACD input and publishes `AgentStateChanged`
when one changes, so the web front and reports read plain objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from acd import AgentConfig, AgentState
from commserver.config import AgentSettings
from commserver.events import Event
from commserver.telephony.base import AgentEndpoint

__all__ = ["Agent", "AgentState", "AgentStateChanged"]


@dataclass(eq=False)
class Agent:
    """One agent: who they are, where their phone is, and their state as the ACD last said."""

    id: str
    name: str
    endpoint: AgentEndpoint
    skills: dict[str, int]
    state: AgentState
    state_since: datetime
    pause_reason: str = ""
    calls_taken: int = 0
    contact_id: str | None = None

    @classmethod
    def from_settings(cls, settings: AgentSettings, acd: AgentConfig, now: datetime) -> Agent:
        """A configured agent, logged out until the ACD says otherwise."""
        endpoint = AgentEndpoint(
            agent_id=settings.id,
            extension=settings.extension or None,
            external_number=settings.external_number or None,
        )
        return cls(
            id=settings.id,
            name=settings.name or acd.name or settings.id,
            endpoint=endpoint,
            skills=dict(acd.skills),
            state=AgentState.LOGGED_OUT,
            state_since=now,
        )

    def has_skills(self, required: dict[str, int]) -> bool:
        """Whether this agent meets every required skill at its minimum level."""
        return all(self.skills.get(skill, 0) >= level for skill, level in required.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(Event):
    """An agent's state changed (login, ready, ringing, talking, wrap-up, pause, logout)."""

    kind: ClassVar[str] = "agent-state-changed"
    agent_id: str
    old: AgentState
    new: AgentState
    reason: str = ""
