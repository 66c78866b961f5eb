"""The Asterisk Manager Interface (AMI) client: Caruso's own, asyncio, typed.

Layers, as in `commserver/sip`: `message` (wire format and framer), `protocol` (one TCP
connection: ActionIDs, EventLists, events out), `manager` (the controller: login, keepalive,
reconnect, resync), `events` (typed events), `agi` (AsyncAGI commands and results) and
`channels` (a pure mirror of Asterisk's channels, bridges and devices). It imports nothing
from the rest of Caruso but the task helper; `commserver/telephony/asterisk.py` adapts it to
the telephony interface. See docs/asterisk.md.
"""

from .agi import AgiResult, parse_encoded_result, parse_env, parse_result
from .channels import AsteriskState, Bridge
from .errors import (
    AgiCommandFailed,
    AmiActionFailed,
    AmiAuthenticationFailed,
    AmiError,
    AmiProtocolError,
    AmiTimeout,
    AmiUnavailable,
)
from .events import (
    AgiEnded,
    AgiExecuted,
    AgiStarted,
    AmiEvent,
    BridgeCreated,
    BridgeDestroyed,
    BridgeEntered,
    BridgeLeft,
    ChannelCreated,
    ChannelHungUp,
    ChannelRenamed,
    ChannelSnapshot,
    ChannelState,
    ChannelStateChanged,
    ContactStatus,
    ContactStatusChanged,
    DeviceState,
    DeviceStateChanged,
    DtmfEnded,
    FullyBooted,
    OriginateResult,
    ServerShutdown,
    TransferDone,
    decode,
)
from .manager import AmiHandler, AmiManager, AmiSettings, ManagerState
from .message import (
    AmiAction,
    AmiMessage,
    Banner,
    FrameParser,
    FrameProblem,
    ParseLimits,
    encode_message,
    sanitize,
)
from .protocol import AmiConnection

__all__ = [
    "AgiCommandFailed",
    "AgiEnded",
    "AgiExecuted",
    "AgiResult",
    "AgiStarted",
    "AmiAction",
    "AmiActionFailed",
    "AmiAuthenticationFailed",
    "AmiConnection",
    "AmiError",
    "AmiEvent",
    "AmiHandler",
    "AmiManager",
    "AmiMessage",
    "AmiProtocolError",
    "AmiSettings",
    "AmiTimeout",
    "AmiUnavailable",
    "AsteriskState",
    "Banner",
    "Bridge",
    "BridgeCreated",
    "BridgeDestroyed",
    "BridgeEntered",
    "BridgeLeft",
    "ChannelCreated",
    "ChannelHungUp",
    "ChannelRenamed",
    "ChannelSnapshot",
    "ChannelState",
    "ChannelStateChanged",
    "ContactStatus",
    "ContactStatusChanged",
    "DeviceState",
    "DeviceStateChanged",
    "DtmfEnded",
    "FrameParser",
    "FrameProblem",
    "FullyBooted",
    "ManagerState",
    "OriginateResult",
    "ParseLimits",
    "ServerShutdown",
    "TransferDone",
    "decode",
    "encode_message",
    "parse_encoded_result",
    "parse_env",
    "parse_result",
    "sanitize",
]
