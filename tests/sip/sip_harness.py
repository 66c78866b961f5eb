"""Test helpers for the SIP stack: a scripted raw UDP peer, a recording handler, a SIPp runner."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from commserver.sip import (
    CallEnded,
    CallOffered,
    DtmfReceived,
    RegistrationChanged,
    SipCall,
    SipEndpoint,
)
from commserver.sip.events import HoldChanged, TransferRequested
from commserver.sip.message import SipMessage, SipRequest, SipResponse, parse_message
from commserver.sip.refer import Transfer

EndpointFactory = Callable[..., Awaitable[tuple[SipEndpoint, "RecordingHandler"]]]
"""The `make_endpoint` fixture: start an endpoint (config overrides as keywords)."""

SCENARIOS = Path(__file__).resolve().parents[2] / "sip-testbed" / "scenarios"
SIPP = shutil.which("sipp")
PCAP_DIR = Path("/usr/share/sip-tester")


def require_sipp() -> str:
    """The sipp binary; skip locally when it is missing, but fail in CI, which installs it."""
    if SIPP is None:
        if os.environ.get("CI"):
            pytest.fail("sipp is not installed (apt-get install sip-tester)")
        pytest.skip("sipp is not installed (apt-get install sip-tester)")
    return SIPP


def free_udp_port() -> int:
    """A UDP port free right now on 127.0.0.1 (for peers that must be told their port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def udp_port_bound(port: int, *, within: float = 15.0) -> None:
    """Return once something (a SIPp peer starting up) has bound UDP `port` on 127.0.0.1."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return  # taken: the peer is listening
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"nothing bound UDP port {port} within {within:g} s")
        await asyncio.sleep(0.02)


@dataclass
class SippResult:
    """What a SIPp run produced."""

    returncode: int
    stdout: str
    stderr: str
    errors: str = ""


async def run_sipp(
    *args: str, cwd: Path, timeout: float = 30.0, ready: asyncio.Event | None = None
) -> SippResult:
    """Run SIPp headless; kill it (by its own pid) if it outlives `timeout`."""
    binary = require_sipp()
    error_file = cwd / f"sipp-errors-{os.getpid()}-{id(args)}.log"
    command = [
        binary,
        *args,
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(error_file),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if ready is not None:
        ready.set()
    try:
        async with asyncio.timeout(timeout + 10):
            out, err = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        out, err = await process.communicate()
    errors = error_file.read_text(errors="replace") if error_file.exists() else ""
    assert process.returncode is not None
    return SippResult(
        process.returncode, out.decode(errors="replace"), err.decode(errors="replace"), errors
    )


class UdpPeer(asyncio.DatagramProtocol):
    """A scripted SIP peer on a raw UDP socket: send bytes, read parsed messages."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls) -> UdpPeer:
        """Bind a peer on 127.0.0.1, port chosen by the system."""
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Queue what arrives."""
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        """Our port."""
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes | str, addr: tuple[str, int]) -> None:
        """Send a datagram."""
        assert self.transport is not None
        raw = data.encode() if isinstance(data, str) else data
        self.transport.sendto(raw, addr)

    async def recv_raw(self, timeout: float = 2.0) -> bytes:
        """The next datagram."""
        async with asyncio.timeout(timeout):
            data, _ = await self.queue.get()
        return data

    async def recv(self, timeout: float = 2.0) -> SipMessage:
        """The next datagram, parsed."""
        return parse_message(await self.recv_raw(timeout))

    async def recv_response(self, status: int | None = None, timeout: float = 2.0) -> SipResponse:
        """The next response (with this status, skipping others)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.recv(max(deadline - loop.time(), 0.001))
            if isinstance(message, SipResponse) and (status is None or message.status == status):
                return message

    async def recv_request(self, method: str, timeout: float = 2.0) -> SipRequest:
        """The next request of this method, skipping anything else."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.recv(max(deadline - loop.time(), 0.001))
            if isinstance(message, SipRequest) and message.method == method:
                return message

    async def silence(self, seconds: float) -> list[bytes]:
        """Everything that arrives within `seconds`."""
        got: list[bytes] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    data, _ = await self.queue.get()
                    got.append(data)
        return got

    def close(self) -> None:
        """Close the socket."""
        if self.transport is not None:
            self.transport.close()


@dataclass
class RecordingHandler:
    """A handler that records every event; by default it answers every call at once."""

    on_offer: Callable[[SipCall, CallOffered], None] | None = None
    offered: list[CallOffered] = field(default_factory=list)
    digits: list[DtmfReceived] = field(default_factory=list)
    ended: list[CallEnded] = field(default_factory=list)
    registrations: list[RegistrationChanged] = field(default_factory=list)
    holds: list[HoldChanged] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    on_transfer: Callable[[Transfer, TransferRequested], None] | None = None
    calls: list[SipCall] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def call_offered(self, call: SipCall, event: CallOffered) -> None:
        """Record, then answer (or run `on_offer`)."""
        self.offered.append(event)
        self.calls.append(call)
        if self.on_offer is not None:
            self.on_offer(call, event)
        else:
            call.answer()
        self.changed.set()

    def dtmf_received(self, call: SipCall, event: DtmfReceived) -> None:
        """Record."""
        self.digits.append(event)
        self.changed.set()

    def call_ended(self, call: SipCall, event: CallEnded) -> None:
        """Record."""
        self.ended.append(event)
        self.changed.set()

    def registration_changed(self, event: RegistrationChanged) -> None:
        """Record."""
        self.registrations.append(event)
        self.changed.set()

    def hold_changed(self, call: SipCall, event: HoldChanged) -> None:
        """Record."""
        self.holds.append(event)
        self.changed.set()

    def transfer_requested(self, transfer: Transfer, event: TransferRequested) -> None:
        """Record, then decide with `on_transfer` (decline without one)."""
        self.transfers.append(transfer)
        if self.on_transfer is not None:
            self.on_transfer(transfer, event)
        else:
            transfer.reject(603)
        self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `predicate()` holds (woken by events, polled for state changes)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.02):
                        await self.changed.wait()


def invite(
    target: tuple[str, int],
    peer_port: int,
    *,
    call_id: str = "call-1@test",
    branch: str = "z9hG4bK-test-1",
    from_tag: str = "caller-tag",
    cseq: int = 1,
    sdp_port: int = 40000,
    user: str = "100",
    extra: str = "",
    codecs: str = "0 101",
    dtmf_pt: int = 101,
) -> str:
    """A well-formed INVITE from a raw peer at 127.0.0.1:peer_port."""
    body = (
        "v=0\r\n"
        "o=test 1 1 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        f"m=audio {sdp_port} RTP/AVP {codecs}\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        f"a=rtpmap:{dtmf_pt} telephone-event/8000\r\n"
    )
    host, port = target
    return (
        f"INVITE sip:{user}@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer_port};branch={branch};rport\r\n"
        f'From: "Caller" <sip:5551234@127.0.0.1:{peer_port}>;tag={from_tag}\r\n'
        f"To: <sip:{user}@{host}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:caller@127.0.0.1:{peer_port}>\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )


def in_dialog(
    method: str,
    target: tuple[str, int],
    peer_port: int,
    *,
    call_id: str = "call-1@test",
    branch: str = "z9hG4bK-test-2",
    from_tag: str = "caller-tag",
    to_tag: str,
    cseq: int = 2,
    user: str = "100",
) -> str:
    """An in-dialog request (ACK, BYE) from the raw peer."""
    host, port = target
    return (
        f"{method} sip:{user}@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer_port};branch={branch};rport\r\n"
        f'From: "Caller" <sip:5551234@127.0.0.1:{peer_port}>;tag={from_tag}\r\n'
        f"To: <sip:{user}@{host}:{port}>;tag={to_tag}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
