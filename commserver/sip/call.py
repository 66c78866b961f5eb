"""One call leg: its dialog, its INVITE transaction, its media, and the commands the server gives.

Per-call state lives here, keyed by Call-ID in the endpoint, never on the shared protocol object.
The state machine has explicit allowed transitions; every path to ENDED goes through `_end`,
which releases the media socket, stops a bridge and tells the handler exactly once.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import media as media_io
from .dialog import Dialog
from .errors import (
    CallFailed,
    CallGone,
    InvalidCallState,
    MalformedSdp,
    NoCommonCodec,
    TransactionTimeout,
)
from .events import CallEnded, DtmfMethod, DtmfReceived, EndReason, HoldChanged, now
from .message import Headers, SipMethod, SipRequest, SipResponse
from .rtp import RtpRelay, RtpSession
from .sdp import (
    Codec,
    Direction,
    MediaOffer,
    SessionDescription,
    answer_direction,
    build_sdp,
    negotiate,
    negotiated,
)
from .transaction import ClientTransaction, InviteClientTransaction, InviteServerTransaction

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

log = logging.getLogger(__name__)


class CallDirection(enum.Enum):
    """Who placed the call."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallState(enum.Enum):
    """Where a call leg is in its life."""

    OFFERED = "offered"  # inbound INVITE waiting for the server's decision
    CALLING = "calling"  # outbound INVITE sent
    RINGING = "ringing"  # 180 sent (inbound) or received (outbound)
    ANSWERED = "answered"  # inbound: 200 OK sent, ACK not yet seen
    CONNECTED = "connected"  # dialog confirmed, media flowing
    ENDED = "ended"


_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.OFFERED: frozenset({CallState.RINGING, CallState.ANSWERED, CallState.ENDED}),
    CallState.CALLING: frozenset({CallState.RINGING, CallState.CONNECTED, CallState.ENDED}),
    CallState.RINGING: frozenset({CallState.ANSWERED, CallState.CONNECTED, CallState.ENDED}),
    CallState.ANSWERED: frozenset({CallState.CONNECTED, CallState.ENDED}),
    CallState.CONNECTED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}

_STATUS_REASONS: dict[int, EndReason] = {
    408: EndReason.NO_ANSWER,
    480: EndReason.NO_ANSWER,
    486: EndReason.DECLINED,
    487: EndReason.CANCELLED,
    600: EndReason.DECLINED,
    603: EndReason.DECLINED,
}

_DIGIT_BUFFER = 32
_BYE_WAIT = 2.0
_REINVITE_TRIES = 3
_CALL_RECORDING_LIMIT = 4 * 3600.0


def _retrieve(future: asyncio.Future[None]) -> None:
    # Nobody may be awaiting an outbound call's outcome any more; mark its error as seen.
    if not future.cancelled():
        future.exception()


class SipCall:
    """A call leg the server can answer, reject, play to, record, bridge and hang up."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        *,
        direction: CallDirection,
        dialog: Dialog,
        media: RtpSession,
        caller: str,
        caller_name: str,
        dialed: str,
        offer: MediaOffer | None = None,
        authenticated_user: str | None = None,
    ) -> None:
        self._endpoint = endpoint
        self.direction = direction
        self.dialog = dialog
        self.media = media
        self.caller = caller
        self.caller_name = caller_name
        self.dialed = dialed
        self.offer = offer
        self.authenticated_user = authenticated_user
        self.state = CallState.CALLING if direction is CallDirection.OUTBOUND else CallState.OFFERED
        self.started_at: datetime = now()
        self.answered_at: datetime | None = None
        self.end_reason: EndReason | None = None
        self.end_status: int | None = None
        self.invite_tx: InviteServerTransaction | None = None
        self.invite_client: InviteClientTransaction | None = None
        self.relay: RtpRelay | None = None
        self.ended = asyncio.Event()
        self._digits: deque[str] = deque(maxlen=_DIGIT_BUFFER)
        self._digit_arrived = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._sdp_version = 1
        self._sdp_session = media.ssrc
        # Media direction (hold). `peer_direction` is what the phone itself asked for in its own
        # offers; `wanted_direction` is ours (a bridge sets it to the other leg's wish); the
        # RTP session sends only while the negotiated result lets it.
        self.peer_direction = offer.effective_direction if offer else Direction.SENDRECV
        self.wanted_direction = Direction.SENDRECV
        self._local_direction = Direction.SENDRECV
        self._offered_direction: Direction | None = None
        self._direction_task: asyncio.Task[None] | None = None
        self._reinvite_server: InviteServerTransaction | None = None
        self._reinvite_client: InviteClientTransaction | None = None
        self._reinvite_acks: dict[int, bytes] = {}
        self.confirmed = asyncio.Event()
        self._call_recorder: media_io.CallRecorder | None = None
        self._call_recording: asyncio.Task[float] | None = None
        # Outbound only.
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answered.add_done_callback(_retrieve)
        self._cancel_requested = False
        self._cancel_sent = False
        self._provisional_seen = False
        self.on_ringing: Callable[[int], None] | None = None
        self._ack: bytes | None = None
        media.on_dtmf = self._on_rtp_digit

    @property
    def id(self) -> str:
        """The call's id: its SIP Call-ID."""
        return self.dialog.call_id

    @property
    def codec(self) -> Codec:
        """The negotiated codec."""
        return self.media.codec

    @property
    def endpoint(self) -> SipEndpoint:
        """The endpoint this leg belongs to."""
        return self._endpoint

    @property
    def held(self) -> bool:
        """True while the phone has put this leg on hold (it takes none of our audio)."""
        return not self.peer_direction.receives

    def __repr__(self) -> str:
        return f"<SipCall {self.id} {self.direction.value} {self.state.value}>"

    def _move(self, state: CallState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise InvalidCallState(
                f"call cannot go {self.state.value} -> {state.value}",
                call_id=self.id,
                state=self.state.value,
            )
        self.state = state
        if state is CallState.CONNECTED:
            self.confirmed.set()

    def _require(self, *states: CallState) -> None:
        if self.state is CallState.ENDED:
            raise CallGone("the call has ended", call_id=self.id)
        if self.state not in states:
            raise InvalidCallState(
                f"not allowed while the call is {self.state.value}",
                call_id=self.id,
                state=self.state.value,
            )

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- inbound: the server's decision ---------------------------------------------------

    def _local_sdp(self, direction: Direction) -> bytes:
        """Our SDP (an answer to `self.offer`, or an offer) saying `direction`."""
        host = self._endpoint.media_address
        port = self.media.local_address[1]
        if self.offer is not None:
            codecs: tuple[Codec, ...] = (self.offer.codec,)
            dtmf = self.offer.dtmf_payload_type
        else:
            codecs = self._endpoint.config.codecs
            dtmf = self._endpoint.config.dtmf_payload_type
        self._local_direction = direction
        return build_sdp(
            host,
            port,
            codecs,
            dtmf,
            session_id=self._sdp_session,
            version=self._sdp_version,
            direction=direction,
        )

    def _answer_headers(self) -> list[tuple[str, str]]:
        assert self.invite_tx is not None
        headers = [
            (name, value)
            for name, value in self.invite_tx.request.headers
            if name == "Record-Route"
        ]
        headers.append(("Contact", str(self._endpoint.contact_for(self.dialog.remote_address))))
        return headers

    def ring(self) -> None:
        """Tell the caller we are alerting (180 Ringing)."""
        self._require(CallState.OFFERED)
        assert self.invite_tx is not None
        self.invite_tx.reply(180, to_tag=self.dialog.local_tag, headers=self._answer_headers())
        self._move(CallState.RINGING)

    def answer(self) -> None:
        """Answer (200 OK with our SDP); retransmitted until the caller's ACK arrives."""
        self._require(CallState.OFFERED, CallState.RINGING)
        assert self.invite_tx is not None
        headers = self._answer_headers()
        headers.append(("Content-Type", "application/sdp"))
        headers.append(("Allow", self._endpoint.allow))
        if self.offer is not None:
            direction = answer_direction(self.peer_direction, self.wanted_direction)
            self.media.direction = negotiated(direction, self.peer_direction)
        else:
            direction = self.wanted_direction  # delayed offer: ours is the offer
        self.invite_tx.reply(
            200, to_tag=self.dialog.local_tag, headers=headers, body=self._local_sdp(direction)
        )
        self._cancel_timer()
        self._move(CallState.ANSWERED)
        self.answered_at = now()
        if not self.answered.done():
            self.answered.set_result(None)

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an offered call with a final error status (486 busy, 480, 603...)."""
        self._require(CallState.OFFERED, CallState.RINGING)
        if status < 300:
            raise ValueError("a rejection needs a status of 300 or more")
        assert self.invite_tx is not None
        self.invite_tx.reply(status, reason, to_tag=self.dialog.local_tag)
        self._end(EndReason.REJECTED, status)

    def _offer_expired(self) -> None:
        if self.state in (CallState.OFFERED, CallState.RINGING):
            log.info("call %s was not answered in time; 480", self.id)
            assert self.invite_tx is not None
            self.invite_tx.reply(480, to_tag=self.dialog.local_tag)
            self._end(EndReason.NO_ANSWER, 480)

    def _on_cancel(self) -> None:
        # The transaction layer already said 200 to the CANCEL.
        if self.state in (CallState.OFFERED, CallState.RINGING):
            assert self.invite_tx is not None
            self.invite_tx.reply(487, to_tag=self.dialog.local_tag)
            self._end(EndReason.CANCELLED, 487)

    def _on_ack(self, request: SipRequest) -> None:
        if self.invite_tx is not None:
            self.invite_tx.ack_received()
        if self.state is CallState.ANSWERED:
            if self.offer is None and request.body:
                # Delayed offer: the caller's answer came in the ACK.
                answer = self._answer_in(request.body)
                if answer is None:
                    return
                self.offer = answer
                self.media.configure(answer)
                self.peer_direction = answer.effective_direction
                self.media.direction = negotiated(self._local_direction, self.peer_direction)
            self._move(CallState.CONNECTED)

    def _answer_in(self, body: bytes) -> MediaOffer | None:
        """The SDP answer a phone put in an ACK; hangs up on one we cannot use."""
        try:
            return negotiate(SessionDescription.parse(body), self._endpoint.config.codecs)
        except (MalformedSdp, NoCommonCodec) as exc:
            log.warning("call %s: unusable SDP in ACK (%s); hanging up", self.id, exc)
            self._endpoint.tasks.spawn(self.hangup(), name=f"hangup-{self.id}")
            return None

    def _on_unacknowledged(self, invite: InviteServerTransaction) -> None:
        if invite is self._reinvite_server:
            # §14.2: a re-INVITE's 2xx never acknowledged ends the dialog like the first one's.
            self._reinvite_server = None
            if self.state is CallState.CONNECTED:
                log.warning("call %s: re-INVITE's 200 OK never acknowledged; BYE", self.id)
                self._send_bye()
                self._end(EndReason.UNACKNOWLEDGED)
            return
        if self.state is CallState.ANSWERED:
            log.warning("call %s: 200 OK never acknowledged; sending BYE", self.id)
            self._send_bye()
            self._end(EndReason.UNACKNOWLEDGED)

    def _on_reinvite(self, tx: InviteServerTransaction) -> None:
        """A re-INVITE (hold, resume, new address): take the new offer, answer with ours.

        A change of the phone's direction (hold, resume) is reported to the handler and, on a
        bridged leg, relayed to the other leg by the endpoint.
        """
        request = tx.request
        if self.state not in (CallState.ANSWERED, CallState.CONNECTED):
            tx.reply(491 if self.state is not CallState.ENDED else 481)
            return
        if self._reinvite_client is not None:
            # Glare (§14.2): our own re-INVITE is pending on this dialog.
            tx.reply(491)
            return
        before = self.peer_direction
        if request.body:
            try:
                offer = negotiate(
                    SessionDescription.parse(request.body), self._endpoint.config.codecs
                )
            except MalformedSdp:
                tx.reply(400, "Bad Request (SDP)")
                return
            except NoCommonCodec:
                tx.reply(488)
                return
            self.offer = offer
            self.media.configure(offer)
            self.peer_direction = offer.effective_direction
            self._offered_direction = None  # the phone spoke: our next wish is worth offering
            direction = answer_direction(self.peer_direction, self.wanted_direction)
            self.media.direction = negotiated(direction, self.peer_direction)
        else:
            direction = self.wanted_direction  # an offerless re-INVITE: the ACK answers ours
        self._sdp_version += 1
        contact = self._endpoint.contact_for(self.dialog.remote_address)
        headers = [("Contact", str(contact)), ("Content-Type", "application/sdp")]
        tx.reply(200, headers=headers, body=self._local_sdp(direction))
        self._reinvite_server = tx
        self._endpoint._watch_reinvite(self, tx)
        if self.peer_direction is not before:
            log.info("call %s: phone says %s", self.id, self.peer_direction.value)
            self._endpoint._peer_direction_changed(
                self, HoldChanged(call_id=self.id, direction=self.peer_direction)
            )

    def _on_reinvite_ack(self, request: SipRequest) -> None:
        """The ACK of our 2xx to a re-INVITE: stop retransmitting; an offerless one's answer."""
        tx = self._reinvite_server
        if tx is None or tx.request.cseq.number != request.cseq.number:
            return
        tx.ack_received()
        self._reinvite_server = None
        self._endpoint._unwatch_reinvite(tx)
        if not tx.request.body and request.body:
            answer = self._answer_in(request.body)
            if answer is not None:
                self.offer = answer
                self.media.configure(answer)
                self.media.direction = negotiated(self._local_direction, answer.effective_direction)

    # -- hold: our own re-INVITEs -------------------------------------------------------------

    def set_direction(self, wanted: Direction) -> None:
        """Say `wanted` to the phone from now on (re-INVITE it if that changes what flows).

        Used by bridges: when one leg's phone holds, the other leg is offered the same
        direction (sendonly or inactive), and sendrecv again on resume. Changes coalesce: one
        re-INVITE at a time carries the latest wish.
        """
        self.wanted_direction = wanted
        if self.state is CallState.ENDED:
            return
        idle = self._direction_task is None or self._direction_task.done()
        connected = self.state is CallState.CONNECTED
        if idle and connected and self._expected_flow(wanted) == self.media.direction:
            return  # nothing to tell the phone (the usual case for a fresh bridge)
        if idle:
            self._direction_task = self._endpoint.tasks.spawn(
                self._sync_direction(), name=f"direction-{self.id}"
            )

    def _expected_flow(self, wanted: Direction) -> Direction:
        # What would flow if we offered `wanted` and the phone answered as it wishes.
        return negotiated(wanted, answer_direction(wanted, self.peer_direction))

    async def _sync_direction(self) -> None:
        await self.confirmed.wait()
        tries = 0
        while self.state is CallState.CONNECTED and tries < _REINVITE_TRIES:
            wanted = self.wanted_direction
            if self._expected_flow(wanted) == self.media.direction:
                return
            if wanted is self._offered_direction:
                return  # offered already; the phone answered otherwise, which it may
            status = await self._send_reinvite(wanted)
            if status == 491:
                # §14.1: glare; the owner of the Call-ID waits 2.1-4 s, the other 0-2 s.
                tries += 1
                mine = self.direction is CallDirection.OUTBOUND
                await asyncio.sleep(random.uniform(2.1, 4.0) if mine else random.uniform(0, 2))
                continue
            self._offered_direction = wanted
            if status is None or status in (408, 481):
                log.warning("call %s: re-INVITE got %s; ending the call", self.id, status)
                await self.hangup()
                return
            if status >= 300:
                log.info("call %s: re-INVITE refused (%d); media unchanged", self.id, status)
                return

    async def _send_reinvite(self, direction: Direction) -> int | None:
        """Offer `direction` in a re-INVITE; the final status (None when none came)."""
        self._sdp_version += 1
        invite = self.dialog.new_request(
            SipMethod.INVITE,
            self._endpoint.via_for(self.dialog.remote_address),
            self._endpoint.contact_for(self.dialog.remote_address),
            body=self._local_sdp(direction),
            content_type="application/sdp",
        )
        invite.headers.add("Allow", self._endpoint.allow)
        tx = self._endpoint.layer.invite(
            invite, self.dialog.remote_address, None, self._on_reinvite_success
        )
        self._reinvite_client = tx
        try:
            response = await asyncio.shield(tx.result)
        except TransactionTimeout:
            return None
        finally:
            self._reinvite_client = None
        return response.status

    def _on_reinvite_success(self, response: SipResponse) -> None:
        cseq = response.cseq.number
        ack = self._reinvite_acks.get(cseq)
        if ack is not None:
            # A retransmitted 2xx: our ACK was lost; send it again (§13.2.2.4).
            self._endpoint.transport.send_bytes(ack, self.dialog.remote_address)
            return
        request = self.dialog.new_request(
            "ACK",
            self._endpoint.via_for(self.dialog.remote_address),
            self._endpoint.contact_for(self.dialog.remote_address),
            cseq=cseq,
        )
        ack = request.to_bytes()
        self._reinvite_acks = {cseq: ack}  # only the latest re-INVITE's ACK can still be asked
        self._endpoint.transport.send_bytes(ack, self.dialog.remote_address)
        if self.state is CallState.ENDED:
            return
        try:
            answer = negotiate(
                SessionDescription.parse(response.body), self._endpoint.config.codecs
            )
        except (MalformedSdp, NoCommonCodec) as exc:
            log.warning("call %s: unusable SDP in re-INVITE answer (%s)", self.id, exc)
            return
        self.offer = answer
        self.media.configure(answer)
        self.media.direction = negotiated(self._local_direction, answer.effective_direction)

    # -- requests inside the dialog -------------------------------------------------------------

    def send_request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> ClientTransaction:
        """Send a non-INVITE request inside this leg's dialog (NOTIFY, INFO, OPTIONS)."""
        self._require(CallState.ANSWERED, CallState.CONNECTED)
        request = self.dialog.new_request(
            method,
            self._endpoint.via_for(self.dialog.remote_address),
            self._endpoint.contact_for(self.dialog.remote_address),
            body=body,
            content_type=content_type,
        )
        for name, value in headers:
            request.headers.add(name, value)
        return self._endpoint.fire_and_forget(request, self.dialog.remote_address)

    # -- outbound -------------------------------------------------------------------------------

    def _start_invite(self, invite: SipRequest) -> None:
        tx = self._endpoint.layer.invite(
            invite, self.dialog.remote_address, self._on_provisional, self._on_success
        )
        self.invite_client = tx
        tx.result.add_done_callback(self._on_invite_result)

    def _on_provisional(self, response: SipResponse) -> None:
        self._provisional_seen = True
        if self._cancel_requested:
            self._send_cancel()
            return
        if response.status in (180, 183):
            if self.state is CallState.CALLING:
                self._move(CallState.RINGING)
            if self.on_ringing is not None:
                try:
                    self.on_ringing(response.status)
                except Exception:
                    log.exception("call %s: ringing callback failed", self.id)

    def _on_success(self, response: SipResponse) -> None:
        if response.cseq.number != self.invite_cseq:
            self._on_reinvite_success(response)
            return
        if self._ack is not None:
            # A retransmitted 2xx: our ACK was lost, send it again (§13.2.2.4).
            self._endpoint.transport.send_bytes(self._ack, self.dialog.remote_address)
            return
        dialog = self.dialog
        dialog.remote_tag = response.to_addr.tag
        contacts = response.contacts
        if contacts:
            dialog.remote_target = contacts[0].uri
        dialog.route_set = list(reversed(response.headers.get_all("Record-Route")))
        ack = dialog.new_request(
            "ACK",
            self._endpoint.via_for(self.dialog.remote_address),
            self._endpoint.contact_for(self.dialog.remote_address),
            cseq=self.invite_cseq,
        )
        self._ack = ack.to_bytes()
        self._endpoint.transport.send_bytes(self._ack, dialog.remote_address)
        self._endpoint._register_dialog(self)
        if self._cancel_requested or self.state is CallState.ENDED:
            # Answered after we gave up on it: confirm, then end it properly.
            self._send_bye()
            self._end(EndReason.CANCELLED)
            return
        try:
            answer = negotiate(
                SessionDescription.parse(response.body), self._endpoint.config.codecs
            )
        except (MalformedSdp, NoCommonCodec) as exc:
            log.warning("call %s: unusable SDP answer (%s); hanging up", self.id, exc)
            self._send_bye()
            self._end(EndReason.REJECTED, 488)
            self.answered.set_exception(CallFailed("unusable SDP answer", status=488))
            return
        self.offer = answer
        self.media.configure(answer)
        self.peer_direction = answer.effective_direction
        self.media.direction = negotiated(self._local_direction, self.peer_direction)
        self._move(CallState.CONNECTED)
        self.answered_at = now()
        if not self.answered.done():
            self.answered.set_result(None)

    def _on_invite_result(self, future: asyncio.Future[SipResponse]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self._end(EndReason.TIMEOUT, 408)
            if not self.answered.done():
                self.answered.set_exception(CallFailed("no response to INVITE", status=408))
            return
        response = future.result()
        if response.status >= 300:
            reason = _STATUS_REASONS.get(response.status, EndReason.REJECTED)
            if self._cancel_requested:
                reason = self.end_reason or EndReason.CANCELLED
            self._end(reason, response.status)
            if not self.answered.done():
                self.answered.set_exception(
                    CallFailed(
                        f"call refused: {response.status} {response.reason}", status=response.status
                    )
                )

    @property
    def invite_cseq(self) -> int:
        """The CSeq number of the INVITE that created this leg."""
        if self.invite_client is not None:
            return self.invite_client.request.cseq.number
        assert self.invite_tx is not None
        return self.invite_tx.request.cseq.number

    def cancel(self, reason: EndReason = EndReason.CANCELLED) -> None:
        """Stop ringing an outbound call: CANCEL now, or as soon as the callee said 1xx."""
        if self.direction is not CallDirection.OUTBOUND or self.state not in (
            CallState.CALLING,
            CallState.RINGING,
        ):
            return
        self._cancel_requested = True
        if self._provisional_seen:
            self._send_cancel()
        # The caller of `cancel` is done with this leg now; the transaction finishes the protocol.
        self._end(reason, 487)
        if not self.answered.done():
            self.answered.set_exception(CallFailed("cancelled", status=487))

    def _send_cancel(self) -> None:
        tx = self.invite_client
        if tx is None or self._cancel_sent:
            return
        self._cancel_sent = True
        invite = tx.request
        headers = Headers()
        headers.add("Via", invite.headers.get_all("Via")[0])
        for route in invite.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", invite.headers.get("From") or "")
        headers.add("To", invite.headers.get("To") or "")
        headers.add("Call-ID", invite.call_id)
        headers.add("CSeq", f"{invite.cseq.number} CANCEL")
        cancel = SipRequest(headers=headers, method="CANCEL", uri=invite.uri)
        self._endpoint.fire_and_forget(cancel, self.dialog.remote_address)

    # -- both directions ------------------------------------------------------------------------

    def _send_bye(self) -> ClientTransaction:
        where = self.dialog.remote_address
        bye = self.dialog.new_request(
            "BYE", self._endpoint.via_for(where), self._endpoint.contact_for(where)
        )
        return self._endpoint.fire_and_forget(bye, self.dialog.remote_address)

    async def hangup(self, reason: EndReason = EndReason.LOCAL_HANGUP) -> None:
        """End the leg however far it got; hanging up an ended call does nothing."""
        if self.state is CallState.ENDED:
            return
        if (
            self.state in (CallState.OFFERED, CallState.RINGING)
            and self.direction is CallDirection.INBOUND
        ):
            assert self.invite_tx is not None
            status = 503 if reason is EndReason.SHUTDOWN else 480
            self.invite_tx.reply(status, to_tag=self.dialog.local_tag)
            self._end(reason, status)
            return
        if self.state in (CallState.CALLING, CallState.RINGING):
            self.cancel(reason)
            return
        tx = self._send_bye()
        self._end(reason)
        try:
            async with asyncio.timeout(_BYE_WAIT):
                await asyncio.shield(tx.result)
        except (TimeoutError, Exception) as exc:  # the leg is ended either way
            log.debug("call %s: BYE not confirmed: %r", self.id, exc)

    def _end(self, reason: EndReason, status: int | None = None) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.end_reason = reason
        self.end_status = status
        self._cancel_timer()
        self.confirmed.set()  # wakes a direction sync waiting for the ACK; it sees ENDED
        task = self._direction_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        if self._call_recorder is not None:
            self._call_recorder.stop()
            self.media.call_recorder = None
            self._call_recorder = None
        if self._reinvite_server is not None:
            self._endpoint._unwatch_reinvite(self._reinvite_server)
            self._reinvite_server = None
        if self.relay is not None:
            self._endpoint._release_bridge(self.relay)
            self.relay = None
        recording = self.media.recording
        self._endpoint.playout.stop(self.media)
        self.media.close()
        if recording is not None:
            recording.updated.set()
        self.ended.set()
        self._digit_arrived.set()
        self._endpoint._forget(self)
        self._endpoint._notify_ended(self, CallEnded(call_id=self.id, reason=reason, status=status))

    # -- DTMF -------------------------------------------------------------------------------------

    def _on_rtp_digit(self, digit: str) -> None:
        self._on_digit(digit, DtmfMethod.RFC4733)

    def _on_digit(self, digit: str, method: DtmfMethod) -> None:
        if self.state is CallState.ENDED:
            return
        self._digits.append(digit)
        self._digit_arrived.set()
        self._endpoint._notify_digit(
            self, DtmfReceived(call_id=self.id, digit=digit, method=method)
        )

    async def collect_digits(
        self, *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str:
        """Digits keyed so far and until `max_digits`, the terminator, the timeout or hang-up."""
        collected = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(collected) < max_digits and self.state is not CallState.ENDED:
            if self._digits:
                digit = self._digits.popleft()
                if digit in terminator:
                    break
                collected += digit
                continue
            self._digit_arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    await self._digit_arrived.wait()
            except TimeoutError:
                break
        return collected

    def flush_digits(self) -> None:
        """Forget digits keyed so far (typed ahead during a prompt that should not take them)."""
        self._digits.clear()

    async def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Send digits to the peer as RFC 4733 events."""
        self._require(CallState.ANSWERED, CallState.CONNECTED)
        for digit in digits:
            await self.media.send_dtmf(digit, duration_ms)

    # -- media ------------------------------------------------------------------------------

    async def play(self, pcm: bytes) -> bool:
        """Play 8 kHz 16-bit PCM; True when it played to the end."""
        self._require(CallState.ANSWERED, CallState.CONNECTED)
        self.media.stop_playback()  # a prompt started on the session directly ends too
        return await self._endpoint.playout.play(self.media, pcm)

    async def play_wav(self, path: Path) -> bool:
        """Play a WAV prompt (8 kHz 16-bit mono); True when it played to the end."""
        pcm = await media_io.load_wav(path)
        return await self.play(pcm)

    def stop_playback(self) -> None:
        """Interrupt the prompt playing now."""
        self._endpoint.playout.stop(self.media)
        self.media.stop_playback()

    async def record(
        self,
        path: Path,
        *,
        max_seconds: float,
        silence_seconds: float | None = None,
        stop_digits: str = "#",
    ) -> float:
        """Record the peer to a WAV file until a stop digit, silence, hang-up or the limit.

        Returns the seconds recorded. The file is written off the loop, durably.
        """
        self._require(CallState.ANSWERED, CallState.CONNECTED)
        recording = media_io.Recording(max_seconds)
        self.media.recording = recording
        loop = asyncio.get_running_loop()
        started = last_audio = loop.time()
        seen = 0
        try:
            while not recording.full.is_set() and self.state is not CallState.ENDED:
                if loop.time() - started > max_seconds + 1:
                    break  # no audio arrived at all: the wall clock still bounds the recording
                if any(d in stop_digits for d in self._digits):
                    while self._digits:
                        if self._digits.popleft() in stop_digits:
                            break
                    break
                if len(recording.pcm) != seen:
                    seen = len(recording.pcm)
                    last_audio = loop.time()
                silence = max(recording.trailing_silence, loop.time() - last_audio)
                if silence_seconds is not None and silence >= silence_seconds and seen:
                    break
                await asyncio.sleep(0.05)
        finally:
            self.media.recording = None
        await media_io.save_wav(path, bytes(recording.pcm))
        return recording.seconds

    @property
    def call_recording(self) -> asyncio.Task[float] | None:
        """The running whole-call recording (its task returns the seconds written), if any."""
        return self._call_recording

    def start_call_recording(
        self, path: Path, *, max_seconds: float = _CALL_RECORDING_LIMIT
    ) -> asyncio.Task[float]:
        """Record both directions of this leg (mixed, mono WAV) until stopped or the end.

        What the phone says and everything it hears (the bridged party, prompts, music) go
        into the file; the returned task finishes once the WAV is written.
        """
        self._require(CallState.ANSWERED, CallState.CONNECTED)
        if self._call_recorder is not None:
            raise InvalidCallState("this call is already being recorded", call_id=self.id)
        recorder = media_io.CallRecorder(
            path, max_seconds=max_seconds, clock=asyncio.get_running_loop().time
        )
        self._call_recorder = recorder
        self.media.call_recorder = recorder
        task: asyncio.Task[float] = self._endpoint._track_recording(
            recorder.run(), f"call-recording-{self.id}"
        )
        self._call_recording = task
        return task

    async def stop_call_recording(self) -> float | None:
        """Stop the whole-call recording and wait for its WAV; its seconds (None if none ran)."""
        task = self._call_recording
        if task is None:
            return None
        self._call_recording = None
        if self._call_recorder is not None:
            self._call_recorder.stop()
            self.media.call_recorder = None
            self._call_recorder = None
        return await asyncio.shield(task)
