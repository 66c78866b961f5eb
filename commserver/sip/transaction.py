"""RFC 3261 §17 transactions over UDP and TCP (with RFC 6026's Accepted state), on loop timers.

Each transaction is a small state machine with explicit allowed transitions; its timers are
`loop.call_later` handles it owns and cancels when it terminates, so no task is ever spawned.
The transaction user (the endpoint) sees only new requests, 2xx ACKs, CANCELs and final
outcomes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from .errors import TransactionTimeout
from .message import (
    BRANCH_COOKIE,
    Headers,
    SipMethod,
    SipRequest,
    SipResponse,
    make_response,
)
from .transport import Address, Sender

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 timer values in seconds (T1 RTT estimate, T2 cap, T4 network lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L, M."""
        return 64 * self.t1


class TxState(enum.Enum):
    """Transaction states across the four kinds (RFC 3261 §17, RFC 6026)."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


_ALLOWED: dict[TxState, frozenset[TxState]] = {
    TxState.CALLING: frozenset({TxState.PROCEEDING, TxState.ACCEPTED, TxState.COMPLETED}),
    TxState.TRYING: frozenset({TxState.PROCEEDING, TxState.COMPLETED}),
    TxState.PROCEEDING: frozenset({TxState.ACCEPTED, TxState.COMPLETED}),
    TxState.ACCEPTED: frozenset(),
    TxState.COMPLETED: frozenset({TxState.CONFIRMED}),
    TxState.CONFIRMED: frozenset(),
    TxState.TERMINATED: frozenset(),
}


class TransactionUser(Protocol):
    """What sits above the transaction layer (the endpoint core)."""

    def on_request(self, tx: ServerTransaction) -> None:
        """A new request (not ACK, not CANCEL) opened a server transaction."""

    def on_ack(self, request: SipRequest, source: Address) -> None:
        """An ACK that no transaction absorbed: the ACK for a 2xx."""

    def on_cancel(self, invite: InviteServerTransaction) -> None:
        """A CANCEL matched this INVITE (already answered 200 to the CANCEL)."""

    def on_unacknowledged(self, invite: InviteServerTransaction) -> None:
        """A 2xx we sent was never acknowledged within 64*T1."""

    def on_stray_response(self, response: SipResponse, source: Address) -> None:
        """A response no client transaction is waiting for (a late 2xx retransmission)."""


TxKey = tuple[str, str, str]


def server_key(request: SipRequest) -> TxKey:
    """The server-transaction key of a request (RFC 3261 §17.2.3); ACK and CANCEL map to INVITE."""
    via = request.top_via
    method = SipMethod.INVITE if request.method == SipMethod.ACK else request.method
    branch = via.branch or ""
    host, port = via.sent_by
    if branch.startswith(BRANCH_COOKIE):
        return branch, f"{host}:{port}", str(method)
    # RFC 2543 peers: fall back to the dialog-ish identity of the request.
    from_tag = request.from_addr.tag or ""
    return (
        f"{request.call_id}|{from_tag}|{request.cseq.number}|{request.uri}",
        f"{host}:{port}",
        str(method),
    )


class Transaction:
    """Common timer ownership and state bookkeeping."""

    def __init__(self, layer: TransactionLayer, key: TxKey, state: TxState) -> None:
        self.layer = layer
        self.key = key
        self.state = state
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def _move(self, state: TxState) -> None:
        if state is TxState.TERMINATED:
            self.state = state
            return
        if state not in _ALLOWED[self.state]:
            raise RuntimeError(f"transaction cannot go {self.state.value} -> {state.value}")
        self.state = state

    def _start_timer(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer(name)
        self._timers[name] = self.layer.loop.call_later(delay, callback)

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def terminate(self) -> None:
        """End the transaction: cancel every timer and forget it."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.state = TxState.TERMINATED
        self.layer._forget(self)


class ServerTransaction(Transaction):
    """A non-INVITE server transaction (RFC 3261 §17.2.2)."""

    def __init__(self, layer: TransactionLayer, key: TxKey, request: SipRequest, source: Address):
        super().__init__(layer, key, TxState.TRYING)
        self.request = request
        self.source = source
        self.last_response: bytes | None = None
        # Over TCP the response goes back on the request's connection (§18.2.2); over UDP to
        # the Via's address (with received/rport, so NAT works).
        self.reliable = layer.transport.is_reliable(source)
        self.response_address = (
            source if self.reliable else request.top_via.response_address(source)
        )

    def respond(self, response: SipResponse) -> None:
        """Send a response and advance the state machine."""
        if self.state in (TxState.COMPLETED, TxState.CONFIRMED, TxState.TERMINATED):
            log.debug("late response %d ignored for %s", response.status, self.key)
            return
        self._send(response)
        if response.status >= 200:
            self._move(TxState.COMPLETED)
            # Timer J: absorb request retransmissions for 64*T1 over UDP.
            self._start_timer("J", self.layer.timers.timeout, self.terminate)
        elif self.state is TxState.TRYING:
            self._move(TxState.PROCEEDING)

    def reply(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> SipResponse:
        """Build and send a response to the request; returns it."""
        response = make_response(
            self.request, status, reason, to_tag=to_tag, headers=headers, body=body
        )
        self.layer.decorate(response)
        self.respond(response)
        return response

    def _send(self, response: SipResponse) -> None:
        self.last_response = response.to_bytes()
        self.layer.transport.send_bytes(self.last_response, self.response_address)

    def on_retransmission(self) -> None:
        """The request came again: repeat our last response, if any."""
        if self.last_response is not None and self.state is not TxState.TRYING:
            self.layer.transport.send_bytes(self.last_response, self.response_address)


class InviteServerTransaction(ServerTransaction):
    """The INVITE server transaction (RFC 3261 §17.2.1 with RFC 6026).

    It answers 100 Trying at once, retransmits a 2xx with T1 doubling (capped at T2) until the
    transaction user reports the ACK, and absorbs INVITE retransmissions throughout.
    """

    def __init__(self, layer: TransactionLayer, key: TxKey, request: SipRequest, source: Address):
        super().__init__(layer, key, request, source)
        self.state = TxState.PROCEEDING
        self.acknowledged = False
        self.final_status: int | None = None
        self._interval = layer.timers.t1
        self.reply(100)

    def respond(self, response: SipResponse) -> None:
        """Send a response; 2xx and error finals start their retransmission timers."""
        if self.state is not TxState.PROCEEDING:
            log.debug("late INVITE response %d ignored for %s", response.status, self.key)
            return
        self._send(response)
        if response.status < 200:
            return
        self.final_status = response.status
        timers = self.layer.timers
        self._interval = timers.t1
        if response.status < 300:
            self._move(TxState.ACCEPTED)
            self._start_timer("retransmit", self._interval, self._retransmit)
            # Timer L: stay to absorb INVITE retransmissions; give up on the ACK at 64*T1.
            self._start_timer("L", timers.timeout, self._accepted_timeout)
        else:
            self._move(TxState.COMPLETED)
            if not self.reliable:  # Timer G runs over UDP only (§17.2.1)
                self._start_timer("G", self._interval, self._retransmit)
            self._start_timer("H", timers.timeout, self.terminate)

    def _retransmit(self) -> None:
        if self.state is TxState.ACCEPTED and self.acknowledged:
            return
        if self.state not in (TxState.ACCEPTED, TxState.COMPLETED) or self.last_response is None:
            return
        self.layer.transport.send_bytes(self.last_response, self.response_address)
        self._interval = min(self._interval * 2, self.layer.timers.t2)
        name = "retransmit" if self.state is TxState.ACCEPTED else "G"
        self._start_timer(name, self._interval, self._retransmit)

    def _accepted_timeout(self) -> None:
        acknowledged = self.acknowledged
        self.terminate()
        if not acknowledged:
            self.layer.user.on_unacknowledged(self)

    def ack_received(self) -> None:
        """The transaction user matched the 2xx ACK: stop retransmitting."""
        self.acknowledged = True
        self._cancel_timer("retransmit")

    def on_ack(self) -> None:
        """An ACK for our error response (same branch): stop Timer G, linger for Timer I."""
        if self.state is TxState.COMPLETED:
            self._move(TxState.CONFIRMED)
            self._cancel_timer("G")
            self._cancel_timer("H")
            self._start_timer("I", self.layer.timers.t4, self.terminate)

    def on_retransmission(self) -> None:
        """Absorb a retransmitted INVITE, repeating a provisional or error response."""
        if self.state in (TxState.PROCEEDING, TxState.COMPLETED) and self.last_response:
            self.layer.transport.send_bytes(self.last_response, self.response_address)


class ClientTransaction(Transaction):
    """A non-INVITE client transaction (RFC 3261 §17.1.2): timers E, F, K."""

    def __init__(
        self,
        layer: TransactionLayer,
        request: SipRequest,
        destination: Address,
        on_provisional: Callable[[SipResponse], None] | None = None,
    ) -> None:
        branch = request.top_via.branch or ""
        super().__init__(layer, (branch, "", str(request.method)), TxState.TRYING)
        self.request = request
        self.destination = destination
        self.on_provisional = on_provisional
        self.result: asyncio.Future[SipResponse] = layer.loop.create_future()
        self._bytes = request.to_bytes()
        self._interval = layer.timers.t1

    def start(self) -> None:
        """Send the request and arm the retransmission and timeout timers."""
        self.layer._remember(self)
        self.layer.transport.send_bytes(self._bytes, self.destination)
        if not self.layer.transport.is_reliable(self.destination):
            # Timers A and E: only an unreliable transport needs us to repeat ourselves.
            self._start_timer("retransmit", self._interval, self._retransmit)
        self._start_timer("timeout", self.layer.timers.timeout, self._timeout)

    def _retransmit(self) -> None:
        if self.state not in (TxState.TRYING, TxState.PROCEEDING, TxState.CALLING):
            return
        self.layer.transport.send_bytes(self._bytes, self.destination)
        self._interval = self._next_interval()
        self._start_timer("retransmit", self._interval, self._retransmit)

    def _next_interval(self) -> float:
        # Timer E doubles up to T2, and sits at T2 once a provisional came (§17.1.2.2).
        if self.state is TxState.PROCEEDING:
            return self.layer.timers.t2
        return min(self._interval * 2, self.layer.timers.t2)

    def _timeout(self) -> None:
        self.terminate()
        if not self.result.done():
            self.result.set_exception(
                TransactionTimeout(
                    f"no final response to {self.request.method}", method=self.request.method
                )
            )

    def on_response(self, response: SipResponse) -> None:
        """Take a response matched to this transaction."""
        if response.status < 200:
            if self.state is TxState.TRYING:
                self._move(TxState.PROCEEDING)
            if self.on_provisional is not None:
                self.on_provisional(response)
            return
        if self.state in (TxState.TRYING, TxState.PROCEEDING):
            self._move(TxState.COMPLETED)
            self._cancel_timer("retransmit")
            self._cancel_timer("timeout")
            # Timer K: absorb response retransmissions for T4.
            self._start_timer("K", self.layer.timers.t4, self.terminate)
            if not self.result.done():
                self.result.set_result(response)


class InviteClientTransaction(ClientTransaction):
    """The INVITE client transaction (RFC 3261 §17.1.1, RFC 6026): timers A, B, D, M.

    Error finals are ACKed here (same branch); 2xx responses, first and retransmitted, go to
    `on_success` because their ACK belongs to the dialog, not the transaction.
    """

    def __init__(
        self,
        layer: TransactionLayer,
        request: SipRequest,
        destination: Address,
        on_provisional: Callable[[SipResponse], None] | None,
        on_success: Callable[[SipResponse], None],
    ) -> None:
        super().__init__(layer, request, destination, on_provisional)
        self.state = TxState.CALLING
        self.on_success = on_success
        self._ack: bytes | None = None

    def _next_interval(self) -> float:
        # Timer A doubles without the T2 cap, and stops once anything came back.
        return self._interval * 2

    def on_response(self, response: SipResponse) -> None:
        """Take a response matched to this transaction."""
        if response.status < 200:
            if self.state is TxState.CALLING:
                self._move(TxState.PROCEEDING)
                self._cancel_timer("retransmit")
            if self.state is TxState.PROCEEDING and self.on_provisional is not None:
                self.on_provisional(response)
            return
        if response.status < 300:
            if self.state in (TxState.CALLING, TxState.PROCEEDING):
                self._move(TxState.ACCEPTED)
                self._cancel_timer("retransmit")
                self._cancel_timer("timeout")
                self._start_timer("M", self.layer.timers.timeout, self.terminate)
                if not self.result.done():
                    self.result.set_result(response)
            if self.state is TxState.ACCEPTED:
                self.on_success(response)
            return
        if self.state in (TxState.CALLING, TxState.PROCEEDING):
            self._move(TxState.COMPLETED)
            self._cancel_timer("retransmit")
            self._cancel_timer("timeout")
            self._ack = self._build_ack(response).to_bytes()
            self.layer.transport.send_bytes(self._ack, self.destination)
            # Timer D: at least 32 s over UDP to answer retransmitted finals with our ACK.
            self._start_timer("D", max(32.0, self.layer.timers.timeout / 2), self.terminate)
            if not self.result.done():
                self.result.set_result(response)
        elif self.state is TxState.COMPLETED and self._ack is not None:
            self.layer.transport.send_bytes(self._ack, self.destination)

    def _build_ack(self, response: SipResponse) -> SipRequest:
        # RFC 3261 §17.1.1.3: same Request-URI, top Via, From, Call-ID, CSeq number; To from
        # the response; Route from the INVITE.
        headers = Headers()
        headers.add("Via", self.request.headers.get_all("Via")[0])
        for route in self.request.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("From", self.request.headers.get("From") or "")
        headers.add("To", response.headers.get("To") or "")
        headers.add("Call-ID", self.request.call_id)
        headers.add("CSeq", f"{self.request.cseq.number} ACK")
        headers.add("Max-Forwards", "70")
        return SipRequest(headers=headers, method=SipMethod.ACK, uri=self.request.uri)


class TransactionLayer:
    """Matches messages to transactions and owns their lifetimes."""

    def __init__(
        self,
        transport: Sender,
        user: TransactionUser,
        timers: TimerConfig,
        decorate: Callable[[SipResponse], None] = lambda response: None,
    ) -> None:
        self.transport = transport
        self.user = user
        self.timers = timers
        self.decorate = decorate
        self.loop = asyncio.get_running_loop()
        self._server: dict[TxKey, ServerTransaction] = {}
        self._client: dict[TxKey, ClientTransaction] = {}

    @property
    def server_count(self) -> int:
        """Live server transactions."""
        return len(self._server)

    @property
    def client_count(self) -> int:
        """Live client transactions."""
        return len(self._client)

    def _forget(self, tx: Transaction) -> None:
        table: dict[TxKey, ServerTransaction] | dict[TxKey, ClientTransaction]
        table = self._server if isinstance(tx, ServerTransaction) else self._client
        if table.get(tx.key) is tx:
            del table[tx.key]

    def _remember(self, tx: ClientTransaction) -> None:
        self._client[tx.key] = tx

    def receive_request(self, request: SipRequest, source: Address) -> None:
        """Route an incoming request to its transaction, or open one."""
        key = server_key(request)
        existing = self._server.get(key)
        if request.method == SipMethod.ACK:
            if isinstance(existing, InviteServerTransaction) and existing.state in (
                TxState.COMPLETED,
                TxState.CONFIRMED,
            ):
                existing.on_ack()  # ACK of our error response: the transaction absorbs it
            else:
                self.user.on_ack(request, source)
            return
        if existing is not None:
            existing.on_retransmission()
            return
        if request.method == SipMethod.INVITE:
            tx: ServerTransaction = InviteServerTransaction(self, key, request, source)
        else:
            tx = ServerTransaction(self, key, request, source)
        self._server[key] = tx
        if request.method == SipMethod.CANCEL:
            invite = self._server.get((key[0], key[1], str(SipMethod.INVITE)))
            if not isinstance(invite, InviteServerTransaction):
                tx.reply(481)
                return
            tx.reply(200)
            self.user.on_cancel(invite)
            return
        self.user.on_request(tx)

    def receive_response(self, response: SipResponse, source: Address) -> None:
        """Route an incoming response to the client transaction that sent the request."""
        via = response.top_via
        key = (via.branch or "", "", response.cseq.method)
        if response.cseq.method == SipMethod.ACK:
            return
        tx = self._client.get(key)
        if tx is None:
            self.user.on_stray_response(response, source)
            return
        tx.on_response(response)

    def request(
        self,
        request: SipRequest,
        destination: Address,
        on_provisional: Callable[[SipResponse], None] | None = None,
    ) -> ClientTransaction:
        """Start a non-INVITE client transaction."""
        tx = ClientTransaction(self, request, destination, on_provisional)
        tx.start()
        return tx

    def invite(
        self,
        request: SipRequest,
        destination: Address,
        on_provisional: Callable[[SipResponse], None] | None,
        on_success: Callable[[SipResponse], None],
    ) -> InviteClientTransaction:
        """Start an INVITE client transaction."""
        tx = InviteClientTransaction(self, request, destination, on_provisional, on_success)
        tx.start()
        return tx

    def close(self) -> None:
        """Terminate every transaction (shutdown)."""
        for tx in [*self._server.values(), *self._client.values()]:
            tx.terminate()
            if isinstance(tx, ClientTransaction) and not tx.result.done():
                tx.result.cancel()
