"""Caruso's embedded SIP/RTP stack: the `sip` telephony backend's protocol layers.

Layers, each usable and testable alone: `message` (model, parser, serializer), `transport`
(UDP and TCP framing), `transaction` (RFC 3261 §17), `registrar` + `auth` (digest REGISTER),
`sdp`, `rtp`/`g711`/`dtmf`/`media` (media), `refer` (REFER, transfers), and `endpoint` (the
controller and handler interface). Nothing here imports other Caruso packages.
"""

from .call import CallDirection, CallState, SipCall
from .endpoint import BaseSipHandler, SipConfig, SipEndpoint, SipHandler
from .errors import (
    CallFailed,
    CallGone,
    InvalidCallState,
    MalformedMessage,
    MediaError,
    NotRegistered,
    SipError,
)
from .events import (
    CallEnded,
    CallOffered,
    DtmfMethod,
    DtmfReceived,
    EndReason,
    HoldChanged,
    RegistrationChanged,
    RegistrationState,
    Replaces,
    TransferRequested,
)
from .refer import Transfer, TransferState
from .rtp import RtpRelay, RtpSession
from .sdp import Codec, Direction
from .transaction import TimerConfig

__all__ = [
    "BaseSipHandler",
    "CallDirection",
    "CallEnded",
    "CallFailed",
    "CallGone",
    "CallOffered",
    "CallState",
    "Codec",
    "Direction",
    "DtmfMethod",
    "DtmfReceived",
    "EndReason",
    "HoldChanged",
    "InvalidCallState",
    "MalformedMessage",
    "MediaError",
    "NotRegistered",
    "RegistrationChanged",
    "RegistrationState",
    "Replaces",
    "RtpRelay",
    "RtpSession",
    "SipCall",
    "SipConfig",
    "SipEndpoint",
    "SipError",
    "SipHandler",
    "TimerConfig",
    "Transfer",
    "TransferRequested",
    "TransferState",
]
