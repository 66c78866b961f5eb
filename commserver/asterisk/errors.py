"""Errors of the AMI client; the telephony adapter turns them into telephony errors at its edge."""

from __future__ import annotations

from typing import ClassVar


class AmiError(Exception):
    """Base of the AMI client's errors: a stable kebab-case `code` and structured `details`."""

    code: ClassVar[str] = "ami-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class AmiProtocolError(AmiError):
    """The peer does not speak AMI, or sent a frame we cannot accept (too large, no banner)."""

    code: ClassVar[str] = "ami-protocol-error"


class AmiAuthenticationFailed(AmiError):
    """Asterisk refused the manager login (wrong username or secret, or a denied address)."""

    code: ClassVar[str] = "ami-authentication-failed"


class AmiUnavailable(AmiError):
    """There is no logged-in manager connection, or it was lost while an action waited."""

    code: ClassVar[str] = "ami-unavailable"


class AmiTimeout(AmiError):
    """Asterisk did not answer an action in time (a slow or hung manager)."""

    code: ClassVar[str] = "ami-timeout"


class AmiActionFailed(AmiError):
    """Asterisk answered an action with `Response: Error`; `details['reason']` is its message."""

    code: ClassVar[str] = "ami-action-failed"

    def __init__(self, message: str, *, action: str, reason: str, **details: object) -> None:
        super().__init__(message, action=action, reason=reason, **details)
        self.action = action
        self.reason = reason


class AgiCommandFailed(AmiError):
    """An AsyncAGI command came back with an error code (510, 511, 520) or could not run."""

    code: ClassVar[str] = "agi-command-failed"
