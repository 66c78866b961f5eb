"""SIP over TCP (RFC 3261 §18.3): stream framing, limits, and whole calls with SIPp on TCP.

A raw TCP client checks framing byte by byte (split and coalesced messages, keep-alives,
unframeable input); SIPp in single-socket TCP mode (`-t t1`) places real calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from commserver.sip import CallState, SipEndpoint
from commserver.sip.message import SipResponse, parse_message
from tests.sip.sip_harness import SCENARIOS, EndpointFactory, free_udp_port, run_sipp


class TcpPeer:
    """A raw SIP client on one TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pongs = 0

    @property
    def port(self) -> int:
        """Our local port."""
        return int(self.writer.get_extra_info("sockname")[1])

    def send(self, data: str | bytes) -> None:
        """Write bytes as they are (the test decides where messages split)."""
        self.writer.write(data.encode() if isinstance(data, str) else data)

    async def response(self, timeout: float = 5.0) -> SipResponse:
        """Read one framed response (headers, then Content-Length bytes)."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            while head.startswith(b"\r\n"):  # a keep-alive pong before the response
                self.pongs += 1
                head = head[2:]
            length = 0
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() in ("content-length", "l"):
                    length = int(value)
            body = await self.reader.readexactly(length)
        message = parse_message(head + body)
        assert isinstance(message, SipResponse)
        return message

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server closed the connection (whatever it sent before)."""
        async with asyncio.timeout(timeout):
            while await self.reader.read(4096):
                pass
        return True


@contextlib.asynccontextmanager
async def tcp_peer(endpoint: SipEndpoint) -> AsyncIterator[TcpPeer]:
    """A TCP connection to the endpoint's SIP port."""
    reader, writer = await asyncio.open_connection(*endpoint.address)
    try:
        yield TcpPeer(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def options(endpoint: SipEndpoint, port: int, n: int, *, length: bool = True) -> str:
    """An OPTIONS over TCP (Content-Length 0 unless left out)."""
    host, sip_port = endpoint.address
    return (
        f"OPTIONS sip:{host}:{sip_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK-tcp-{n}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=t{n}\r\nTo: <sip:{host}>\r\n"
        f"Call-ID: tcp-{n}@test\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
        + ("Content-Length: 0\r\n" if length else "")
        + "\r\n"
    )


async def test_messages_split_and_coalesced_on_the_stream_are_each_answered(
    make_endpoint: EndpointFactory,
) -> None:
    endpoint, _ = await make_endpoint()
    async with tcp_peer(endpoint) as peer:
        first, second, third = (options(endpoint, peer.port, n) for n in (1, 2, 3))
        peer.send(first[:17])
        await asyncio.sleep(0.05)
        peer.send(first[17:] + second + "\r\n\r\n" + third[:-3])  # a keep-alive in between
        await asyncio.sleep(0.05)
        peer.send(third[-3:])
        answers = [await peer.response() for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.cseq.number for a in answers] == [1, 2, 3]
    assert peer.pongs == 1
    # Responses to TCP requests go back on the connection, whatever the Via's port says.
    assert all(a.top_via.transport == "TCP" for a in answers)


async def test_a_keepalive_ping_gets_a_pong(make_endpoint: EndpointFactory) -> None:
    endpoint, _ = await make_endpoint()
    async with tcp_peer(endpoint) as peer:
        peer.send(b"\r\n\r\n")
        async with asyncio.timeout(5):
            pong = await peer.reader.readexactly(2)
    assert pong == b"\r\n"


async def test_a_message_without_content_length_gets_400_and_the_connection_closes(
    make_endpoint: EndpointFactory,
) -> None:
    endpoint, _ = await make_endpoint()
    async with tcp_peer(endpoint) as peer:
        peer.send(options(endpoint, peer.port, 1, length=False))
        refused = await peer.response()
        assert await peer.closed()
    assert refused.status == 400
    assert "Content-Length" in refused.reason
    assert endpoint.transport.malformed_count == 1


async def test_an_oversized_message_gets_513_and_junk_costs_the_connection(
    make_endpoint: EndpointFactory,
) -> None:
    endpoint, _ = await make_endpoint()
    async with tcp_peer(endpoint) as peer:
        big = options(endpoint, peer.port, 1).replace("Content-Length: 0", "Content-Length: 100000")
        peer.send(big)
        assert (await peer.response()).status == 513
        assert await peer.closed()
    async with tcp_peer(endpoint) as peer:
        for _ in range(20):  # framed but unparseable: answered while the budget lasts
            peer.send("GARBAGE\r\nContent-Length: 0\r\n\r\n")
        assert await peer.closed()
    # Everyone else is still served.
    async with tcp_peer(endpoint) as peer:
        peer.send(options(endpoint, peer.port, 9))
        assert (await peer.response()).status == 200


async def test_an_idle_connection_is_closed(make_endpoint: EndpointFactory) -> None:
    endpoint, _ = await make_endpoint(tcp_idle_timeout=0.3)
    async with tcp_peer(endpoint) as peer:
        assert await peer.closed(timeout=5)
    assert endpoint.transport.tcp is not None
    assert endpoint.transport.tcp.connections == {}


async def test_endpoint_without_tcp_listens_on_udp_only(make_endpoint: EndpointFactory) -> None:
    endpoint, _ = await make_endpoint(tcp=False)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*endpoint.address)


async def test_sipp_calls_over_tcp_get_100_200_ack_bye(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    endpoint, handler = await make_endpoint()
    host, port = endpoint.address
    result = await run_sipp(
        "-sf", str(SCENARIOS / "uac_dtmf.xml"), "-t", "t1", "-s", "100", "-m", "3",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1",
        "-mp", str(free_udp_port()), f"{host}:{port}", cwd=sipp_cwd, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    await handler.wait_for(lambda: len(handler.ended) == 3)
    assert len(handler.offered) == 3
    assert all(call.state is CallState.ENDED for call in handler.calls)
    # Each call's dialog went back over the connection SIPp opened.
    assert {d.digit for d in handler.digits} >= {"4"}


async def test_sipp_registers_over_tcp(make_endpoint: EndpointFactory, sipp_cwd: Path) -> None:
    endpoint, _ = await make_endpoint()
    host, port = endpoint.address
    result = await run_sipp(
        "-sf", str(SCENARIOS / "register.xml"), "-t", "t1", "-s", "2001", "-au", "2001",
        "-ap", "pw2001", "-key", "contact_port", "5999", "-m", "1", "-i", "127.0.0.1",
        "-p", str(free_udp_port()), f"{host}:{port}", cwd=sipp_cwd, timeout=15,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    [binding] = endpoint.registrar.lookup("2001")
    assert binding.contact.port == 5999


async def test_a_taken_tcp_port_leaves_the_endpoint_on_udp(make_endpoint: EndpointFactory) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = int(blocker.getsockname()[1])
        endpoint, _ = await make_endpoint(port=port)  # started: it answered its UDP probe
        assert endpoint.address[1] == port
        assert endpoint.transport.tcp is None
    finally:
        blocker.close()
