"""Events about contacts, published on the bus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from commserver.contacts.model import ContactState, Outcome
from commserver.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactStateChanged(Event):
    """A contact moved from one state to another."""

    kind: ClassVar[str] = "contact-state-changed"
    contact_id: str
    old: ContactState
    new: ContactState
    queue: str | None = None
    agent_id: str | None = None
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecordStored(Event):
    """A finished contact's record is durable in storage."""

    kind: ClassVar[str] = "call-record-stored"
    contact_id: str
    queue: str | None
    outcome: str
