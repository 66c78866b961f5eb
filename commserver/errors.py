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
