"""A contact (a call, an e-mail, a web request) and the state machine it moves through."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from commserver.errors import InvalidTransition


class Channel(enum.Enum):
    """How the customer reached us."""

    VOICE = "voice"
    EMAIL = "email"
    WEB = "web"


class Direction(enum.Enum):
    """Who started the contact: the customer (inbound) or an agent dialling out."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ContactState(enum.Enum):
    """Where a contact is in its life. `ENDED` and `ABANDONED` are final."""

    ARRIVING = "arriving"
    IVR = "ivr"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    WRAP_UP = "wrap-up"
    VOICEMAIL = "voicemail"
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"
    ENDED = "ended"


class Outcome(enum.Enum):
    """How a contact ended, as recorded in its call record and reported."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    VOICEMAIL = "voicemail"
    TRANSFERRED = "transferred"
    OVERFLOWED = "overflowed"
    SELF_SERVED = "self-served"
    REJECTED = "rejected"
    FAILED = "failed"
    #: Outbound: the customer did not answer, or their line was busy.
    NO_ANSWER = "no-answer"
    BUSY = "busy"


_S = ContactState
ALLOWED: dict[ContactState, frozenset[ContactState]] = {
    # Arriving -> offered: an agent's outbound call (no IVR, no queue).
    _S.ARRIVING: frozenset({_S.IVR, _S.QUEUED, _S.OFFERED, _S.ABANDONED, _S.ENDED}),
    _S.IVR: frozenset({_S.QUEUED, _S.VOICEMAIL, _S.TRANSFERRED, _S.ABANDONED, _S.ENDED}),
    _S.QUEUED: frozenset({_S.OFFERED, _S.VOICEMAIL, _S.TRANSFERRED, _S.ABANDONED, _S.ENDED}),
    # A missed offer (ring-no-answer) puts the contact back in the queue.
    _S.OFFERED: frozenset({_S.CONNECTED, _S.QUEUED, _S.ABANDONED, _S.ENDED}),
    _S.CONNECTED: frozenset({_S.WRAP_UP, _S.TRANSFERRED, _S.ENDED}),
    _S.WRAP_UP: frozenset({_S.ENDED}),
    _S.VOICEMAIL: frozenset({_S.ENDED, _S.ABANDONED}),
    _S.TRANSFERRED: frozenset({_S.ENDED}),
    _S.ABANDONED: frozenset(),
    _S.ENDED: frozenset(),
}
FINAL = frozenset({_S.ENDED, _S.ABANDONED})


@dataclass(eq=False)
class Contact:
    """One live contact. Only `move_to` changes its state, and it refuses illegal moves."""

    id: str
    channel: Channel
    arrived_at: datetime
    caller: str = ""
    dialed: str = ""
    customer_id: str | None = None
    queue: str | None = None
    required_skills: dict[str, int] = field(default_factory=dict)
    priority: int = 0
    agent_id: str | None = None
    state: ContactState = ContactState.ARRIVING
    outcome: Outcome | None = None
    queued_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    history: list[tuple[ContactState, datetime]] = field(default_factory=list)
    #: Outbound contacts keep the customer's number in `caller` too (screen pop, history).
    direction: Direction = Direction.INBOUND

    def can_move_to(self, new: ContactState) -> bool:
        """Whether the state machine allows going from the current state to `new`."""
        return new in ALLOWED[self.state]

    def move_to(self, new: ContactState, at: datetime) -> ContactState:
        """Change state, stamping the times reports need; returns the previous state."""
        if not self.can_move_to(new):
            raise InvalidTransition(
                f"contact {self.id}: cannot go from {self.state.value} to {new.value}",
                contact_id=self.id,
                old=self.state.value,
                new=new.value,
            )
        old = self.state
        self.state = new
        self.history.append((new, at))
        if new is ContactState.QUEUED and self.queued_at is None:
            self.queued_at = at
        elif new is ContactState.CONNECTED:
            self.answered_at = at
        elif new in FINAL:
            self.ended_at = at
        return old

    @property
    def is_final(self) -> bool:
        """Whether the contact has ended one way or another."""
        return self.state in FINAL
