"""Agents' own phone calls: where an agent's phone is, and the numbers they may dial out to.

The rules live here as plain functions and data (the call controller applies them): a number
must match the site's `telephony.outbound_number_pattern` (toll fraud: no premium or foreign
prefix the site did not allow), and it is logged masked to its last four digits.
"""

from __future__ import annotations

import asyncio
import enum
import re
from dataclasses import dataclass

from commserver.errors import InvalidPhoneNumber

DEFAULT_NUMBER_PATTERN = r"^\+?[0-9]{3,20}$"
#: Separators people type in phone numbers; removed before the pattern is applied.
_SEPARATORS = re.compile(r"[\s\-./()]")
_MAX_TYPED = 40
#: The pause reason the ACD holds an agent in while they are on an outbound call.
OUTBOUND_PAUSE = "outbound-call"
#: How long the agent's own phone rings, then the customer's, before the dial gives up.
AGENT_RING_SECONDS = 30.0
CUSTOMER_RING_SECONDS = 45.0


class NumberPolicy:
    """Which numbers may be dialled out or rung as an agent's external phone."""

    def __init__(self, pattern: str = DEFAULT_NUMBER_PATTERN) -> None:
        self.pattern = re.compile(pattern)

    def check(self, raw: object, field: str = "number") -> str:
        """The number without separators; `InvalidPhoneNumber` unless the pattern allows it."""
        if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_TYPED:
            raise InvalidPhoneNumber(f"'{field}' must be a phone number", field=field)
        number = _SEPARATORS.sub("", raw)
        if not self.pattern.fullmatch(number):
            raise InvalidPhoneNumber(
                f"{mask(number)} is not a number this site may call", field=field
            )
        return number


def mask(number: str) -> str:
    """A number for the log: all but the last four digits hidden (`+*******1234`)."""
    head = "+" if number.startswith("+") else ""
    digits = number.removeprefix("+")
    return head + "*" * max(len(digits) - 4, 0) + digits[-4:]


class OutboundPhase(enum.Enum):
    """Where an agent's outbound call is: on the line, or wrapping up after it."""

    CALLING = "calling"
    WRAP_UP = "wrap-up"


@dataclass(eq=False)
class OutboundCall:
    """One agent's click-to-dial call, from the dial to the end of its wrap-up."""

    agent_id: str
    number: str
    contact_id: str
    #: What the agent goes back to afterwards: ready (None) or paused with this reason.
    resume_paused: str | None
    phase: OutboundPhase = OutboundPhase.CALLING
    wrap_up_timer: asyncio.TimerHandle | None = None
    log_out_after: bool = False
