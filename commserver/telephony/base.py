"""The one telephony-backend interface that `sim`, `sip` and `asterisk` implement.

The server drives a backend with commands (answer, play, collect digits, ring an agent, bridge,
hang up) and a backend reports what the network did through a `TelephonyHandler` with typed
events. A call is always named by the backend's `call_id` (SIP Call-ID of the caller leg,
Asterisk channel uniqueid, or a simulator id); agent legs are named by the id `ring_agent` returns.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Protocol


class HangupCause(enum.Enum):
    """Why a leg ended, mapped from SIP status codes or Asterisk hangup causes."""

    NORMAL = "normal"
    CALLER_HANGUP = "caller-hangup"
    AGENT_HANGUP = "agent-hangup"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"
    SHUTDOWN = "shutdown"
    FAILED = "failed"


class RingOutcome(enum.Enum):
    """The result of ringing an agent's phone."""

    ANSWERED = "answered"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    CALLER_GONE = "caller-gone"


class BackendCapability(enum.Enum):
    """Optional features; the monitor offers only what the running backend supports."""

    RECORD = "record"
    TRANSFER = "transfer"
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"
    #: Click-to-dial: ring an agent's phone, then call a customer and join them (`DialOutBackend`).
    DIAL_OUT = "dial-out"
    #: Agents' phones may be external numbers (home, mobile) reached through the trunk.
    EXTERNAL_PHONES = "external-phones"


class EndpointState(enum.Enum):
    """What an agent's phone is doing, as the PBX sees it (Asterisk device state)."""

    AVAILABLE = "available"
    IN_USE = "in-use"
    RINGING = "ringing"
    BUSY = "busy"
    ON_HOLD = "on-hold"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


class SpyMode(enum.Enum):
    """How a supervisor joins an agent's call: hear both, speak to the agent only, or both."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


@dataclass(frozen=True, slots=True)
class Prompt:
    """Something to play: a WAV file, or text for text-to-speech (rendered once and cached)."""

    text: str = ""
    wav: Path | None = None


@dataclass(frozen=True, slots=True)
class AgentEndpoint:
    """Where an agent's phone is: a registered extension or an external number via the trunk."""

    agent_id: str
    extension: str | None = None
    external_number: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelephonyEvent:
    """Base of every event a backend reports."""

    kind: ClassVar[str] = "telephony"
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOffered(TelephonyEvent):
    """A new inbound call wants service (SIP INVITE, AsyncAGI start, simulated arrival)."""

    kind: ClassVar[str] = "call-offered"
    call_id: str
    caller: str
    dialed: str
    caller_name: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitReceived(TelephonyEvent):
    """A DTMF digit from the caller (RFC 4733, SIP INFO or Asterisk DTMFEnd)."""

    kind: ClassVar[str] = "digit-received"
    call_id: str
    digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(TelephonyEvent):
    """A leg (the caller's or an agent's) is gone."""

    kind: ClassVar[str] = "call-ended"
    call_id: str
    cause: HangupCause


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointRegistration(TelephonyEvent):
    """An agent's phone registered or its registration ended or expired."""

    kind: ClassVar[str] = "endpoint-registration"
    extension: str
    registered: bool
    contact: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAdopted(TelephonyEvent):
    """A call that was already up when the backend (re)connected and that it now controls.

    Reported once per call after a server restart (Asterisk: found by `CoreShowChannels`
    in Caruso's dialplan context), never again on later reconnects. `answered` says the
    caller was answered before; `agent_leg_id`/`agent_id` are set when the caller is already
    connected to an agent (talking), and then `CallEnded` for either leg follows as usual.
    """

    kind: ClassVar[str] = "call-adopted"
    call_id: str
    caller: str
    dialed: str
    caller_name: str = ""
    answered: bool = True
    agent_leg_id: str | None = None
    agent_id: str | None = None
    up_since: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(TelephonyEvent):
    """The caller was transferred away (blind or attended); Caruso no longer controls the call.

    `CallEnded` for the caller's leg follows at once with cause NORMAL.
    """

    kind: ClassVar[str] = "call-transferred"
    call_id: str
    destination: str
    attended: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointStateChanged(TelephonyEvent):
    """An agent's phone changed state (in use by another call, ringing, unavailable...)."""

    kind: ClassVar[str] = "endpoint-state"
    extension: str
    state: EndpointState


class TelephonyError(Exception):
    """A command could not be carried out (the call is gone, the device is unreachable...)."""

    code: ClassVar[str] = "telephony-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details: dict[str, object] = dict(details)


class CallGone(TelephonyError):
    """The call the command was for has already ended."""

    code: ClassVar[str] = "call-gone"


class TelephonyHandler(Protocol):
    """What the server implements to hear from a backend. Must not block; may schedule work."""

    def on_telephony_event(self, event: TelephonyEvent) -> None:
        """Take one event from the backend, in the order the network produced them."""


class TelephonyBackend(Protocol):
    """Commands the server gives a backend. Every method is per call and safe to cancel."""

    name: str
    capabilities: frozenset[BackendCapability]

    async def open(self, handler: TelephonyHandler) -> None:
        """Open sockets/connections; return once the backend accepts calls."""

    async def stop_accepting(self) -> None:
        """Refuse new calls (SIP 503, dialplan fallback) while live calls drain."""

    async def close(self) -> None:
        """Hang up whatever is left and release every resource."""

    async def answer(self, call_id: str) -> None:
        """Answer the caller's leg (200 OK / Answer) so media can flow."""

    async def play(self, call_id: str, prompt: Prompt) -> None:
        """Play a prompt to the caller; returns when it finished or the call ended."""

    async def collect_digits(
        self, call_id: str, *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str:
        """Collect up to `max_digits` DTMF digits; returns what was keyed ('' on timeout)."""

    async def start_music(self, call_id: str) -> None:
        """Music on hold for a queued caller until `stop_music` or a bridge."""

    async def stop_music(self, call_id: str) -> None:
        """Stop music on hold."""

    async def ring_agent(
        self, call_id: str, agent: AgentEndpoint, *, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Ring an agent for this call; on ANSWERED also returns the agent leg's id."""

    async def bridge(self, call_id: str, agent_leg_id: str) -> None:
        """Connect the caller's leg with the answered agent leg (media relay / Bridge)."""

    async def record(self, call_id: str, path: Path, *, max_seconds: float) -> float:
        """Record the caller to a WAV until silence, '#', hang-up or the limit; returns seconds."""

    async def hangup(self, call_id: str, cause: HangupCause = HangupCause.NORMAL) -> None:
        """End a leg (caller or agent). Hanging up a leg that is gone is not an error."""


class SupervisionBackend(Protocol):
    """Optional commands of backends that list RECORD, TRANSFER, LISTEN, WHISPER or BARGE.

    Check `capabilities` before calling; a backend raises `TelephonyError` for what it cannot
    do (a call that is not connected to an agent, a transfer the PBX refused...).
    """

    async def start_recording(self, call_id: str, path: Path) -> None:
        """Record the whole conversation of a call (both parties) to `path` (WAV)."""

    async def stop_recording(self, call_id: str) -> None:
        """Stop recording a call (nothing happens when none runs)."""

    async def blind_transfer(self, call_id: str, destination: str) -> None:
        """Send the caller to `destination` (an extension or number); Caruso lets go of the call."""

    async def attended_transfer(self, call_id: str, destination: str) -> None:
        """The connected agent consults `destination` first; the caller moves on their hang-up."""

    async def spy(self, call_id: str, supervisor: AgentEndpoint, mode: SpyMode) -> str:
        """Ring a supervisor's phone into the call's agent leg; returns the spy leg's id."""


class DialOutBackend(Protocol):
    """Optional click-to-dial of backends that list DIAL_OUT (Wazo/VICIdial style).

    First `call_agent` rings the agent's own phone; once they answer, `dial_customer` calls the
    customer from that leg (given up when the agent hangs up first: `CALLER_GONE`), and the
    ordinary `bridge(customer_leg, agent_leg)` joins the two. Both legs then end with
    `CallEnded` like any other. Asterisk does each step with an Originate.
    """

    async def call_agent(
        self, agent: AgentEndpoint, number: str, *, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Ring the agent's phone for a call to `number`; on ANSWERED also the agent leg's id."""

    async def dial_customer(
        self, agent_leg_id: str, number: str, *, caller_id: str, timeout: float
    ) -> tuple[RingOutcome, str | None]:
        """Call `number` for the answered agent leg; on ANSWERED also the customer leg's id."""
