"""REFER (RFC 3515) received on a call leg: the Refer-To target, and the transfer's handle.

The endpoint parses the REFER and hands the handler a `Transfer`; the handler decides at once
(`accept`, `reject` or `challenge`) and later reports how the referenced call went with
`progress` and `finish`, which become NOTIFYs carrying a `message/sipfrag` status line in the
REFER's implicit subscription (unless the phone asked for none with `Refer-Sub: false`,
RFC 4488).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .errors import CallGone, InvalidCallState, MalformedMessage
from .events import Replaces, TransferRequested
from .message import REASONS, NameAddress, SipUri, get_param, parse_params
from .transaction import ClientTransaction, ServerTransaction

if TYPE_CHECKING:
    from .call import SipCall

log = logging.getLogger(__name__)

# The implicit subscription lasts until the final NOTIFY; a minute covers any ring timeout.
_ACTIVE = "active;expires=60"


def parse_replaces(text: str) -> Replaces:
    """Parse a Replaces value ('callid;to-tag=a;from-tag=b[;early-only]'); `MalformedMessage`."""
    call_id, _, param_text = text.strip().partition(";")
    params = parse_params(param_text)
    to_tag = get_param(params, "to-tag")
    from_tag = get_param(params, "from-tag")
    if not call_id or not to_tag or not from_tag:
        raise MalformedMessage("Replaces needs a Call-ID, to-tag and from-tag")
    early = any(name.lower() == "early-only" for name, _ in params)
    return Replaces(call_id.strip(), to_tag, from_tag, early)


def parse_refer_to(value: str) -> tuple[SipUri, Replaces | None]:
    """The target URI of a Refer-To value (headers removed) and its Replaces, if any.

    Raises `MalformedMessage` for anything that is not one sip/sips URI.
    """
    target = NameAddress.parse(value).uri
    replaces: Replaces | None = None
    for item in target.headers.split("&"):
        name, sep, raw = item.partition("=")
        if sep and name.strip().lower() == "replaces":
            replaces = parse_replaces(unquote(raw))
    user = unquote(target.user) if target.user is not None else None
    return replace(target, user=user, headers=""), replaces


class TransferState(enum.Enum):
    """Where a REFER is in its life."""

    PENDING = "pending"  # the handler has not decided yet
    REJECTED = "rejected"  # refused (or challenged for credentials)
    ACCEPTED = "accepted"  # 202 sent; the referenced call is being made
    FINISHED = "finished"  # the final NOTIFY went out


class Transfer:
    """The handle of one REFER: accept or refuse it now, report the outcome later."""

    def __init__(
        self,
        call: SipCall,
        tx: ServerTransaction,
        event: TransferRequested,
        *,
        subscribe: bool,
        challenge: str,
    ) -> None:
        self.call = call
        self.event = event
        self.state = TransferState.PENDING
        self.final_status: int | None = None
        self._tx = tx
        self._subscribe = subscribe
        self._challenge = challenge
        self._event_header = f"refer;id={tx.request.cseq.number}"
        self._last_progress: int | None = None

    def __repr__(self) -> str:
        return f"<Transfer {self.call.id} -> {self.event.target} {self.state.value}>"

    def _decide(self) -> None:
        if self.state is not TransferState.PENDING:
            raise InvalidCallState(
                "the REFER was already answered", call_id=self.call.id, state=self.state.value
            )

    def accept(self) -> None:
        """Answer 202 Accepted and report '100 Trying' in the first NOTIFY."""
        self._decide()
        contact = self.call.endpoint.contact_for(self.call.dialog.remote_address)
        headers = [("Contact", str(contact))]
        if not self._subscribe:
            headers.append(("Refer-Sub", "false"))
        self._tx.reply(202, headers=headers)
        self.state = TransferState.ACCEPTED
        self.progress(100)

    def reject(self, status: int, reason: str | None = None) -> None:
        """Refuse the REFER with a final error status (403, 404, 481, 488, 603...)."""
        self._decide()
        if status < 300:
            raise ValueError("a refusal needs a status of 300 or more")
        self._tx.reply(status, reason)
        self.state = TransferState.REJECTED
        self.final_status = status

    def challenge(self) -> None:
        """Ask for credentials (407): the phone repeats the REFER with Proxy-Authorization."""
        self._decide()
        self._tx.reply(407, headers=[("Proxy-Authenticate", self._challenge)])
        self.state = TransferState.REJECTED
        self.final_status = 407

    def progress(self, status: int, reason: str | None = None) -> None:
        """Report a provisional status of the referenced call (100 Trying, 180 Ringing)."""
        if self.state is not TransferState.ACCEPTED or status >= 200:
            return
        if status == self._last_progress:
            return  # phones repeat 180 while ringing; the transferor needs to hear it once
        self._last_progress = status
        self._notify(status, reason, final=False)

    def finish(self, status: int, reason: str | None = None) -> ClientTransaction | None:
        """Report the final status of the referenced call; the subscription ends with it."""
        if self.state is not TransferState.ACCEPTED:
            return None
        self.state = TransferState.FINISHED
        self.final_status = status
        return self._notify(status, reason, final=True)

    def _notify(self, status: int, reason: str | None, *, final: bool) -> ClientTransaction | None:
        if not self._subscribe:
            return None
        line = f"SIP/2.0 {status} {reason or REASONS.get(status, 'Unknown')}\r\n"
        state = "terminated;reason=noresource" if final else _ACTIVE
        try:
            return self.call.send_request(
                "NOTIFY",
                headers=[("Event", self._event_header), ("Subscription-State", state)],
                body=line.encode(),
                content_type="message/sipfrag;version=2.0",
            )
        except (CallGone, InvalidCallState):
            log.debug("call %s ended: no NOTIFY for its transfer", self.call.id)
            return None
