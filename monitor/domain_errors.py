"""The web front's own errors: accounts, sessions and agent actions.

Like every component's errors they carry a stable kebab-case `code` and `details` and know
nothing of HTTP; `STATUS_BY_CODE` below is read only by the web edge (`monitor/auth.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class MonitorError(Exception):
    """Base of the web front's errors."""

    code: ClassVar[str] = "monitor-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class InvalidAccount(MonitorError):
    """A user name, role, agent link or password breaks the account rules."""

    code: ClassVar[str] = "invalid-account"


class DuplicateAccount(MonitorError):
    """A user with this name already exists."""

    code: ClassVar[str] = "duplicate-account"


class NoSuchAccount(MonitorError):
    """No user has this name."""

    code: ClassVar[str] = "no-such-account"


class InvalidRequest(MonitorError):
    """A request body or parameter is malformed (bad JSON, missing or wrong field)."""

    code: ClassVar[str] = "invalid-request"


class NoSuchAgent(MonitorError):
    """No agent has this id."""

    code: ClassVar[str] = "no-such-agent"


class NoAgentLinked(MonitorError):
    """The signed-in user has no agent id, so there is no desktop to show."""

    code: ClassVar[str] = "no-agent-linked"


class NoSuchVoicemail(MonitorError):
    """No voicemail message with this id, or not one this user may hear."""

    code: ClassVar[str] = "no-such-voicemail-message"


class NoSuchContactRecord(MonitorError):
    """No contact with this id that the user may act on (a disposition for someone else's)."""

    code: ClassVar[str] = "no-such-contact"


class InvalidToken(MonitorError):
    """A bearer token is missing, unknown or revoked."""

    code: ClassVar[str] = "invalid-token"


class NoSuchToken(MonitorError):
    """No API token has this id."""

    code: ClassVar[str] = "no-such-token"


#: HTTP status of each code, for the web edge only.
STATUS_BY_CODE: Mapping[str, int] = {
    InvalidAccount.code: 400,
    DuplicateAccount.code: 409,
    NoSuchAccount.code: 404,
    InvalidRequest.code: 400,
    NoSuchAgent.code: 404,
    NoAgentLinked.code: 403,
    NoSuchVoicemail.code: 404,
    NoSuchContactRecord.code: 404,
    InvalidToken.code: 401,
    NoSuchToken.code: 404,
}
