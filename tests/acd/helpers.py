"""Small helpers shared by the ACD tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from acd import AgentConfig, Assign, ContactRequest, Decision, Dispatcher

D = TypeVar("D")


def only(decisions: Iterable[Decision], kind: type[D]) -> list[D]:
    """The decisions of one kind, in order."""
    return [d for d in decisions if isinstance(d, kind)]


def assigned(decisions: Iterable[Decision]) -> list[tuple[str, str]]:
    """(contact, agent) of every Assign, in order."""
    return [(d.contact_id, d.agent_id) for d in only(decisions, Assign)]


def agent(agent_id: str, **skills: int) -> AgentConfig:
    """A voice agent with these skills."""
    return AgentConfig(agent_id, skills=skills)


def arrive(
    dispatcher: Dispatcher,
    contact_id: str,
    now: float,
    queue: str = "support",
    *,
    priority: int = 0,
    skills: Mapping[str, int] | None = None,
    callback: bool = False,
) -> list[Decision]:
    """A contact arrives."""
    return dispatcher.contact_arrived(
        ContactRequest(
            contact_id, queue, priority=priority, skills=skills or {}, callback=callback
        ),
        now,
    )
