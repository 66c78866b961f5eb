"""The durable record of a finished contact (one row per contact), stored through storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from commserver.contacts.model import Contact

MODEL_FILE = Path(__file__).with_name("model.xml")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What reports and the call list read about one contact once it has left the line."""

    id: int | None
    contact_id: str
    channel: str
    caller: str
    dialed: str
    customer_id: str | None
    queue: str | None
    agent_id: str | None
    outcome: str
    hangup_cause: str
    arrived_at: datetime
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime
    wait_seconds: float
    talk_seconds: float
    #: What the agent noted in wrap-up (set after the record is written; None until then).
    disposition: str | None = None
    #: "inbound" or "outbound" (an agent's click-to-dial); rows from before it existed: None.
    direction: str | None = "inbound"

    @classmethod
    def from_contact(cls, contact: Contact, *, hangup_cause: str, ended_at: datetime) -> CallRecord:
        """The record of a contact whose call has just ended."""
        if contact.outcome is None:
            raise ValueError(f"contact {contact.id} has no outcome yet")
        waited_until = contact.answered_at or ended_at
        wait = (waited_until - contact.queued_at).total_seconds() if contact.queued_at else 0.0
        talk = (ended_at - contact.answered_at).total_seconds() if contact.answered_at else 0.0
        return cls(
            id=None,
            contact_id=contact.id,
            channel=contact.channel.value,
            caller=contact.caller,
            dialed=contact.dialed,
            customer_id=contact.customer_id,
            queue=contact.queue,
            agent_id=contact.agent_id,
            outcome=contact.outcome.value,
            hangup_cause=hangup_cause,
            arrived_at=contact.arrived_at,
            queued_at=contact.queued_at,
            answered_at=contact.answered_at,
            ended_at=ended_at,
            wait_seconds=max(wait, 0.0),
            talk_seconds=max(talk, 0.0),
            direction=contact.direction.value,
        )
