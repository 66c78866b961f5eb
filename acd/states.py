"""The state machines of the ACD, each with its explicit table of allowed transitions.

An agent's *presence* (logged out, ready, paused) is what they asked for; each contact they
hold has a *session* (reserved while ringing, busy, wrap-up). The single `AgentState` the
monitor shows is derived from both: ringing beats talking beats wrap-up beats paused.
"""

from __future__ import annotations

from enum import StrEnum


class Presence(StrEnum):
    """What the agent asked for."""

    LOGGED_OUT = "logged-out"
    READY = "ready"
    PAUSED = "paused"


class SessionState(StrEnum):
    """One contact held by one agent."""

    RESERVED = "reserved"  # the agent's phone rings
    BUSY = "busy"  # connected with the customer
    WRAP_UP = "wrap-up"  # after the contact, timed per queue
    FINISHED = "finished"  # the agent is free of it


class ContactState(StrEnum):
    """A contact inside the ACD."""

    QUEUED = "queued"  # waiting on the line
    CALLBACK = "callback"  # waiting off the line, keeping its place
    OFFERED = "offered"  # ringing one agent (or several for ring-all)
    CONNECTED = "connected"  # talking with an agent
    LEFT = "left"  # ended, abandoned or overflowed out: the ACD forgets it


class AgentState(StrEnum):
    """The one state the monitor shows for an agent."""

    LOGGED_OUT = "logged-out"
    READY = "ready"
    RESERVED = "reserved"
    BUSY = "busy"
    WRAP_UP = "wrap-up"
    PAUSED = "paused"


_P = Presence
PRESENCE_TRANSITIONS: dict[Presence, frozenset[Presence]] = {
    _P.LOGGED_OUT: frozenset({_P.READY, _P.PAUSED}),
    _P.READY: frozenset({_P.PAUSED, _P.LOGGED_OUT}),
    # Paused -> paused changes the reason code.
    _P.PAUSED: frozenset({_P.READY, _P.PAUSED, _P.LOGGED_OUT}),
}

_S = SessionState
SESSION_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    # Reserved -> finished: missed, withdrawn, or the caller hung up while it rang.
    _S.RESERVED: frozenset({_S.BUSY, _S.FINISHED}),
    # Busy -> finished: the queue has no wrap-up time.
    _S.BUSY: frozenset({_S.WRAP_UP, _S.FINISHED}),
    _S.WRAP_UP: frozenset({_S.FINISHED}),
    _S.FINISHED: frozenset(),
}

_C = ContactState
CONTACT_TRANSITIONS: dict[ContactState, frozenset[ContactState]] = {
    _C.QUEUED: frozenset({_C.OFFERED, _C.CALLBACK, _C.LEFT}),
    _C.CALLBACK: frozenset({_C.OFFERED, _C.LEFT}),
    # A failed offer puts the contact back where it was, on or off the line.
    _C.OFFERED: frozenset({_C.CONNECTED, _C.QUEUED, _C.CALLBACK, _C.LEFT}),
    # Connected -> queued: transferred to a queue.
    _C.CONNECTED: frozenset({_C.QUEUED, _C.LEFT}),
    _C.LEFT: frozenset(),
}
