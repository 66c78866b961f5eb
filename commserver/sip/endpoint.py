"""The SIP endpoint: the controller that owns the socket, the transaction layer, the registrar
and every live call, and the handler interface through which the server hears about them.

    async with SipEndpoint(SipConfig(port=5060, credentials=lookup), handler) as endpoint:
        ...  # handler.call_offered(call, event) -> call.answer(); await call.play(...)

Handler methods are called synchronously, in network order, and must not block: like the
telephony backends' handler, they record the event or schedule work and return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from commserver.tasks import TaskSet

from .auth import AuthOutcome, CredentialLookup, DigestAuthenticator, FailureThrottle
from .call import CallDirection, CallState, SipCall
from .dialog import Dialog
from .errors import MalformedMessage, MalformedSdp, NoCommonCodec, NotRegistered, SipError
from .events import (
    CallEnded,
    CallOffered,
    DtmfMethod,
    DtmfReceived,
    EndReason,
    HoldChanged,
    RegistrationChanged,
    TransferRequested,
)
from .media_playout import Playout
from .message import (
    DEFAULT_LIMITS,
    Headers,
    NameAddress,
    ParseLimits,
    SipMethod,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from .refer import Transfer, TransferState, parse_refer_to
from .rtp import RtpPortRange, RtpRelay, RtpSession
from .sdp import Codec, Direction, MediaOffer, SessionDescription, build_sdp, negotiate
from .transaction import (
    ClientTransaction,
    InviteServerTransaction,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
)
from .transport import Address, SipStreamListener, SipTransport, Transports

log = logging.getLogger(__name__)

ALLOW = ", ".join(
    str(m)
    for m in (
        SipMethod.INVITE,
        SipMethod.ACK,
        SipMethod.BYE,
        SipMethod.CANCEL,
        SipMethod.OPTIONS,
        SipMethod.REGISTER,
        SipMethod.INFO,
        SipMethod.REFER,
    )
)


def _no_users(user: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class SipConfig:
    """Everything the endpoint needs to know; defaults suit a single-site server."""

    host: str = "127.0.0.1"
    port: int = 5060
    advertised_host: str | None = None
    media_host: str | None = None
    realm: str = "caruso"
    credentials: CredentialLookup = _no_users
    max_calls: int = 1000
    offer_timeout: float = 120.0
    codecs: tuple[Codec, ...] = (Codec.PCMU, Codec.PCMA)
    dtmf_payload_type: int = 101
    user_agent: str = "Caruso"
    timers: TimerConfig = field(default_factory=TimerConfig)
    limits: ParseLimits = DEFAULT_LIMITS
    nonce_ttl: float = 300.0
    auth_max_failures: int = 5
    auth_failure_window: float = 60.0
    auth_block_seconds: float = 300.0
    register_min_expires: int = 60
    register_max_expires: int = 3600
    binding_sweep_interval: float = 5.0
    reach_contacts_at_source: bool = False
    invite_requires_auth: Callable[[SipRequest], bool] | None = None
    """Decides per INVITE whether the caller must authenticate (e.g. calls to outside numbers)."""
    rtp_ports: tuple[int, int] | None = None
    """The UDP port range for media sockets (inclusive); None lets the system choose."""
    tcp: bool = True
    """Also take SIP over TCP on the same port (phones and trunks that prefer it)."""
    tcp_idle_timeout: float = 600.0
    """A TCP connection silent this long is closed (phones keep theirs alive by re-registering)."""


class SipHandler(Protocol):
    """What the server implements to hear from the endpoint. Calls are synchronous and quick."""

    def call_offered(self, call: SipCall, event: CallOffered) -> None:
        """A new inbound call: answer, ring or reject it now or later (it rings until then)."""

    def dtmf_received(self, call: SipCall, event: DtmfReceived) -> None:
        """A key press on a call (also buffered on the call for `collect_digits`)."""

    def call_ended(self, call: SipCall, event: CallEnded) -> None:
        """A call leg is over."""

    def registration_changed(self, event: RegistrationChanged) -> None:
        """A phone registered, unregistered or expired."""

    def hold_changed(self, call: SipCall, event: HoldChanged) -> None:
        """A phone put its leg on hold or took it off (already relayed across a bridge)."""

    def transfer_requested(self, transfer: Transfer, event: TransferRequested) -> None:
        """A phone sent REFER: `transfer.accept()`, `reject(...)` or `challenge()` now."""


class BaseSipHandler:
    """A handler that refuses calls (480) and ignores everything else; subclass what you need."""

    def call_offered(self, call: SipCall, event: CallOffered) -> None:
        """Refuse: nobody is there to take calls."""
        call.reject(480)

    def dtmf_received(self, call: SipCall, event: DtmfReceived) -> None:
        """Ignore."""

    def call_ended(self, call: SipCall, event: CallEnded) -> None:
        """Ignore."""

    def registration_changed(self, event: RegistrationChanged) -> None:
        """Ignore."""

    def hold_changed(self, call: SipCall, event: HoldChanged) -> None:
        """Ignore."""

    def transfer_requested(self, transfer: Transfer, event: TransferRequested) -> None:
        """Refuse: nobody here carries out transfers."""
        transfer.reject(603)


def _retrieve(future: asyncio.Future[SipResponse]) -> None:
    if not future.cancelled():
        future.exception()


class SipEndpoint:
    """Controller of the embedded SIP server: start, ready, stop; calls in and out."""

    def __init__(self, config: SipConfig, handler: SipHandler) -> None:
        from .registrar import Registrar

        self.config = config
        self.handler = handler
        throttle = FailureThrottle(
            config.auth_max_failures, config.auth_failure_window, config.auth_block_seconds
        )
        self.authenticator = DigestAuthenticator(
            config.realm, config.credentials, nonce_ttl=config.nonce_ttl, throttle=throttle
        )
        self.registrar = Registrar(
            self.authenticator,
            min_expires=config.register_min_expires,
            max_expires=config.register_max_expires,
        )
        self.allow = ALLOW
        self.tasks = TaskSet("sip")
        # Whole-call recordings finish writing their WAV after the call; a drain waits for them.
        self.recordings = TaskSet("sip-recordings")
        self._calls: dict[str, SipCall] = {}
        self._dialogs: dict[tuple[str, str, str], SipCall] = {}
        self._by_invite: dict[int, SipCall] = {}
        # The two legs of each bridge, so ending a leg finds its partner without a scan.
        self._bridges: dict[RtpRelay, tuple[SipCall, SipCall]] = {}
        self.playout = Playout()  # every call's prompts and music, on one 20 ms clock
        self._transport: SipTransport | None = None
        self._stream: SipStreamListener | None = None
        self._transports: Transports | None = None
        self._layer: TransactionLayer | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._accepting = False
        self._address: Address | None = None
        self.rtp_ports = RtpPortRange(*config.rtp_ports) if config.rtp_ports else None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the sockets and return once the endpoint answers an OPTIONS probe."""
        loop = asyncio.get_running_loop()
        await self._bind()
        assert self._transports is not None
        self._layer = TransactionLayer(self._transports, self, self.config.timers, self._decorate)
        self._accepting = True
        self._sweeper = loop.call_later(self.config.binding_sweep_interval, self._sweep)
        try:
            await self._probe()
        except BaseException:
            await self.stop()
            raise
        kinds = "udp+tcp" if self._stream is not None else "udp"
        log.info("SIP endpoint ready on %s:%d/%s", *self.address, kinds)

    async def _bind(self) -> None:
        """The UDP socket, and the TCP listener on the same port number when it is free."""
        loop = asyncio.get_running_loop()
        # With port 0 the system picks a UDP port whose TCP twin may be taken: try a few.
        tries = 5 if self.config.port == 0 and self.config.tcp else 1
        for attempt in range(tries):
            _, transport = await loop.create_datagram_endpoint(
                lambda: SipTransport(
                    self._receive_request, self._receive_response, self.config.limits
                ),
                local_addr=(self.config.host, self.config.port),
            )
            address = transport.local_address
            stream: SipStreamListener | None = None
            if self.config.tcp:
                stream = SipStreamListener(
                    self._receive_request,
                    self._receive_response,
                    self.config.limits,
                    idle_timeout=self.config.tcp_idle_timeout,
                )
                try:
                    await stream.start(self.config.host, address[1])
                except OSError as exc:
                    stream = None
                    if attempt + 1 < tries:
                        transport.close()
                        continue
                    # UDP is what phones need; TCP is an extra a busy port must not cost us.
                    log.warning(
                        "SIP over TCP unavailable on port %d (%s): UDP only", address[1], exc
                    )
            self._transport, self._stream, self._address = transport, stream, address
            self._transports = Transports(transport, stream)
            return

    async def _probe(self) -> None:
        # Ready means answering: send ourselves an OPTIONS from a scratch socket.
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bytes] = loop.create_future()

        class _Probe(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Address) -> None:
                if not answered.done():
                    answered.set_result(data)

        probe_transport, _ = await loop.create_datagram_endpoint(
            _Probe, local_addr=(self.config.host, 0)
        )
        try:
            local = probe_transport.get_extra_info("sockname")
            headers = Headers()
            headers.add("Via", f"SIP/2.0/UDP {local[0]}:{local[1]};branch={new_branch()}")
            headers.add("Max-Forwards", "70")
            headers.add("From", f"<sip:probe@{local[0]}:{local[1]}>;tag={new_tag()}")
            headers.add("To", f"<sip:{self.host}:{self.address[1]}>")
            headers.add("Call-ID", new_call_id(self.host))
            headers.add("CSeq", "1 OPTIONS")
            probe = SipRequest(
                headers=headers,
                method=SipMethod.OPTIONS,
                uri=SipUri(host=self.host, port=self.address[1]),
            )
            for _ in range(10):
                probe_transport.sendto(probe.to_bytes(), self.address)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        data = await asyncio.shield(answered)
                        reply = parse_message(data)
                        if isinstance(reply, SipResponse) and reply.status == 200:
                            return
            raise SipError("the SIP endpoint did not answer its own OPTIONS probe")
        finally:
            probe_transport.close()

    def stop_accepting(self) -> None:
        """Refuse new calls with 503 while live ones go on (the first step of a drain)."""
        self._accepting = False

    async def stop(self, timeout: float = 5.0) -> None:
        """Drain: refuse new calls, hang up live ones (BYE/CANCEL/503), then close everything."""
        self._accepting = False
        calls = list(self._calls.values())
        if calls:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(
                        *(call.hangup(EndReason.SHUTDOWN) for call in calls),
                        return_exceptions=True,
                    )
            except TimeoutError:
                log.warning("SIP shutdown: %d calls did not hang up in time", len(self._calls))
        for call in list(self._calls.values()):
            call._end(EndReason.SHUTDOWN)
        await self.recordings.drain(timeout)
        await self.recordings.cancel_all()
        await self.tasks.cancel_all()
        self.playout.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._layer is not None:
            self._layer.close()
        if self._stream is not None:
            await self._stream.close()
        if self._transport is not None:
            self._transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._transport.closed.wait()

    async def __aenter__(self) -> SipEndpoint:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what calls and tests need --------------------------------------------------------------

    @property
    def address(self) -> Address:
        """The bound SIP address (host, port)."""
        assert self._address is not None, "endpoint not started"
        return self._address

    @property
    def host(self) -> str:
        """The host we put in Via, Contact and SDP."""
        return self.config.advertised_host or self.address[0]

    @property
    def media_address(self) -> str:
        """The address put in SDP for our media."""
        return self.config.advertised_host or self.config.media_host or self.config.host

    @property
    def contact(self) -> NameAddress:
        """Our Contact (for UDP)."""
        return NameAddress(SipUri(host=self.host, user="caruso", port=self.address[1]))

    @property
    def via(self) -> Via:
        """Our Via sent-by for UDP (each request gets its own branch)."""
        return Via("UDP", self.host, self.address[1])

    def contact_for(self, peer: Address) -> NameAddress:
        """Our Contact for messages to `peer`: with transport=tcp when it is a TCP peer."""
        if not self.transport.is_reliable(peer):
            return self.contact
        uri = SipUri(
            host=self.host, user="caruso", port=self.address[1], params=(("transport", "tcp"),)
        )
        return NameAddress(uri)

    def via_for(self, peer: Address) -> Via:
        """Our Via for requests to `peer` (its transport is the one they travel on)."""
        return Via(self.transport.name_for(peer), self.host, self.address[1])

    @property
    def layer(self) -> TransactionLayer:
        """The transaction layer."""
        assert self._layer is not None, "endpoint not started"
        return self._layer

    @property
    def transport(self) -> Transports:
        """The SIP sockets: UDP, and TCP when enabled."""
        assert self._transports is not None, "endpoint not started"
        return self._transports

    @property
    def calls(self) -> Mapping[str, SipCall]:
        """Live call legs by Call-ID."""
        return self._calls

    def get_call(self, call_id: str) -> SipCall | None:
        """A live call leg by Call-ID."""
        return self._calls.get(call_id)

    def fire_and_forget(self, request: SipRequest, destination: Address) -> ClientTransaction:
        """Send a non-INVITE request whose outcome nobody needs to await (BYE, CANCEL)."""
        tx = self.layer.request(request, destination)
        tx.result.add_done_callback(_retrieve)
        return tx

    def _decorate(self, response: SipResponse) -> None:
        response.headers.add("Server", self.config.user_agent)

    def _sweep(self) -> None:
        for change in self.registrar.expire():
            log.info("registration of %s at %s expired", change.aor, change.contact)
            self._report_registration(change)
        self._sweeper = asyncio.get_running_loop().call_later(
            self.config.binding_sweep_interval, self._sweep
        )

    # -- handler notifications --------------------------------------------------------------

    def _safely(self, action: Callable[[], None]) -> bool:
        try:
            action()
        except Exception:
            log.exception("SIP handler failed")
            return False
        return True

    def _report_registration(self, change: RegistrationChanged) -> None:
        self._safely(lambda: self.handler.registration_changed(change))

    def _notify_digit(self, call: SipCall, event: DtmfReceived) -> None:
        self._safely(lambda: self.handler.dtmf_received(call, event))

    def _notify_ended(self, call: SipCall, event: CallEnded) -> None:
        self._safely(lambda: self.handler.call_ended(call, event))

    def _peer_direction_changed(self, call: SipCall, event: HoldChanged) -> None:
        # B2BUA hold: the other leg of a bridge is offered what this phone asked for.
        if call.relay is not None:
            for leg in self._calls_by_relay(call.relay):
                if leg is not call:
                    leg.set_direction(call.peer_direction)
        self._safely(lambda: self.handler.hold_changed(call, event))

    def _track_recording(self, coro: Coroutine[Any, Any, float], name: str) -> asyncio.Task[float]:
        task: asyncio.Task[float] = self.recordings.spawn(coro, name=name)
        return task

    # -- bookkeeping ------------------------------------------------------------------------------

    def _register_dialog(self, call: SipCall) -> None:
        self._dialogs[call.dialog.key] = call

    def _forget(self, call: SipCall) -> None:
        if self._calls.get(call.id) is call:
            del self._calls[call.id]
        if self._dialogs.get(call.dialog.key) is call:
            del self._dialogs[call.dialog.key]
        if call.invite_tx is not None:
            self._by_invite.pop(id(call.invite_tx), None)

    def _watch_reinvite(self, call: SipCall, tx: InviteServerTransaction) -> None:
        # So that a re-INVITE's 2xx nobody ACKs reaches the call (on_unacknowledged).
        self._by_invite[id(tx)] = call

    def _unwatch_reinvite(self, tx: InviteServerTransaction) -> None:
        self._by_invite.pop(id(tx), None)

    def find_dialog(self, call_id: str, local_tag: str, remote_tag: str) -> SipCall | None:
        """The live leg of a dialog; the tags are tried in both orders (peers differ on it)."""
        for key in ((call_id, local_tag, remote_tag), (call_id, remote_tag, local_tag)):
            call = self._dialogs.get(key)
            if call is not None and call.state is not CallState.ENDED:
                return call
        return None

    def _calls_by_relay(self, relay: RtpRelay) -> list[SipCall]:
        return [c for c in self._bridges.get(relay, ()) if c.relay is relay]

    def _release_bridge(self, relay: RtpRelay) -> None:
        """Stop `relay` and detach both its legs from it."""
        relay.stop()
        for leg in self._bridges.pop(relay, ()):
            if leg.relay is relay:
                leg.relay = None

    # -- transaction user -------------------------------------------------------------------------

    def _receive_request(self, request: SipRequest, source: Address) -> None:
        self.layer.receive_request(request, source)

    def _receive_response(self, response: SipResponse, source: Address) -> None:
        self.layer.receive_response(response, source)

    def on_request(self, tx: ServerTransaction) -> None:
        """Dispatch a new request by method and dialog."""
        request = tx.request
        max_forwards = request.headers.get("Max-Forwards")
        if max_forwards is not None and int(max_forwards) == 0 and request.method != "OPTIONS":
            tx.reply(483, to_tag=new_tag())
            return
        required = request.headers.get("Require")
        if required and request.method not in (SipMethod.CANCEL, SipMethod.ACK):
            # We implement no extensions, so anything required is unsupported (§8.2.2.3).
            tx.reply(420, to_tag=new_tag(), headers=[("Unsupported", required)])
            return
        to_tag = request.to_addr.tag
        if to_tag:
            self._in_dialog(tx, to_tag)
            return
        method = request.method
        if method == SipMethod.INVITE:
            assert isinstance(tx, InviteServerTransaction)
            self._new_invite(tx)
        elif method == SipMethod.REGISTER:
            self._register(tx)
        elif method == SipMethod.OPTIONS:
            tx.reply(
                200,
                to_tag=new_tag(),
                headers=[("Allow", self.allow), ("Accept", "application/sdp")],
            )
        elif method in (SipMethod.BYE, SipMethod.INFO, SipMethod.NOTIFY, SipMethod.UPDATE):
            tx.reply(481, to_tag=new_tag())
        else:
            tx.reply(501, to_tag=new_tag(), headers=[("Allow", self.allow)])

    def _register(self, tx: ServerTransaction) -> None:
        response, changes = self.registrar.handle(tx.request, tx.source)
        self._decorate(response)
        tx.respond(response)
        for change in changes:
            log.info("%s %s at %s", change.aor, change.state.value, change.contact)
            self._report_registration(change)

    def _in_dialog(self, tx: ServerTransaction, to_tag: str) -> None:
        request = tx.request
        key = (request.call_id, to_tag, request.from_addr.tag or "")
        call = self._dialogs.get(key)
        if call is None or call.state is CallState.ENDED:
            tx.reply(481)
            return
        dialog = call.dialog
        cseq = request.cseq.number
        if dialog.remote_seq is not None and cseq < dialog.remote_seq:
            tx.reply(500, "Server Internal Error (CSeq out of order)")
            return
        dialog.remote_seq = cseq
        method = request.method
        if method == SipMethod.BYE:
            tx.reply(200)
            call._end(EndReason.REMOTE_BYE)
        elif method == SipMethod.INVITE:
            assert isinstance(tx, InviteServerTransaction)
            call._on_reinvite(tx)
        elif method == SipMethod.INFO:
            digit = _info_digit(request)
            tx.reply(200)
            if digit is not None:
                call._on_digit(digit, DtmfMethod.SIP_INFO)
        elif method == SipMethod.OPTIONS:
            tx.reply(200, headers=[("Allow", self.allow)])
        elif method == SipMethod.REFER:
            self._refer(call, tx)
        else:
            tx.reply(501, headers=[("Allow", self.allow)])

    def _refer(self, call: SipCall, tx: ServerTransaction) -> None:
        """A REFER on a call (RFC 3515): checked here, decided by the handler."""
        request = tx.request
        if call.state is not CallState.CONNECTED:
            tx.reply(491 if call.state is CallState.ANSWERED else 481)
            return
        values = request.headers.get_all("Refer-To")
        if len(values) != 1:
            tx.reply(400, "Bad Request (exactly one Refer-To)")
            return
        try:
            target, replaces = parse_refer_to(values[0])
        except MalformedMessage as exc:
            if not values[0].strip().strip("<").lower().startswith(("sip:", "sips:")):
                tx.reply(416)  # tel: and others: we route by SIP URIs only
            else:
                tx.reply(400, f"Bad Request (Refer-To: {exc.message})")
            return
        user: str | None = None
        credentials = request.headers.get("Proxy-Authorization")
        if credentials is not None:
            result = self.authenticator.verify(
                credentials, method=request.method, request_uri=request.uri, source=tx.source[0]
            )
            if result.outcome in (AuthOutcome.FAILED, AuthOutcome.BLOCKED):
                tx.reply(403)
                return
            if result.outcome is AuthOutcome.STALE:
                challenge = self.authenticator.challenge(stale=True)
                tx.reply(407, headers=[("Proxy-Authenticate", challenge)])
                return
            if result.outcome is AuthOutcome.OK:
                user = result.username
        event = TransferRequested(
            call_id=call.id,
            target=str(target),
            target_user=target.user or "",
            replaces=replaces,
            referred_by=request.headers.get("Referred-By") or "",
            authenticated_user=user,
        )
        transfer = Transfer(
            call,
            tx,
            event,
            subscribe=(request.headers.get("Refer-Sub") or "").strip().lower() != "false",
            challenge=self.authenticator.challenge(),
        )
        log.info("call %s: REFER to %s%s", call.id, target, " (attended)" if replaces else "")
        self._safely(lambda: self.handler.transfer_requested(transfer, event))
        if transfer.state is TransferState.PENDING:
            log.warning("call %s: REFER left undecided by the handler; declined", call.id)
            transfer.reject(603)

    def _new_invite(self, tx: InviteServerTransaction) -> None:
        request = tx.request
        if not self._accepting:
            tx.reply(503, to_tag=new_tag(), headers=[("Retry-After", "5")])
            return
        if len(self._calls) >= self.config.max_calls:
            log.warning(
                "call cap of %d reached; refusing %s", self.config.max_calls, request.call_id
            )
            tx.reply(503, "Service Unavailable (call limit)", to_tag=new_tag())
            return
        if request.call_id in self._calls:
            # Same Call-ID, new transaction, no To-tag: a merged or looped request (§8.2.2.2).
            tx.reply(482, to_tag=new_tag())
            return
        if request.body and request.content_type != "application/sdp":
            tx.reply(415, to_tag=new_tag(), headers=[("Accept", "application/sdp")])
            return
        authenticated: str | None = None
        check = self.config.invite_requires_auth
        if check is not None and check(request):
            result = self.authenticator.verify(
                request.headers.get("Proxy-Authorization"),
                method=request.method,
                request_uri=request.uri,
                source=tx.source[0],
            )
            if result.outcome in (AuthOutcome.MISSING, AuthOutcome.STALE):
                challenge = self.authenticator.challenge(stale=result.outcome is AuthOutcome.STALE)
                tx.reply(407, to_tag=new_tag(), headers=[("Proxy-Authenticate", challenge)])
                return
            if result.outcome is not AuthOutcome.OK:
                tx.reply(403, to_tag=new_tag())
                return
            authenticated = result.username
        offer: MediaOffer | None = None
        if request.body:
            try:
                offer = negotiate(SessionDescription.parse(request.body), self.config.codecs)
            except MalformedSdp as exc:
                tx.reply(400, f"Bad Request ({exc.message})", to_tag=new_tag())
                return
            except NoCommonCodec:
                tx.reply(
                    488, to_tag=new_tag(), headers=[("Warning", '305 caruso "PCMU/PCMA only"')]
                )
                return
        self.tasks.spawn(
            self._offer_call(tx, offer, authenticated), name=f"invite-{request.call_id}"
        )

    async def _offer_call(
        self, tx: InviteServerTransaction, offer: MediaOffer | None, authenticated: str | None
    ) -> None:
        request = tx.request
        try:
            media = await RtpSession.open(
                self.config.media_host or self.config.host,
                codec=offer.codec if offer else self.config.codecs[0],
                dtmf_payload_type=(
                    offer.dtmf_payload_type if offer else self.config.dtmf_payload_type
                ),
                ports=self.rtp_ports,
            )
        except OSError as exc:
            # Out of ports or descriptors: refuse this call, keep serving the others.
            log.error("cannot open a media socket for %s: %s", request.call_id, exc)
            if tx.final_status is None:
                tx.reply(503, "Service Unavailable (no media port)", to_tag=new_tag())
            return
        if tx.final_status is not None or not self._accepting or request.call_id in self._calls:
            media.close()  # CANCELled (487 sent) or shutting down while the socket opened
            if tx.final_status is None:
                tx.reply(503, to_tag=new_tag())
            return
        if offer is not None:
            media.configure(offer)
        from_addr = request.from_addr
        contacts = request.contacts
        dialog = Dialog(
            call_id=request.call_id,
            local_tag=new_tag(),
            remote_tag=from_addr.tag,
            local=NameAddress(request.to_addr.uri, request.to_addr.display_name),
            remote=NameAddress(from_addr.uri, from_addr.display_name),
            remote_target=contacts[0].uri if contacts else from_addr.uri,
            remote_address=tx.source,
            local_seq=1,
            remote_seq=request.cseq.number,
            route_set=request.headers.get_all("Record-Route"),
        )
        call = SipCall(
            self,
            direction=CallDirection.INBOUND,
            dialog=dialog,
            media=media,
            caller=from_addr.uri.user or "",
            caller_name=from_addr.display_name,
            dialed=request.uri.user or "",
            offer=offer,
            authenticated_user=authenticated,
        )
        call.invite_tx = tx
        self._calls[call.id] = call
        self._dialogs[dialog.key] = call
        self._by_invite[id(tx)] = call
        call._set_timer(self.config.offer_timeout, call._offer_expired)
        event = CallOffered(
            call_id=call.id,
            caller=call.caller,
            caller_name=call.caller_name,
            dialed=call.dialed,
            source=tx.source,
            authenticated_user=authenticated,
            headers={
                name: value for name, value in request.headers if name not in ("Via", "Route")
            },
        )
        offered = self._safely(lambda: self.handler.call_offered(call, event))
        if not offered and call.state in (CallState.OFFERED, CallState.RINGING):
            call.reject(500)

    def on_ack(self, request: SipRequest, source: Address) -> None:
        """An ACK for a 2xx: confirm the dialog (or tolerate pyVoIP's wrong To-tag)."""
        to_tag = request.to_addr.tag or ""
        from_tag = request.from_addr.tag or ""
        cseq = request.cseq.number
        call = self._dialogs.get((request.call_id, to_tag, from_tag))
        if call is None:
            # pyVoIP sends its 2xx ACK with a random To-tag. Accept it only for an INVITE we
            # answered and whose ACK is still outstanding, with the same Call-ID, From-tag and
            # CSeq: nothing else about dialog matching is relaxed.
            candidate = self._calls.get(request.call_id)
            if (
                candidate is not None
                and candidate.direction is CallDirection.INBOUND
                and candidate.state is CallState.ANSWERED
                and (candidate.dialog.remote_tag or "") == from_tag
                and candidate.invite_cseq == cseq
            ):
                log.debug(
                    "ACK for %s matched by Call-ID and CSeq (To-tag %r)", request.call_id, to_tag
                )
                call = candidate
        if call is not None and call.invite_cseq != cseq:
            call._on_reinvite_ack(request)  # the ACK of a re-INVITE's 2xx (either direction)
            return
        if call is None or call.direction is not CallDirection.INBOUND:
            log.debug("ACK matched no call: %s", request.call_id)
            return
        call._on_ack(request)

    def on_cancel(self, invite: InviteServerTransaction) -> None:
        """A CANCEL for an INVITE: 487 it if still ringing."""
        call = self._by_invite.get(id(invite))
        if call is not None:
            call._on_cancel()
        elif invite.final_status is None:
            # The call object is still being set up; answer now, the setup task will see it.
            invite.reply(487, to_tag=new_tag())

    def on_unacknowledged(self, invite: InviteServerTransaction) -> None:
        """A 2xx we sent was never ACKed: end the call with a BYE."""
        call = self._by_invite.get(id(invite))
        if call is not None:
            call._on_unacknowledged(invite)

    def on_stray_response(self, response: SipResponse, source: Address) -> None:
        """A 2xx retransmission after the INVITE transaction ended: repeat the ACK."""
        if response.cseq.method != SipMethod.INVITE or not response.is_success:
            return
        with contextlib.suppress(MalformedMessage):
            key = (response.call_id, response.from_addr.tag or "", response.to_addr.tag or "")
            call = self._dialogs.get(key)
            if call is not None:
                call._on_success(response)

    # -- outbound calls and bridging --------------------------------------------------------------

    async def call(
        self,
        target: str | SipUri,
        *,
        caller: str = "caruso",
        caller_name: str = "",
        ring_timeout: float | None = None,
        destination: Address | None = None,
        headers: Iterable[tuple[str, str]] = (),
        on_ringing: Callable[[int], None] | None = None,
    ) -> SipCall:
        """Place a call and return the connected leg.

        `target` is an address-of-record registered here (e.g. '2001') or a SIP URI (a trunk
        destination). Raises `NotRegistered`, or `CallFailed` with the SIP status on refusal,
        no answer within `ring_timeout` (408) or cancellation (the INVITE is CANCELled).
        `on_ringing` hears each 180/183 the callee sends (e.g. to tell a transferor).
        """
        from .errors import CallFailed

        if isinstance(target, str):
            bindings = self.registrar.lookup(target)
            if not bindings:
                raise NotRegistered(f"{target} is not registered", aor=target)
            binding = bindings[0]
            request_uri = binding.contact
            to_uri = SipUri(host=self.host, user=target)
            # The Contact is where the phone said it listens; behind NAT only the source of
            # its REGISTER is reachable, which `reach_contacts_at_source` chooses instead.
            # A phone registered over TCP is reached on its own connection (RFC 5626's idea).
            natted = self.config.reach_contacts_at_source
            at_source = natted or self.transport.is_reliable(binding.source)
            where = destination or (binding.source if at_source else binding.contact.host_port)
        else:
            request_uri = target
            to_uri = SipUri(host=target.host, user=target.user, port=target.port)
            where = destination or target.host_port
        media = await RtpSession.open(
            self.config.media_host or self.config.host,
            codec=self.config.codecs[0],
            dtmf_payload_type=self.config.dtmf_payload_type,
            ports=self.rtp_ports,
        )
        call_id = new_call_id(self.host)
        dialog = Dialog(
            call_id=call_id,
            local_tag=new_tag(),
            remote_tag=None,
            local=NameAddress(SipUri(host=self.host, user=caller), caller_name),
            remote=NameAddress(to_uri),
            remote_target=request_uri,
            remote_address=where,
            local_seq=1,
        )
        call = SipCall(
            self,
            direction=CallDirection.OUTBOUND,
            dialog=dialog,
            media=media,
            caller=caller,
            caller_name=caller_name,
            dialed=to_uri.user or "",
        )
        call.on_ringing = on_ringing
        body = build_sdp(
            self.media_address,
            media.local_address[1],
            self.config.codecs,
            self.config.dtmf_payload_type,
            session_id=media.ssrc,
        )
        invite = dialog.new_request(
            SipMethod.INVITE,
            self.via_for(where),
            self.contact_for(where),
            cseq=1,
            body=body,
            content_type="application/sdp",
        )
        invite.headers.add("Allow", self.allow)
        invite.headers.add("User-Agent", self.config.user_agent)
        for name, value in headers:
            invite.headers.add(name, value)
        self._calls[call_id] = call
        call._start_invite(invite)
        try:
            async with asyncio.timeout(ring_timeout):
                await asyncio.shield(call.answered)
        except TimeoutError:
            call.cancel(EndReason.NO_ANSWER)
            raise CallFailed("no answer", status=408, target=str(request_uri)) from None
        except asyncio.CancelledError:
            call.cancel()
            raise
        return call

    def bridge(self, first: SipCall, second: SipCall) -> RtpRelay:
        """Join two answered legs' media (B2BUA relay); ending either leg stops the relay.

        Each leg is then offered what the other leg's phone wants: a phone that holds keeps
        its new partner on hold, and a leg we held for an earlier partner is taken off hold.
        """
        for leg in (first, second):
            leg._require(CallState.ANSWERED, CallState.CONNECTED)
            if leg.relay is not None:
                self.unbridge(leg, resume=False)
        relay = RtpRelay(first.media, second.media)
        relay.start()
        first.relay = second.relay = relay
        self._bridges[relay] = (first, second)
        first.set_direction(second.peer_direction)
        second.set_direction(first.peer_direction)
        return relay

    def unbridge(self, call: SipCall, *, resume: bool = True) -> None:
        """Stop the relay a leg is in (both legs stay up, taken off any hold we relayed)."""
        relay = call.relay
        if relay is None:
            return
        legs = self._calls_by_relay(relay)
        self._release_bridge(relay)
        for leg in legs:
            if resume and leg.state is not CallState.ENDED:
                leg.set_direction(Direction.SENDRECV)


def _info_digit(request: SipRequest) -> str | None:
    """The digit in a SIP INFO (application/dtmf-relay 'Signal=5', or application/dtmf '5')."""
    kind = request.content_type
    if kind not in ("application/dtmf-relay", "application/dtmf"):
        return None
    for line in request.body.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == "signal":
            candidate = value.strip()
        elif not sep and kind == "application/dtmf":
            candidate = name.strip()
        else:
            continue
        if len(candidate) == 1 and candidate.upper() in "0123456789*#ABCD":
            return candidate.upper()
    return None
