"""Telephony backends: one interface (`base`), three implementations (sim, sip, asterisk)."""

from commserver.telephony.base import (
    AgentEndpoint,
    BackendCapability,
    CallEnded,
    CallOffered,
    DigitReceived,
    EndpointRegistration,
    HangupCause,
    Prompt,
    RingOutcome,
    TelephonyBackend,
    TelephonyError,
    TelephonyEvent,
    TelephonyHandler,
)

__all__ = [
    "AgentEndpoint",
    "BackendCapability",
    "CallEnded",
    "CallOffered",
    "DigitReceived",
    "EndpointRegistration",
    "HangupCause",
    "Prompt",
    "RingOutcome",
    "TelephonyBackend",
    "TelephonyError",
    "TelephonyEvent",
    "TelephonyHandler",
]
