"""Typed AMI events: the manager events Caruso consumes, decoded from raw `AmiMessage`s.

`decode(message)` returns one of the frozen dataclasses below, or `None` for the many events
Caruso has no use for (VarSet, Newexten, CEL, RTCP...). Both the Asterisk 12+ names
(`AsyncAGIStart`, `BridgeEnter`...) and the Asterisk 11 `AsyncAGI`/`SubEvent` form are
understood, so recorded transcripts of older servers decode too.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .agi import AgiResult, parse_encoded_result, parse_env
from .message import AmiMessage


class ChannelState(enum.Enum):
    """Asterisk's channel states (`ChannelState` numbers)."""

    DOWN = 0
    RESERVED = 1
    OFF_HOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7
    DIALING_OFF_HOOK = 8
    PRE_RING = 9
    UNKNOWN = 10

    @classmethod
    def parse(cls, text: str) -> ChannelState:
        """From the `ChannelState` number (anything else is UNKNOWN)."""
        try:
            return cls(int(text))
        except ValueError:
            return cls.UNKNOWN


class DeviceState(enum.Enum):
    """Device states as `DeviceStateChange` spells them."""

    UNKNOWN = "UNKNOWN"
    NOT_INUSE = "NOT_INUSE"
    INUSE = "INUSE"
    BUSY = "BUSY"
    INVALID = "INVALID"
    UNAVAILABLE = "UNAVAILABLE"
    RINGING = "RINGING"
    RINGINUSE = "RINGINUSE"
    ONHOLD = "ONHOLD"

    @classmethod
    def parse(cls, text: str) -> DeviceState:
        """From the `State` text (anything else is UNKNOWN)."""
        try:
            return cls(text.strip().upper())
        except ValueError:
            return cls.UNKNOWN


class ContactStatus(enum.Enum):
    """PJSIP contact statuses (`ContactStatus` events)."""

    CREATED = "Created"
    REMOVED = "Removed"
    REACHABLE = "Reachable"
    UNREACHABLE = "Unreachable"
    UNKNOWN = "Unknown"
    NON_QUALIFIED = "NonQualified"
    UNQUALIFIED = "Unqualified"
    UPDATED = "Updated"

    @classmethod
    def parse(cls, text: str) -> ContactStatus:
        """From the `ContactStatus` text (anything else is UNKNOWN)."""
        wanted = text.strip().lower()
        return next((s for s in cls if s.value.lower() == wanted), cls.UNKNOWN)

    @property
    def registered(self) -> bool:
        """Whether the contact can be called."""
        return self not in (ContactStatus.REMOVED, ContactStatus.UNREACHABLE)


_DURATION = re.compile(r"^(\d+):(\d{2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """What one event says about a channel (the common `Channel...Uniqueid` block)."""

    uniqueid: str
    name: str
    state: ChannelState = ChannelState.UNKNOWN
    caller_number: str = ""
    caller_name: str = ""
    connected_number: str = ""
    context: str = ""
    exten: str = ""
    linkedid: str = ""
    application: str = ""
    application_data: str = ""
    bridge_id: str = ""
    duration_seconds: float = 0.0
    variables: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_message(cls, message: AmiMessage, prefix: str = "") -> ChannelSnapshot:
        """The snapshot in `message` (`prefix` picks `Dest...`, `Transferee...` blocks)."""
        if not prefix:
            return cls._plain(message)
        get = message.get
        variables: dict[str, str] = {}
        for item in message.get_all(f"{prefix}ChanVariable"):
            name, sep, value = item.partition("=")
            if sep:
                variables[name] = value
        return cls(
            uniqueid=get(f"{prefix}Uniqueid"),
            name=get(f"{prefix}Channel"),
            state=ChannelState.parse(get(f"{prefix}ChannelState", "10")),
            caller_number=_clean_id(get(f"{prefix}CallerIDNum")),
            caller_name=_clean_id(get(f"{prefix}CallerIDName")),
            connected_number=_clean_id(get(f"{prefix}ConnectedLineNum")),
            context=get(f"{prefix}Context"),
            exten=get(f"{prefix}Exten"),
            linkedid=get(f"{prefix}Linkedid"),
            application=get("Application") if not prefix else "",
            application_data=get("ApplicationData") if not prefix else "",
            bridge_id=get("BridgeId") if not prefix else "",
            duration_seconds=_duration(get("Duration")) if not prefix else 0.0,
            variables=variables,
        )

    @classmethod
    def _plain(cls, message: AmiMessage) -> ChannelSnapshot:
        # The hot path (every channel event): lower-cased keys, no prefix to build.
        get = message.index.get
        variables: dict[str, str] = {}
        if "chanvariable" in message.index:
            for item in message.get_all("ChanVariable"):
                name, sep, value = item.partition("=")
                if sep:
                    variables[name] = value
        state = get("channelstate", "10")
        return cls(
            uniqueid=get("uniqueid", ""),
            name=get("channel", ""),
            state=_STATES.get(state) or ChannelState.parse(state),
            caller_number=_clean_id(get("calleridnum", "")),
            caller_name=_clean_id(get("calleridname", "")),
            connected_number=_clean_id(get("connectedlinenum", "")),
            context=get("context", ""),
            exten=get("exten", ""),
            linkedid=get("linkedid", ""),
            application=get("application", ""),
            application_data=get("applicationdata", ""),
            bridge_id=get("bridgeid", ""),
            duration_seconds=_duration(get("duration", "")),
            variables=variables,
        )


_STATES = {str(state.value): state for state in ChannelState}


def _clean_id(value: str) -> str:
    # Asterisk writes "<unknown>" for an absent caller id.
    return "" if value == "<unknown>" else value


def _duration(text: str) -> float:
    if not text:
        return 0.0
    match = _DURATION.match(text.strip())
    if match is None:
        return 0.0
    hours, minutes, seconds = (int(g) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiEvent:
    """Base of the typed events; `sent_at` is the `Timestamp` header when the server adds one."""

    sent_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCreated(AmiEvent):
    """`Newchannel`: a channel exists."""

    channel: ChannelSnapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChanged(AmiEvent):
    """`Newstate`: ringing, answered..."""

    channel: ChannelSnapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelRenamed(AmiEvent):
    """`Rename`: a channel changed its name (masquerades in old servers)."""

    uniqueid: str
    new_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHungUp(AmiEvent):
    """`Hangup`: a channel is gone; `cause` is the Q.850 cause number."""

    channel: ChannelSnapshot
    cause: int
    cause_text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfEnded(AmiEvent):
    """`DTMFEnd`: a key was released on a channel."""

    channel: ChannelSnapshot
    digit: str
    received: bool
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgiStarted(AmiEvent):
    """`AsyncAGIStart`: a channel entered `AGI(agi:async)` and waits for commands."""

    channel: ChannelSnapshot
    env: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class AgiExecuted(AmiEvent):
    """`AsyncAGIExec`: a queued AGI command finished."""

    channel: ChannelSnapshot
    command_id: str
    result: AgiResult


@dataclass(frozen=True, slots=True, kw_only=True)
class AgiEnded(AmiEvent):
    """`AsyncAGIEnd`: the channel left AsyncAGI (hang-up or `ASYNCAGI BREAK`)."""

    channel: ChannelSnapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeCreated(AmiEvent):
    """`BridgeCreate`."""

    bridge_id: str
    bridge_type: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeEntered(AmiEvent):
    """`BridgeEnter`: a channel joined a bridge (`swap_uniqueid` is the one it replaced)."""

    bridge_id: str
    channel: ChannelSnapshot
    swap_uniqueid: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeLeft(AmiEvent):
    """`BridgeLeave`."""

    bridge_id: str
    channel: ChannelSnapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroyed(AmiEvent):
    """`BridgeDestroy`."""

    bridge_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceStateChanged(AmiEvent):
    """`DeviceStateChange`: e.g. `PJSIP/2001` is now `INUSE`."""

    device: str
    state: DeviceState


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactStatusChanged(AmiEvent):
    """`ContactStatus`: a PJSIP contact registered, was removed, became (un)reachable."""

    aor: str
    endpoint: str
    uri: str
    status: ContactStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateResult(AmiEvent):
    """`OriginateResponse`: how an asynchronous Originate ended (`reason` 4 means answered)."""

    action_id: str
    success: bool
    reason: int
    uniqueid: str
    channel_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferDone(AmiEvent):
    """`BlindTransfer` / `AttendedTransfer`: a transfer finished (`success` from `Result`)."""

    attended: bool
    success: bool
    transferer_uniqueid: str
    transferee_uniqueid: str
    destination: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FullyBooted(AmiEvent):
    """`FullyBooted`: sent after login once Asterisk has finished starting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerShutdown(AmiEvent):
    """`Shutdown`: Asterisk is stopping or restarting."""

    restart: bool = False


def _stamp(message: AmiMessage) -> float | None:
    text = message.get("Timestamp")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


def _newchannel(m: AmiMessage) -> AmiEvent:
    return ChannelCreated(channel=ChannelSnapshot.from_message(m), sent_at=_stamp(m))


def _newstate(m: AmiMessage) -> AmiEvent:
    return ChannelStateChanged(channel=ChannelSnapshot.from_message(m), sent_at=_stamp(m))


def _rename(m: AmiMessage) -> AmiEvent:
    return ChannelRenamed(uniqueid=m.get("Uniqueid"), new_name=m.get("Newname"), sent_at=_stamp(m))


def _hangup(m: AmiMessage) -> AmiEvent:
    return ChannelHungUp(
        channel=ChannelSnapshot.from_message(m),
        cause=_int(m.get("Cause"), 0),
        cause_text=m.get("Cause-txt"),
        sent_at=_stamp(m),
    )


def _dtmf_end(m: AmiMessage) -> AmiEvent:
    return DtmfEnded(
        channel=ChannelSnapshot.from_message(m),
        digit=m.get("Digit"),
        received=m.get("Direction").lower() == "received",
        duration_ms=_int(m.get("DurationMs")),
        sent_at=_stamp(m),
    )


def _agi_start(m: AmiMessage) -> AmiEvent:
    return AgiStarted(
        channel=ChannelSnapshot.from_message(m), env=parse_env(m.get("Env")), sent_at=_stamp(m)
    )


def _agi_exec(m: AmiMessage) -> AmiEvent:
    return AgiExecuted(
        channel=ChannelSnapshot.from_message(m),
        command_id=m.get("CommandID"),
        result=parse_encoded_result(m.get("Result")),
        sent_at=_stamp(m),
    )


def _agi_end(m: AmiMessage) -> AmiEvent:
    return AgiEnded(channel=ChannelSnapshot.from_message(m), sent_at=_stamp(m))


def _agi_legacy(m: AmiMessage) -> AmiEvent | None:
    sub = m.get("SubEvent").lower()
    if sub == "start":
        return _agi_start(m)
    if sub == "exec":
        return _agi_exec(m)
    if sub == "end":
        return _agi_end(m)
    return None


def _bridge_create(m: AmiMessage) -> AmiEvent:
    return BridgeCreated(
        bridge_id=m.get("BridgeUniqueid"), bridge_type=m.get("BridgeType"), sent_at=_stamp(m)
    )


def _bridge_enter(m: AmiMessage) -> AmiEvent:
    return BridgeEntered(
        bridge_id=m.get("BridgeUniqueid"),
        channel=ChannelSnapshot.from_message(m),
        swap_uniqueid=m.get("SwapUniqueid"),
        sent_at=_stamp(m),
    )


def _bridge_leave(m: AmiMessage) -> AmiEvent:
    return BridgeLeft(
        bridge_id=m.get("BridgeUniqueid"),
        channel=ChannelSnapshot.from_message(m),
        sent_at=_stamp(m),
    )


def _bridge_destroy(m: AmiMessage) -> AmiEvent:
    return BridgeDestroyed(bridge_id=m.get("BridgeUniqueid"), sent_at=_stamp(m))


def _device_state(m: AmiMessage) -> AmiEvent:
    return DeviceStateChanged(
        device=m.get("Device"), state=DeviceState.parse(m.get("State")), sent_at=_stamp(m)
    )


def _contact_status(m: AmiMessage) -> AmiEvent:
    return ContactStatusChanged(
        aor=m.get("AOR"),
        endpoint=m.get("EndpointName"),
        uri=m.get("URI"),
        status=ContactStatus.parse(m.get("ContactStatus")),
        sent_at=_stamp(m),
    )


def _originate(m: AmiMessage) -> AmiEvent:
    return OriginateResult(
        action_id=m.get("ActionID"),
        success=m.get("Response").lower() == "success",
        reason=_int(m.get("Reason"), 0),
        uniqueid=m.get("Uniqueid"),
        channel_name=m.get("Channel"),
        sent_at=_stamp(m),
    )


def _blind_transfer(m: AmiMessage) -> AmiEvent:
    return TransferDone(
        attended=False,
        success=m.get("Result").lower() == "success",
        transferer_uniqueid=m.get("TransfererUniqueid"),
        transferee_uniqueid=m.get("TransfereeUniqueid"),
        destination=m.get("Extension"),
        sent_at=_stamp(m),
    )


def _attended_transfer(m: AmiMessage) -> AmiEvent:
    return TransferDone(
        attended=True,
        success=m.get("Result").lower() == "success",
        transferer_uniqueid=m.get("OrigTransfererUniqueid"),
        transferee_uniqueid=m.get("TransfereeUniqueid"),
        destination=m.get("SecondTransfererExten") or m.get("DestExtension"),
        sent_at=_stamp(m),
    )


def _fully_booted(m: AmiMessage) -> AmiEvent:
    return FullyBooted(sent_at=_stamp(m))


def _shutdown(m: AmiMessage) -> AmiEvent:
    return ServerShutdown(restart=m.get("Restart").lower() == "true", sent_at=_stamp(m))


_DECODERS: dict[str, Callable[[AmiMessage], AmiEvent | None]] = {
    "newchannel": _newchannel,
    "newstate": _newstate,
    "rename": _rename,
    "hangup": _hangup,
    "dtmfend": _dtmf_end,
    "asyncagistart": _agi_start,
    "asyncagiexec": _agi_exec,
    "asyncagiend": _agi_end,
    "asyncagi": _agi_legacy,
    "bridgecreate": _bridge_create,
    "bridgeenter": _bridge_enter,
    "bridgeleave": _bridge_leave,
    "bridgedestroy": _bridge_destroy,
    "devicestatechange": _device_state,
    "contactstatus": _contact_status,
    "originateresponse": _originate,
    "blindtransfer": _blind_transfer,
    "attendedtransfer": _attended_transfer,
    "fullybooted": _fully_booted,
    "shutdown": _shutdown,
}

CONSUMED_EVENTS = frozenset(_DECODERS)
"""Lower-cased names of the events `decode` turns into typed events."""


def decode(message: AmiMessage) -> AmiEvent | None:
    """The typed event in `message`, or None if Caruso does not use that event."""
    decoder = _DECODERS.get(message.event.lower())
    return decoder(message) if decoder is not None else None
