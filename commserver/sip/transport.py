"""The SIP wire protocol over UDP and TCP: frame bytes into messages, answer junk, send.

This is the "protocol" of the protocol/handler/controller shape: it parses and frames and knows
nothing of calls. A malformed request gets 400 (513, 505) when it can be addressed; anything
else is dropped with a rate-limited log line, and the socket keeps serving everyone else.

UDP is one datagram per message. TCP (RFC 3261 §18.3) is a byte stream: a message ends after
its headers' blank line plus Content-Length bytes of body, which a stream message must carry.
Every TCP connection has an idle timer, a size bound and a budget of junk before it is closed.
`Transports` puts both behind one `send_bytes(data, address)`: an address that is a live TCP
connection's peer is written to that connection (responses and in-dialog requests go back the
way a phone's messages came, RFC 3261 §18.2.2), anything else goes out as a datagram.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol, cast

from .message import (
    DEFAULT_LIMITS,
    REASONS,
    ParseLimits,
    SipMessage,
    SipRequest,
    SipResponse,
    UnparseableMessage,
    Via,
    make_response,
    make_response_to_partial,
    parse_message,
    set_param,
)

log = logging.getLogger(__name__)

Address = tuple[str, int]

# Log the first few bad datagrams from a source, then one in a hundred: junk costs no disk.
_LOG_FIRST = 5
_LOG_EVERY = 100
_MAX_TRACKED_SOURCES = 10_000
# The SIP socket's kernel buffers. The default (about 200 KB, some 90 small datagrams as the
# kernel counts them) overflows when hundreds of calls a second meet a loop busy for a few
# hundred ms: the INVITEs dropped there come back as retransmissions seconds later. The kernel
# caps the request at net.core.rmem_max / wmem_max.
SIP_SOCKET_BUFFER = 4 * 1024 * 1024


class Sender(Protocol):
    """What the transaction layer sends through."""

    def send_bytes(self, data: bytes, addr: Address) -> None:
        """Send serialized message bytes to a peer."""

    def is_reliable(self, addr: Address) -> bool:
        """True when messages to `addr` travel over a reliable (stream) transport."""


class _MessageSink:
    """Parsing, Via stamping and junk handling shared by the UDP socket and TCP connections."""

    def __init__(
        self,
        on_request: Callable[[SipRequest, Address], None],
        on_response: Callable[[SipResponse, Address], None],
        limits: ParseLimits,
    ) -> None:
        self._on_request = on_request
        self._on_response = on_response
        self._limits = limits
        self._bad_by_source: dict[str, int] = {}
        self.malformed_count = 0
        self.received_count = 0

    def _deliver(self, data: bytes, addr: Address, reply: Callable[[bytes], None]) -> bool:
        """Parse one message and dispatch it; False when it was junk. Never raises."""
        self.received_count += 1
        try:
            message = parse_message(data, self._limits)
        except UnparseableMessage as exc:
            self._reject(exc, addr, reply)
            return False
        try:
            if isinstance(message, SipRequest):
                self._stamp_via(message, addr)
                self._on_request(message, addr)
            else:
                self._on_response(message, addr)
        except Exception:
            # A bug in one call's handling must not take the socket down for everyone.
            log.exception("error handling SIP message from %s:%d", *addr)
        return True

    def _stamp_via(self, request: SipRequest, source: Address) -> None:
        # RFC 3261 §18.2.1 and RFC 3581: record where the request really came from.
        vias = request.headers.get_all("Via")
        top = Via.parse(vias[0])
        params = top.params
        if top.host.strip("[]") != source[0]:
            params = set_param(params, "received", source[0])
        if any(name == "rport" for name, _ in params):
            params = set_param(params, "rport", str(source[1]))
        if params is not top.params:
            request.headers.remove("Via")
            request.headers.add("Via", str(replace(top, params=params)))
            for value in vias[1:]:
                request.headers.add("Via", value)

    def _reject(
        self, exc: UnparseableMessage, addr: Address, reply: Callable[[bytes], None]
    ) -> None:
        self.malformed_count += 1
        count = self._bad_by_source.get(addr[0], 0) + 1
        if len(self._bad_by_source) >= _MAX_TRACKED_SOURCES:
            self._bad_by_source.clear()
        self._bad_by_source[addr[0]] = count
        answered = False
        if exc.partial is not None:
            response = make_response_to_partial(
                exc.partial, exc.status, f"{REASONS.get(exc.status, 'Bad Request')} ({exc.message})"
            )
            if response is not None:
                reply(response)
                answered = True
        if count <= _LOG_FIRST or count % _LOG_EVERY == 0:
            log.warning(
                "malformed SIP message from %s:%d (%s), %s [%d from this source]",
                addr[0],
                addr[1],
                exc.message,
                f"answered {exc.status}" if answered else "dropped",
                count,
            )


class SipTransport(_MessageSink, asyncio.DatagramProtocol):
    """One UDP socket carrying SIP; hands parsed messages to the transaction layer."""

    def __init__(
        self,
        on_request: Callable[[SipRequest, Address], None],
        on_response: Callable[[SipResponse, Address], None],
        limits: ParseLimits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(on_request, on_response, limits)
        self._transport: asyncio.DatagramTransport | None = None
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the datagram transport."""
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, SIP_SOCKET_BUFFER)
                except OSError as exc:  # a sandbox may refuse; the default still works
                    log.debug("sip socket buffer not enlarged: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        """Mark the transport closed."""
        self._transport = None
        self.closed.set()

    def error_received(self, exc: Exception) -> None:
        """ICMP port-unreachable and friends: the peer went away; nothing to do."""
        log.debug("sip socket error: %s", exc)

    @property
    def local_address(self) -> Address:
        """The bound address."""
        assert self._transport is not None, "transport not open"
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """Parse one datagram and dispatch it; never raises."""
        if not data.strip(b"\r\n\t "):
            return  # RFC 5626 keep-alive (CRLF) or an empty probe
        self._deliver(data, addr, lambda reply: self._sendto(reply, addr))

    def is_reliable(self, addr: Address) -> bool:
        """UDP never is."""
        return False

    def send(self, message: SipMessage, addr: Address) -> None:
        """Send a message to an address."""
        self._sendto(message.to_bytes(), addr)

    def send_bytes(self, data: bytes, addr: Address) -> None:
        """Send an already serialized message (retransmissions reuse the bytes)."""
        self._sendto(data, addr)

    def _sendto(self, data: bytes, addr: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()


# -- TCP ----------------------------------------------------------------------------------------

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([0-9]+)[ \t]*\r?$", re.I | re.M)
_WRITE_HIGH_WATER = 256 * 1024  # a peer this far behind in reading is not a phone: drop it


class SipStreamConnection(_MessageSink, asyncio.Protocol):
    """One TCP connection carrying SIP: RFC 3261 §18.3 framing, bounded and timed."""

    def __init__(self, listener: SipStreamListener) -> None:
        super().__init__(listener.on_request, listener.on_response, listener.limits)
        self._listener = listener
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._junk = 0
        self.peer: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register the connection under its peer's address and start its idle timer."""
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        self._listener._opened(self)
        self._touch()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        if self._idle is not None:
            self._idle.cancel()
        self._transport = None
        self._listener._closed(self)

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self._listener.idle_timeout, self._idle_out)

    def _idle_out(self) -> None:
        log.info("SIP/TCP connection from %s:%d idle; closing", *self.peer)
        self.close()

    def data_received(self, data: bytes) -> None:
        """Cut the stream into messages (headers, blank line, Content-Length bytes)."""
        self._touch()
        self._buffer += data
        while self._transport is not None and not self._transport.is_closing() and self._buffer:
            if self._buffer.startswith((b"\r\n", b"\n")):
                # RFC 5626 keep-alive: a double CRLF "ping" is answered with a CRLF "pong".
                if self._buffer.startswith(b"\r\n\r\n"):
                    del self._buffer[:4]
                    self.write(b"\r\n")
                else:
                    del self._buffer[: 2 if self._buffer.startswith(b"\r\n") else 1]
                continue
            end = _HEAD_END.search(self._buffer)
            limit = self._limits.max_message_bytes
            if end is None:
                if len(self._buffer) > limit:
                    self._give_up("headers too long")
                return
            head = bytes(self._buffer[: end.end()])
            lengths = _CONTENT_LENGTH.findall(self._buffer, 0, end.start())
            if len(lengths) != 1:
                # Without exactly one Content-Length a stream cannot be framed (§18.3).
                self._refuse_unframeable(head, 400, "Content-Length required on TCP")
                return
            total = end.end() + int(lengths[0])
            if total > limit:
                self._refuse_unframeable(head, 513, "message too large")
                return
            if len(self._buffer) < total:
                return
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            if not self._deliver(frame, self.peer, self.write):
                self._junk += 1
                if self._junk > self._listener.junk_budget:
                    self._give_up("too many malformed messages")

    def _refuse_unframeable(self, head: bytes, status: int, why: str) -> None:
        # Answer what can be answered, then drop the connection: the stream has lost its frame.
        self.malformed_count += 1
        reason = f"{REASONS.get(status, 'Bad Request')} ({why})"
        response: bytes | None = None
        try:
            message = parse_message(head, self._limits)
        except UnparseableMessage as exc:
            if exc.partial is not None:
                response = make_response_to_partial(exc.partial, status, reason)
        else:
            if isinstance(message, SipRequest) and message.method != "ACK":
                response = make_response(message, status, reason).to_bytes()
        if response is not None:
            self.write(response)
        self._give_up(why)

    def _give_up(self, why: str) -> None:
        log.warning("SIP/TCP connection from %s:%d closed: %s", self.peer[0], self.peer[1], why)
        self.close()

    def write(self, data: bytes) -> None:
        """Send bytes on this connection (a reader that falls far behind is dropped)."""
        transport = self._transport
        if transport is None:
            return
        transport.write(data)
        if transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            transport.abort()

    def close(self) -> None:
        """Close the connection."""
        if self._transport is not None:
            self._transport.close()


class SipStreamListener:
    """The TCP side of the SIP port: accepts connections and finds them by peer address."""

    def __init__(
        self,
        on_request: Callable[[SipRequest, Address], None],
        on_response: Callable[[SipResponse, Address], None],
        limits: ParseLimits = DEFAULT_LIMITS,
        *,
        idle_timeout: float = 600.0,
        junk_budget: int = 10,
        max_connections: int = 10_000,
    ) -> None:
        self.on_request = on_request
        self.on_response = on_response
        self.limits = limits
        self.idle_timeout = idle_timeout
        self.junk_budget = junk_budget
        self.max_connections = max_connections
        self.connections: dict[Address, SipStreamConnection] = {}
        self._server: asyncio.Server | None = None
        self._closed_malformed = 0

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (the port the UDP socket has)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SipStreamConnection(self), host, port, reuse_address=True
        )

    def _opened(self, connection: SipStreamConnection) -> None:
        if len(self.connections) >= self.max_connections:
            log.warning("SIP/TCP connection limit reached; refusing %s:%d", *connection.peer)
            connection.close()
            return
        self.connections[connection.peer] = connection

    def _closed(self, connection: SipStreamConnection) -> None:
        if self.connections.get(connection.peer) is connection:
            del self.connections[connection.peer]
            self._closed_malformed += connection.malformed_count

    @property
    def malformed_count(self) -> int:
        """Malformed messages seen on every connection, open or closed."""
        return self._closed_malformed + sum(c.malformed_count for c in self.connections.values())

    def send_bytes(self, data: bytes, addr: Address) -> bool:
        """Write to the connection from `addr`; False when there is none."""
        connection = self.connections.get(addr)
        if connection is None:
            return False
        connection.write(data)
        return True

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections.values()):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class Transports:
    """UDP and TCP behind one `send_bytes`: a live TCP peer gets its connection, others UDP."""

    def __init__(self, udp: SipTransport, tcp: SipStreamListener | None = None) -> None:
        self.udp = udp
        self.tcp = tcp

    def send_bytes(self, data: bytes, addr: Address) -> None:
        """Send on the TCP connection from `addr` if there is one, else as a datagram."""
        if self.tcp is not None and self.tcp.send_bytes(data, addr):
            return
        self.udp.send_bytes(data, addr)

    def send(self, message: SipMessage, addr: Address) -> None:
        """Send a message."""
        self.send_bytes(message.to_bytes(), addr)

    def is_reliable(self, addr: Address) -> bool:
        """True when `addr` is the peer of a live TCP connection."""
        return self.tcp is not None and addr in self.tcp.connections

    def name_for(self, addr: Address) -> str:
        """The Via transport token for messages to `addr` (UDP or TCP)."""
        return "TCP" if self.is_reliable(addr) else "UDP"

    @property
    def malformed_count(self) -> int:
        """Malformed messages on both transports."""
        tcp = self.tcp.malformed_count if self.tcp is not None else 0
        return self.udp.malformed_count + tcp

    @property
    def received_count(self) -> int:
        """Datagrams received on UDP (stream messages are counted per connection)."""
        return self.udp.received_count
