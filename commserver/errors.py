"""Errors of the communication server itself (configuration and start-up)."""

from __future__ import annotations

from typing import ClassVar


class ServerError(Exception):
    """Base of the server's errors: a stable kebab-case `code` and structured `details`."""

    code: ClassVar[str] = "server-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class ConfigError(ServerError):
    """The configuration file is missing, malformed, or has an unknown or invalid key."""

    code: ClassVar[str] = "invalid-configuration"


class InvalidTransition(ServerError):
    """A contact or agent was asked to move to a state its state machine does not allow."""

    code: ClassVar[str] = "invalid-transition"


class NoSuchContact(ServerError):
    """No live contact has this id."""

    code: ClassVar[str] = "no-such-contact"


class NoSuchAgent(ServerError):
    """No agent has this id."""

    code: ClassVar[str] = "no-such-agent"


class NotSupportedByBackend(ServerError):
    """The running telephony backend cannot do this (listen, whisper, barge...)."""

    code: ClassVar[str] = "not-supported-by-backend"


class AgentNotOnCall(ServerError):
    """The agent is not talking on a call, so there is nothing to listen to."""

    code: ClassVar[str] = "agent-not-on-call"


class NoSupervisorPhone(ServerError):
    """No phone to ring for the supervisor: none given and their account has no agent's phone."""

    code: ClassVar[str] = "no-supervisor-phone"


class SpyFailed(ServerError):
    """The supervisor's phone could not join the call (no answer, unreachable, call gone)."""

    code: ClassVar[str] = "spy-failed"


class NoSuchSpySession(ServerError):
    """No running listen / whisper / barge session has this id."""

    code: ClassVar[str] = "no-such-spy-session"


class InvalidPhoneNumber(ServerError):
    """A number to dial or to ring an agent at is malformed or not allowed by the site's pattern."""

    code: ClassVar[str] = "invalid-phone-number"


class UnknownExtension(ServerError):
    """An extension the site does not know (neither an agent's nor a registered phone)."""

    code: ClassVar[str] = "unknown-extension"
