"""Errors of the ACD. Each carries a stable kebab-case `code` and structured `details`.

They know nothing of HTTP or SIP: the server's edges map them to statuses and responses.
"""

from __future__ import annotations

from typing import ClassVar


class AcdError(Exception):
    """Base of the ACD's errors: a stable kebab-case `code` and a `details` mapping."""

    code: ClassVar[str] = "acd-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class InvalidAcdConfig(AcdError):
    """A queue, agent, rule or setting is inconsistent or out of range."""

    code: ClassVar[str] = "invalid-acd-config"


class InvalidRuleCondition(InvalidAcdConfig):
    """A rule's `when` expression does not parse; `details` has the column."""

    code: ClassVar[str] = "invalid-rule-condition"


class NoSuchQueue(AcdError):
    """No queue has this name."""

    code: ClassVar[str] = "no-such-queue"


class NoSuchAgent(AcdError):
    """No agent has this id."""

    code: ClassVar[str] = "no-such-agent"


class NoSuchContact(AcdError):
    """The ACD holds no contact with this id (never arrived, or already finished)."""

    code: ClassVar[str] = "no-such-contact"


class DuplicateContact(AcdError):
    """A contact with this id is already in the ACD."""

    code: ClassVar[str] = "duplicate-contact"


class DuplicateAgent(AcdError):
    """An agent with this id already exists."""

    code: ClassVar[str] = "duplicate-agent"


class InvalidAgentTransition(AcdError):
    """The agent's state machine does not allow this move (e.g. ready while logged out)."""

    code: ClassVar[str] = "invalid-agent-transition"


class AgentHasLiveContacts(AcdError):
    """The agent is talking to a customer; end the contact first (logout, removal)."""

    code: ClassVar[str] = "agent-has-live-contacts"


class InvalidContactTransition(AcdError):
    """The contact's state does not allow this (e.g. a callback for a connected call)."""

    code: ClassVar[str] = "invalid-contact-transition"


class NotOffered(AcdError):
    """The contact is not ringing this agent (answered elsewhere, withdrawn or timed out)."""

    code: ClassVar[str] = "contact-not-offered-to-agent"


class InvalidScenario(AcdError):
    """A simulation scenario is malformed; `details` names the key."""

    code: ClassVar[str] = "invalid-scenario"


class InvalidContactRequest(AcdError):
    """A contact entering the ACD carries a bad id, priority or skill level."""

    code: ClassVar[str] = "invalid-contact-request"
