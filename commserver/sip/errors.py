"""Errors of the embedded SIP/RTP stack; each maps to a SIP status at the edge, never to HTTP."""

from __future__ import annotations

from typing import ClassVar


class SipError(Exception):
    """Base of the SIP stack's errors: a stable kebab-case `code` and structured `details`."""

    code: ClassVar[str] = "sip-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class MalformedMessage(SipError):
    """A datagram is not a well-formed SIP message (the transport answers 400 when it can)."""

    code: ClassVar[str] = "malformed-sip-message"


class MessageTooLarge(MalformedMessage):
    """A datagram is larger than the configured limit (answered 513 when addressable)."""

    code: ClassVar[str] = "sip-message-too-large"


class MalformedSdp(SipError):
    """A session description could not be parsed."""

    code: ClassVar[str] = "malformed-sdp"


class NoCommonCodec(SipError):
    """The offer has no codec we speak (answered 488 Not Acceptable Here)."""

    code: ClassVar[str] = "no-common-codec"


class TransactionTimeout(SipError):
    """A client transaction got no final response before Timer B or F fired."""

    code: ClassVar[str] = "sip-transaction-timeout"


class CallFailed(SipError):
    """An outbound call ended without being answered; `details['status']` holds the SIP status."""

    code: ClassVar[str] = "sip-call-failed"

    def __init__(self, message: str, *, status: int, **details: object) -> None:
        super().__init__(message, status=status, **details)
        self.status = status


class NotRegistered(SipError):
    """An outbound call was asked for an address-of-record with no live binding."""

    code: ClassVar[str] = "sip-not-registered"


class CallGone(SipError):
    """A command was given for a call that has already ended."""

    code: ClassVar[str] = "sip-call-gone"


class InvalidCallState(SipError):
    """A command does not fit the call's state (answering twice, bridging a ringing call)."""

    code: ClassVar[str] = "sip-invalid-call-state"


class MediaError(SipError):
    """Audio could not be loaded or written (wrong WAV format, unwritable path)."""

    code: ClassVar[str] = "sip-media-error"
