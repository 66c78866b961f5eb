"""The endpoint against SIPp, a real independent SIP implementation, over loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from commserver.sip import CallOffered, CallState, EndReason, RegistrationState, SipCall
from tests.sip.sip_harness import (
    SCENARIOS,
    EndpointFactory,
    RecordingHandler,
    UdpPeer,
    free_udp_port,
    run_sipp,
    udp_port_bound,
)


def _target(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


async def test_sipp_calls_get_100_200_ack_bye(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    endpoint, handler = await make_endpoint()
    result = await run_sipp(
        "-sn", "uac", "-s", "100", "-m", "10", "-r", "20", "-l", "10",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), _target(endpoint.address), cwd=sipp_cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    assert len(handler.offered) == 10
    await handler.wait_for(lambda: len(handler.ended) == 10)
    assert {e.reason for e in handler.ended} == {EndReason.REMOTE_BYE}
    assert not endpoint.calls


async def test_sipp_caller_that_waits_for_the_200_retransmission(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    endpoint, handler = await make_endpoint()  # T1 = 50 ms: about 5 retransmissions in 1.2 s
    result = await run_sipp(
        "-sf", str(SCENARIOS / "uac_ack_late.xml"), "-s", "100", "-m", "3",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-trace_msg",
        "-message_file", str(sipp_cwd / "messages.log"), _target(endpoint.address), cwd=sipp_cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    await handler.wait_for(lambda: len(handler.ended) == 3)
    assert {e.reason for e in handler.ended} == {EndReason.REMOTE_BYE}
    log = (sipp_cwd / "messages.log").read_text()
    invite_oks = [m for m in log.split("SIP/2.0 200 OK")[1:] if "INVITE" in m.split("\n\n")[0]]
    assert len(invite_oks) >= 3 * 4  # every call saw its 200 OK at least 4 times


async def test_sipp_cancel_while_ringing_gets_487(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    handler = RecordingHandler(on_offer=lambda call, event: call.ring())
    endpoint, _ = await make_endpoint(handler)
    result = await run_sipp(
        "-sf", str(SCENARIOS / "uac_cancel.xml"), "-s", "100", "-m", "3",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), _target(endpoint.address), cwd=sipp_cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    await handler.wait_for(lambda: len(handler.ended) == 3)
    assert {e.reason for e in handler.ended} == {EndReason.CANCELLED}
    assert {e.status for e in handler.ended} == {487}


async def test_sipp_rfc4733_dtmf_is_detected_once_per_key_press(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    endpoint, handler = await make_endpoint()
    result = await run_sipp(
        "-sf", str(SCENARIOS / "uac_dtmf.xml"), "-s", "100", "-m", "2", "-l", "2",
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_udp_port()),
        "-mp", str(free_udp_port()),
        _target(endpoint.address), cwd=sipp_cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    await handler.wait_for(lambda: len(handler.ended) == 2)
    by_call: dict[str, list[str]] = {}
    for event in handler.digits:
        by_call.setdefault(event.call_id, []).append(event.digit)
    # Each pcap press has 7 packets plus 3 end packets: exactly one digit each.
    assert sorted(by_call.values()) == [["4", "#"], ["4", "#"]]
    assert all(call.codec.name == "PCMA" for call in handler.calls)


async def test_sipp_register_with_right_password_creates_a_binding(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    endpoint, handler = await make_endpoint()
    contact_port = free_udp_port()
    result = await run_sipp(
        "-sf", str(SCENARIOS / "register.xml"), "-s", "2001", "-au", "2001", "-ap", "pw2001",
        "-key", "contact_port", str(contact_port), "-m", "1",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), _target(endpoint.address), cwd=sipp_cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    bindings = endpoint.registrar.lookup("2001")
    assert [b.contact.port for b in bindings] == [contact_port]
    assert [r.state for r in handler.registrations] == [RegistrationState.REGISTERED]
    assert handler.registrations[0].aor == "2001"


async def test_sipp_register_with_wrong_password_is_refused(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    endpoint, handler = await make_endpoint()
    result = await run_sipp(
        "-sf", str(SCENARIOS / "register_refused.xml"), "-s", "2001", "-au", "2001",
        "-ap", "wrong", "-key", "contact_port", "5099", "-m", "1",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), _target(endpoint.address), cwd=sipp_cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    assert endpoint.registrar.lookup("2001") == []
    assert handler.registrations == []


async def test_outbound_call_to_registered_sipp_phone_then_bye(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    endpoint, handler = await make_endpoint()
    phone_port = free_udp_port()
    phone = asyncio.create_task(
        run_sipp(
            "-sf",
            str(SCENARIOS / "uas_answer.xml"),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(phone_port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_udp_port()),
            cwd=sipp_cwd,
        )
    )
    try:
        registered = await run_sipp(
            "-sf", str(SCENARIOS / "register.xml"), "-s", "2001", "-au", "2001",
            "-ap", "pw2001", "-key", "contact_port", str(phone_port), "-m", "1",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), _target(endpoint.address), cwd=sipp_cwd,
        )  # fmt: skip
        assert registered.returncode == 0, registered.errors
        call = await endpoint.call("2001", caller="5551234", ring_timeout=5)
        assert call.state is CallState.CONNECTED
        assert call.codec.name == "PCMU"
        await call.hangup()
        result = await asyncio.wait_for(phone, 15)
        assert result.returncode == 0, result.errors or result.stderr
    finally:
        if not phone.done():
            phone.cancel()
    assert handler.ended[-1].reason is EndReason.LOCAL_HANGUP


async def test_outbound_call_not_answered_is_cancelled(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    from commserver.sip import CallFailed

    endpoint, handler = await make_endpoint()
    phone_port = free_udp_port()
    phone = asyncio.create_task(
        run_sipp(
            "-sf",
            str(SCENARIOS / "uas_ring_cancel.xml"),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(phone_port),
            cwd=sipp_cwd,
        )
    )
    try:
        await udp_port_bound(phone_port)
        from commserver.sip.message import SipUri

        target = SipUri(host="127.0.0.1", user="2001", port=phone_port)
        with pytest.raises(CallFailed) as failure:
            await endpoint.call(target, ring_timeout=0.5)
        assert failure.value.status == 408
        result = await asyncio.wait_for(phone, 15)
        assert result.returncode == 0, result.errors or result.stderr
    finally:
        if not phone.done():
            phone.cancel()
    assert handler.ended[-1].reason is EndReason.NO_ANSWER


async def test_malformed_datagrams_get_400_or_are_dropped_while_sipp_is_served(
    make_endpoint: EndpointFactory, sipp_cwd: Path, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    host, port = endpoint.address
    garbage: list[bytes] = [
        b"\x00\x01\x02 not sip at all",
        b"INVITE sip:100@x SIP/2.0\r\n\r\n",  # no headers to address a reply: dropped
        (
            f"INVITE sip:100@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-bad1\r\n"
            "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
            "Call-ID: bad1@test\r\nCSeq: 1 INVITE\r\nContent-Length: 500\r\n\r\nv=0\r\n"
        ).encode(),  # Content-Length beyond the datagram: 400
        (
            f"INVITE sip:100@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-bad2\r\n"
            "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
            "Call-ID: bad2@test\r\nCSeq: one INVITE\r\nContent-Length: 0\r\n\r\n"
        ).encode(),  # bad CSeq: 400
        b"\xff\xfe" * 3000,
    ]
    sipp = asyncio.create_task(
        run_sipp(
            "-sn",
            "uac",
            "-s",
            "100",
            "-m",
            "5",
            "-r",
            "10",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_udp_port()),
            _target(endpoint.address),
            cwd=sipp_cwd,
        )
    )
    for data in garbage * 5:
        peer.send(data, endpoint.address)
        await asyncio.sleep(0.01)
    replies = [r for r in await peer.silence(0.5) if r.startswith(b"SIP/2.0 400")]
    assert len(replies) == 10  # the two addressable ones, five times each
    result = await sipp
    assert result.returncode == 0, result.errors or result.stderr
    assert len(handler.offered) == 5
    assert endpoint.transport.malformed_count == 25


def _answer_and_play(call: SipCall, event: CallOffered) -> None:
    call.answer()
