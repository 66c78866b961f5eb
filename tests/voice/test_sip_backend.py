"""The sip backend alone, driven like the call controller drives it, against real peers.

A raw UDP peer plays the caller (so each SIP message and RTP packet can be checked), SIPp plays
agents' phones and the trunk, and a recording handler stands in for the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from commserver.sip import CallState, SipConfig, TimerConfig
from commserver.sip.message import SipRequest, SipResponse
from commserver.sip.rtp import RtpPacket
from commserver.telephony.base import (
    AgentEndpoint,
    CallEnded,
    CallGone,
    CallOffered,
    DigitReceived,
    EndpointRegistration,
    HangupCause,
    Prompt,
    RingOutcome,
    TelephonyEvent,
)
from commserver.telephony.sip import SipBackend, Trunk
from ivr.prompts import PromptCache
from tests.sip.sip_harness import (
    SCENARIOS,
    SippResult,
    UdpPeer,
    free_udp_port,
    in_dialog,
    invite,
    run_sipp,
    udp_port_bound,
)

USERS = {"2001": "pw2001", "2002": "pw2002"}


@dataclass
class Recorder:
    """Stands in for the call controller: keeps every event, wakes waiters."""

    events: list[TelephonyEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_telephony_event(self, event: TelephonyEvent) -> None:
        """Keep it."""
        self.events.append(event)
        self.changed.set()

    def of(self, kind: type[Any]) -> list[Any]:
        """Events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Until `predicate()` holds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self.changed.wait()


BackendFactory = Callable[..., Awaitable[tuple[SipBackend, Recorder]]]


@pytest.fixture
async def open_backend(tmp_path: Path) -> AsyncIterator[BackendFactory]:
    """Open sip backends on 127.0.0.1:0 with users 2001/2002; closed at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(
            *, trunk: Trunk | None = None, prompts: PromptCache | None = None, **sip: Any
        ) -> tuple[SipBackend, Recorder]:
            settings: dict[str, Any] = {
                "port": 0,
                "credentials": USERS.get,
                "timers": TimerConfig(t1=0.05, t2=0.4, t4=0.5),
            }
            settings.update(sip)
            backend = SipBackend(
                SipConfig(**settings),
                ivr_numbers=("100",),
                prompts=prompts or PromptCache(tmp_path / "prompts"),
                trunk=trunk,
                stop_timeout=0.5,
            )
            recorder = Recorder()
            await backend.open(recorder)
            stack.push_async_callback(backend.close)
            return backend, recorder

        yield factory


def sip_target(backend: SipBackend) -> str:
    host, port = backend.address
    return f"{host}:{port}"


async def offered_call(
    backend: SipBackend, recorder: Recorder, caller: UdpPeer, rtp: UdpPeer, *, user: str = "100"
) -> str:
    """A raw caller dials `user`; returns the call id once the backend offered it."""
    caller.send(invite(backend.address, caller.port, sdp_port=rtp.port, user=user), backend.address)
    await recorder.wait_for(lambda: bool(recorder.of(CallOffered)))
    offered: CallOffered = recorder.of(CallOffered)[-1]
    return offered.call_id


async def answered_call(
    backend: SipBackend, recorder: Recorder, caller: UdpPeer, rtp: UdpPeer
) -> str:
    """A raw caller's call to 100, answered by the backend and ACKed."""
    call_id = await offered_call(backend, recorder, caller, rtp)
    await backend.answer(call_id)
    ok = await caller.recv_response(200)
    caller.send(
        in_dialog("ACK", backend.address, caller.port, to_tag=ok.to_addr.tag or "", cseq=1),
        backend.address,
    )
    return call_id


async def register(
    backend: SipBackend,
    cwd: Path,
    extension: str,
    port: int,
    *,
    source_port: int | None = None,
    scenario: str = "register.xml",
) -> None:
    """Register `extension` with its contact at 127.0.0.1:`port` (SIPp, digest auth)."""
    result = await run_sipp(
        "-sf", str(SCENARIOS / scenario), "-s", extension, "-au", extension,
        "-ap", USERS[extension], "-key", "contact_port", str(port), "-m", "1",
        "-i", "127.0.0.1", "-p", str(source_port or free_udp_port()), sip_target(backend),
        cwd=cwd, timeout=10,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr


def sipp_phone(cwd: Path, scenario: str, port: int) -> asyncio.Task[SippResult]:
    """A SIPp phone running `scenario` on `port`."""
    return asyncio.ensure_future(
        run_sipp(
            "-sf",
            str(SCENARIOS / scenario),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_udp_port()),
            cwd=cwd,
            timeout=20,
        )
    )


@pytest.fixture
async def caller() -> AsyncIterator[UdpPeer]:
    """A raw SIP peer for the caller's signalling."""
    peer = await UdpPeer.open()
    yield peer
    peer.close()


@pytest.fixture
async def rtp() -> AsyncIterator[UdpPeer]:
    """A raw UDP socket for the caller's media."""
    peer = await UdpPeer.open()
    yield peer
    peer.close()


async def test_a_call_to_the_ivr_number_rings_and_is_offered_to_the_server(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer
) -> None:
    backend, recorder = await open_backend()
    call_id = await offered_call(backend, recorder, caller, rtp)
    await caller.recv_response(180)  # pyVoIP-style callers need a provisional before the 200
    [offered] = recorder.of(CallOffered)
    assert offered.caller == "5551234"
    assert offered.dialed == "100"
    assert offered.caller_name == "Caller"
    assert call_id == "call-1@test"


async def test_registration_and_unregistration_are_reported(
    open_backend: BackendFactory, sipp_cwd: Path
) -> None:
    backend, recorder = await open_backend()
    source = free_udp_port()
    await register(backend, sipp_cwd, "2001", 5099, source_port=source)
    [event] = recorder.of(EndpointRegistration)
    assert (event.extension, event.registered) == ("2001", True)
    assert event.contact == "sip:2001@127.0.0.1:5099"
    # A refresh from the same place is not news (an agent who paused stays paused).
    await register(backend, sipp_cwd, "2001", 5099, source_port=source)
    assert len(recorder.of(EndpointRegistration)) == 1
    await register(backend, sipp_cwd, "2001", 5099, scenario="unregister.xml")
    assert [e.registered for e in recorder.of(EndpointRegistration)] == [True, False]
    assert backend.endpoint.registrar.lookup("2001") == []


async def test_prompts_play_as_paced_rtp_and_digits_are_reported_and_collected(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer, tmp_path: Path
) -> None:
    backend, recorder = await open_backend()
    call_id = await answered_call(backend, recorder, caller, rtp)
    await backend.play(call_id, Prompt(text="Hello."))
    packets = [RtpPacket.parse(p) for p in await rtp.silence(0.2)]
    await backend.play(call_id, Prompt(text="Hello."))  # cached now: same audio again
    again = [RtpPacket.parse(p) for p in await rtp.silence(0.2)]
    assert backend.prompts.rendered == 1
    assert len(packets) > 10
    assert all(p is not None and p.payload_type == 0 for p in packets)
    assert len(again) >= len(packets) - 5
    # The caller keys 7 (RFC 4733, PT 101): reported at once, and buffered for collection.
    for payload, marker in _press("7"):
        rtp.send(RtpPacket(101, 1, 1000, 42, payload, marker).to_bytes(), _media(backend, call_id))
    await recorder.wait_for(lambda: bool(recorder.of(DigitReceived)))
    assert [e.digit for e in recorder.of(DigitReceived)] == ["7"]
    assert await backend.collect_digits(call_id, max_digits=1, timeout=1) == "7"
    assert await backend.collect_digits(call_id, max_digits=1, timeout=0.1) == ""


def _press(digit: str) -> list[tuple[bytes, bool]]:
    from commserver.sip.dtmf import event_payloads

    return list(event_payloads(digit, 100))


def _media(backend: SipBackend, call_id: str) -> tuple[str, int]:
    call = backend.endpoint.get_call(call_id)
    assert call is not None
    return call.media.local_address


async def test_a_broken_prompt_file_is_skipped_and_the_call_goes_on(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer, tmp_path: Path
) -> None:
    backend, recorder = await open_backend()
    call_id = await answered_call(backend, recorder, caller, rtp)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    await backend.play(call_id, Prompt(wav=bad))
    await backend.play(call_id, Prompt(wav=tmp_path / "missing.wav"))
    call = backend.endpoint.get_call(call_id)
    assert call is not None
    assert call.state is CallState.CONNECTED


async def test_music_on_hold_flows_until_stopped(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer
) -> None:
    backend, recorder = await open_backend()
    call_id = await answered_call(backend, recorder, caller, rtp)
    await backend.start_music(call_id)
    await backend.start_music(call_id)  # a second start does not stack a second stream
    playing = await rtp.silence(1.0)
    await backend.stop_music(call_id)
    await rtp.silence(0.1)  # what was in flight
    after = await rtp.silence(0.3)
    # One paced stream is 50 packets a second (fewer if the loop stalls); two would be 100.
    assert 20 <= len(playing) <= 70
    assert after == []


async def test_ring_agent_fails_at_once_without_a_registered_phone_or_a_trunk(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer
) -> None:
    backend, recorder = await open_backend()
    call_id = await answered_call(backend, recorder, caller, rtp)
    agent = AgentEndpoint("s1", extension="2001", external_number="+4930123")
    assert await backend.ring_agent(call_id, agent, timeout=1) == (RingOutcome.FAILED, None)


async def test_an_unanswered_agent_phone_is_cancelled_and_counts_as_no_answer(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer, sipp_cwd: Path
) -> None:
    backend, recorder = await open_backend()
    port = free_udp_port()
    phone = sipp_phone(sipp_cwd, "uas_ring_cancel.xml", port)
    try:
        await register(backend, sipp_cwd, "2001", port)
        call_id = await answered_call(backend, recorder, caller, rtp)
        outcome = await backend.ring_agent(call_id, AgentEndpoint("s1", "2001"), timeout=0.5)
        result = await asyncio.wait_for(phone, 15)
    finally:
        phone.cancel()
    assert outcome == (RingOutcome.NO_ANSWER, None)
    assert result.returncode == 0, result.errors or result.stderr  # it saw CANCEL and our ACK
    assert not recorder.of(CallEnded)  # a failed ring is not a leg the server knew


async def test_caller_hanging_up_while_the_agent_rings_cancels_the_ring(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer, sipp_cwd: Path
) -> None:
    backend, recorder = await open_backend()
    port = free_udp_port()
    phone = sipp_phone(sipp_cwd, "uas_ring_cancel.xml", port)
    try:
        await register(backend, sipp_cwd, "2001", port)
        call_id = await answered_call(backend, recorder, caller, rtp)
        ringing = asyncio.ensure_future(
            backend.ring_agent(call_id, AgentEndpoint("s1", "2001"), timeout=10)
        )
        await asyncio.sleep(0.3)
        caller.send(
            in_dialog(
                "BYE",
                backend.address,
                caller.port,
                to_tag=_to_tag(backend, call_id),
                cseq=2,
                branch="z9hG4bK-bye",
            ),
            backend.address,
        )
        outcome = await asyncio.wait_for(ringing, 5)
        result = await asyncio.wait_for(phone, 15)
    finally:
        phone.cancel()
    assert outcome == (RingOutcome.CALLER_GONE, None)
    assert result.returncode == 0, result.errors or result.stderr
    [ended] = recorder.of(CallEnded)
    assert (ended.call_id, ended.cause) == (call_id, HangupCause.CALLER_HANGUP)


def _to_tag(backend: SipBackend, call_id: str) -> str:
    call = backend.endpoint.get_call(call_id)
    assert call is not None
    return call.dialog.local_tag


async def test_a_remote_agent_is_rung_at_their_number_through_the_trunk_and_bridged(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer, sipp_cwd: Path
) -> None:
    trunk_port = free_udp_port()
    backend, recorder = await open_backend(trunk=Trunk("127.0.0.1", trunk_port))
    trunk = sipp_phone(sipp_cwd, "uas_answer.xml", trunk_port)
    try:
        await udp_port_bound(trunk_port)
        call_id = await answered_call(backend, recorder, caller, rtp)
        agent = AgentEndpoint("r1", extension="2009", external_number="+4930123")
        outcome, leg = await backend.ring_agent(call_id, agent, timeout=5)
        assert outcome is RingOutcome.ANSWERED
        assert leg is not None
        agent_call = backend.endpoint.get_call(leg)
        assert agent_call is not None
        assert agent_call.dialed == "+4930123"
        await backend.bridge(call_id, leg)
        await backend.hangup(leg, HangupCause.CALLER_HANGUP)
        result = await asyncio.wait_for(trunk, 15)
    finally:
        trunk.cancel()
    assert result.returncode == 0, result.errors or result.stderr  # INVITE, ACK, our BYE
    [ended] = recorder.of(CallEnded)
    # The cause is the one the server gave, not a generic "local hang-up".
    assert (ended.call_id, ended.cause) == (leg, HangupCause.CALLER_HANGUP)


async def test_refusing_an_unanswered_call_answers_503_and_commands_then_fail_with_call_gone(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer
) -> None:
    backend, recorder = await open_backend()
    call_id = await offered_call(backend, recorder, caller, rtp)
    await backend.hangup(call_id, HangupCause.REJECTED)
    refused = await caller.recv_response(503)
    await backend.hangup(call_id)  # hanging up a gone leg is fine
    with pytest.raises(CallGone):
        await backend.answer(call_id)
    agent = AgentEndpoint("s1", extension="2001")
    assert await backend.ring_agent(call_id, agent, timeout=1) == (RingOutcome.CALLER_GONE, None)
    assert isinstance(refused, SipResponse)
    [ended] = recorder.of(CallEnded)
    assert ended.cause is HangupCause.REJECTED


async def test_media_sockets_come_from_the_configured_rtp_port_range(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer
) -> None:
    low = free_udp_port() & ~1
    backend, recorder = await open_backend(rtp_ports=(low, low + 40))
    call_id = await answered_call(backend, recorder, caller, rtp)
    port = _media(backend, call_id)[1]
    assert low <= port <= low + 40
    assert port % 2 == 0


async def test_close_hangs_up_live_calls_and_reports_shutdown(
    open_backend: BackendFactory, caller: UdpPeer, rtp: UdpPeer
) -> None:
    backend, recorder = await open_backend()
    call_id = await answered_call(backend, recorder, caller, rtp)
    await backend.start_music(call_id)
    await backend.close()
    await backend.close()  # idempotent
    bye = await caller.recv_request("BYE")
    assert isinstance(bye, SipRequest)
    [ended] = recorder.of(CallEnded)
    assert ended.cause is HangupCause.SHUTDOWN
