"""Typed events the SIP endpoint reports to its handler."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .sdp import Direction


def now() -> datetime:
    """The event clock (UTC wall time)."""
    return datetime.now(UTC)


class EndReason(enum.Enum):
    """Why a call leg ended."""

    REMOTE_BYE = "remote-bye"
    LOCAL_HANGUP = "local-hangup"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    DECLINED = "declined"
    NO_ANSWER = "no-answer"
    UNACKNOWLEDGED = "unacknowledged"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"


class DtmfMethod(enum.Enum):
    """How a digit arrived."""

    RFC4733 = "rfc4733"
    SIP_INFO = "sip-info"


class RegistrationState(enum.Enum):
    """What happened to a binding."""

    REGISTERED = "registered"
    UNREGISTERED = "unregistered"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class SipEvent:
    """Base of the endpoint's events."""

    at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOffered(SipEvent):
    """An INVITE for a new call arrived and passed the endpoint's checks."""

    call_id: str
    caller: str
    caller_name: str
    dialed: str
    source: tuple[str, int]
    authenticated_user: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived(SipEvent):
    """A key press on a call."""

    call_id: str
    digit: str
    method: DtmfMethod = DtmfMethod.RFC4733


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(SipEvent):
    """A call leg is over; `status` is the SIP status that ended it, when there was one."""

    call_id: str
    reason: EndReason
    status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationChanged(SipEvent):
    """A phone registered, unregistered, or its binding expired."""

    aor: str
    contact: str
    state: RegistrationState
    source: tuple[str, int] | None = None
    expires: int = 0
    user_agent: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldChanged(SipEvent):
    """A leg's phone offered a new media direction: it put the call on hold or took it off.

    `direction` is the phone's own (sendonly or inactive: on hold; sendrecv: talking). On a
    bridged leg the endpoint has already relayed it to the other leg.
    """

    call_id: str
    direction: Direction

    @property
    def held(self) -> bool:
        """True when the phone no longer takes our audio."""
        return not self.direction.receives


@dataclass(frozen=True, slots=True)
class Replaces:
    """The dialog a REFER's target should replace (RFC 3891): the consultation call.

    The tags are from the point of view of the one who receives the Replaces (us): `to_tag`
    is our tag in that dialog, `from_tag` the phone's.
    """

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferRequested(SipEvent):
    """A phone sent REFER on a call: move the other side of this leg to `target`.

    `target_user` is the user part of the Refer-To URI (an extension or a number); `replaces`
    is set for an attended transfer. `authenticated_user` is who the REFER's credentials
    proved, when it carried any.
    """

    call_id: str
    target: str
    target_user: str
    replaces: Replaces | None = None
    referred_by: str = ""
    authenticated_user: str | None = None
