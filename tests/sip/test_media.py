"""RTP over real UDP: prompt pacing, recording, DTMF in and out, the B2BUA relay, hold, drain."""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import struct
import wave
from pathlib import Path

import pytest

from commserver.sip import CallState, EndReason, SipCall, SipEndpoint, g711
from commserver.sip.dtmf import TelephoneEvent, event_payloads
from commserver.sip.media import wav_bytes
from commserver.sip.message import SipResponse
from commserver.sip.rtp import RtpPacket, RtpPortRange
from commserver.sip.sdp import Codec, SessionDescription
from tests.sip.sip_harness import (
    EndpointFactory,
    RecordingHandler,
    UdpPeer,
    free_udp_port,
    in_dialog,
    invite,
)


def tone(frequency: float, seconds: float, amplitude: int = 8000) -> bytes:
    """16-bit PCM of a sine tone at 8 kHz."""
    count = int(8000 * seconds)
    return struct.pack(
        f"<{count}h",
        *(int(amplitude * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(count)),
    )


def frequency_of(pcm: bytes) -> float:
    """Dominant frequency estimated from zero crossings."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / 8000)


async def answered_call(
    endpoint: SipEndpoint,
    handler: RecordingHandler,
    peer: UdpPeer,
    rtp: UdpPeer,
    *,
    codecs: str = "0 101",
    call_id: str = "call-1@test",
    dtmf_pt: int = 101,
    branch: str = "z9hG4bK-test-1",
    from_tag: str = "caller-tag",
) -> tuple[SipCall, tuple[str, int], str]:
    """A call from `peer` whose media goes to `rtp`, answered and ACKed."""
    peer.send(
        invite(
            endpoint.address,
            peer.port,
            sdp_port=rtp.port,
            codecs=codecs,
            call_id=call_id,
            dtmf_pt=dtmf_pt,
            branch=branch,
            from_tag=from_tag,
        ),
        endpoint.address,
    )
    ok = await peer.recv_response(200)
    assert isinstance(ok, SipResponse)
    to_tag = ok.to_addr.tag
    assert to_tag is not None
    peer.send(
        in_dialog(
            "ACK",
            endpoint.address,
            peer.port,
            from_tag=from_tag,
            to_tag=to_tag,
            cseq=1,
            call_id=call_id,
        ),
        endpoint.address,
    )
    audio = SessionDescription.parse(ok.body).audio()
    assert audio is not None
    call = next(c for c in handler.calls if c.id == call_id)
    await handler.wait_for(lambda: call.state is CallState.CONNECTED)
    return call, ("127.0.0.1", audio.port), to_tag


async def rtp_packets(rtp: UdpPeer, seconds: float) -> list[RtpPacket]:
    """RTP packets that arrive within `seconds`."""
    packets = [RtpPacket.parse(d) for d in await rtp.silence(seconds)]
    return [p for p in packets if p is not None]


async def test_prompt_is_sent_at_20ms_pacing_with_continuous_numbering(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        call, _, _ = await answered_call(endpoint, handler, peer, rtp)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await call.play(tone(1000, 1.0))
        elapsed = loop.time() - started
        packets = await rtp_packets(rtp, 0.2)
    finally:
        rtp.close()
    assert 0.95 < elapsed < 1.3
    assert len(packets) == 50
    assert len({p.ssrc for p in packets}) == 1
    assert all(p.payload_type == 0 and len(p.payload) == 160 for p in packets)
    assert [(b.sequence - a.sequence) & 0xFFFF for a, b in itertools.pairwise(packets)] == [1] * 49
    assert {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets)} == {
        160
    }
    assert packets[0].marker
    pcm = g711.decode(b"".join(p.payload for p in packets), Codec.PCMU)
    assert 950 < frequency_of(pcm) < 1050


async def test_recording_writes_a_wav_of_the_callers_audio(
    make_endpoint: EndpointFactory, peer: UdpPeer, tmp_path: Path
) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        call, media, _ = await answered_call(endpoint, handler, peer, rtp, codecs="8 101")
        audio = g711.encode(tone(500, 1.0), Codec.PCMA)

        async def speak() -> None:
            for index in range(50):
                packet = RtpPacket(
                    8,
                    1000 + index,
                    5000 + 160 * index,
                    0xABCD,
                    audio[index * 160 : (index + 1) * 160],
                )
                rtp.send(packet.to_bytes(), media)
                await asyncio.sleep(0.02)

        target = tmp_path / "message.wav"
        speaking = asyncio.create_task(speak())
        seconds = await call.record(target, max_seconds=0.6)
        await speaking
    finally:
        rtp.close()
    assert 0.55 <= seconds <= 0.6
    with wave.open(str(target), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        frames = wav.readframes(wav.getnframes())
    assert 480 < frequency_of(frames) < 520


async def test_recording_stops_on_pound(
    make_endpoint: EndpointFactory, peer: UdpPeer, tmp_path: Path
) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        call, media, _ = await answered_call(endpoint, handler, peer, rtp)
        audio = g711.encode(tone(700, 0.3), Codec.PCMU)

        async def speak_then_press_pound() -> None:
            for index in range(15):
                rtp.send(
                    RtpPacket(
                        0, index, 160 * index, 7, audio[index * 160 : (index + 1) * 160]
                    ).to_bytes(),
                    media,
                )
                await asyncio.sleep(0.02)
            for number, (payload, marker) in enumerate(event_payloads("#")):
                rtp.send(
                    RtpPacket(101, 15 + number, 160 * 15, 7, payload, marker).to_bytes(), media
                )

        task = asyncio.create_task(speak_then_press_pound())
        loop = asyncio.get_running_loop()
        started = loop.time()
        seconds = await call.record(tmp_path / "vm.wav", max_seconds=10)
        await task
    finally:
        rtp.close()
    assert loop.time() - started < 2
    assert 0.25 < seconds < 0.4
    assert [d.digit for d in handler.digits] == ["#"]


async def test_dtmf_is_sent_as_rfc4733_events(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        call, _, _ = await answered_call(endpoint, handler, peer, rtp)
        await call.send_dtmf("9#")
        packets = await rtp_packets(rtp, 0.2)
    finally:
        rtp.close()
    events = [
        (p.timestamp, TelephoneEvent.parse(p.payload)) for p in packets if p.payload_type == 101
    ]
    presses = {ts: e.digit or "" for ts, e in events if e is not None}
    assert sorted(presses.values()) == ["#", "9"]
    assert sum(1 for _, e in events if e is not None and e.end) == 6


async def test_sip_info_dtmf_is_reported(make_endpoint: EndpointFactory, peer: UdpPeer) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        call, _, to_tag = await answered_call(endpoint, handler, peer, rtp)
        host, port = endpoint.address
        body = "Signal=5\r\nDuration=160\r\n"
        peer.send(
            f"INFO sip:100@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-info\r\n"
            f"From: <sip:5551234@127.0.0.1>;tag=caller-tag\r\nTo: <sip:100@{host}>;tag={to_tag}\r\n"
            "Call-ID: call-1@test\r\nCSeq: 3 INFO\r\nContent-Type: application/dtmf-relay\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}",
            endpoint.address,
        )
        assert (await peer.recv_response(200)).cseq.method == "INFO"
        assert await call.collect_digits(max_digits=1, timeout=1) == "5"
    finally:
        rtp.close()


async def test_collect_digits_stops_at_terminator_or_timeout(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        call, media, _ = await answered_call(endpoint, handler, peer, rtp)
        for number, digit in enumerate("12#3"):
            for payload, marker in event_payloads(digit, 40):
                rtp.send(
                    RtpPacket(101, number * 10, 1000 * number, 9, payload, marker).to_bytes(), media
                )
        assert await call.collect_digits(max_digits=5, timeout=1) == "12"
        assert await call.collect_digits(max_digits=5, timeout=0.2) == "3"
        assert await call.collect_digits(max_digits=5, timeout=0.1) == ""
    finally:
        rtp.close()


async def test_relay_rewrites_ssrc_sequence_timestamp_and_transcodes(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    peer_b = await UdpPeer.open()
    rtp_a, rtp_b = await UdpPeer.open(), await UdpPeer.open()
    try:
        leg_a, media_a, _ = await answered_call(endpoint, handler, peer, rtp_a, codecs="0 101")
        leg_b, media_b, _ = await answered_call(
            endpoint, handler, peer_b, rtp_b, codecs="8 96", call_id="call-2@test", dtmf_pt=96
        )
        await leg_b.play(tone(300, 0.1))  # B's stream has history the relay must continue
        before = await rtp_packets(rtp_b, 0.05)
        relay = endpoint.bridge(leg_a, leg_b)
        audio = g711.encode(tone(1000, 0.2), Codec.PCMU)
        for index in range(5):  # stream 1 from A
            rtp_a.send(
                RtpPacket(
                    0,
                    100 + index,
                    8000 + 160 * index,
                    0x1111,
                    audio[index * 160 : (index + 1) * 160],
                ).to_bytes(),
                media_a,
            )
        await asyncio.sleep(0.05)
        for index in range(5):  # A restarts with a new SSRC and random numbering
            rtp_a.send(
                RtpPacket(
                    0,
                    60000 + index,
                    999 + 160 * index,
                    0x2222,
                    audio[(5 + index) * 160 : (6 + index) * 160],
                ).to_bytes(),
                media_a,
            )
        for number, (payload, marker) in enumerate(event_payloads("3", 40)):
            packet = RtpPacket(101, 60005 + number, 999 + 800, 0x2222, payload, marker)
            rtp_a.send(packet.to_bytes(), media_a)
        rtp_b.send(
            RtpPacket(8, 1, 1, 0x3333, g711.encode(tone(400, 0.02), Codec.PCMA)).to_bytes(), media_b
        )
        at_b = await rtp_packets(rtp_b, 0.2)
        at_a = await rtp_packets(rtp_a, 0.05)
    finally:
        for udp in (peer_b, rtp_a, rtp_b):
            udp.close()
    audio_b = [p for p in at_b if p.payload_type == 8]
    dtmf_b = [p for p in at_b if p.payload_type == 96]
    assert len(audio_b) == 10
    assert {p.ssrc for p in at_b} == {before[0].ssrc} == {leg_b.media.ssrc}
    sequences = [p.sequence for p in [*before, *at_b]]
    assert [(b - a) & 0xFFFF for a, b in itertools.pairwise(sequences)] == [1] * (
        len(sequences) - 1
    )
    timestamps = [p.timestamp for p in audio_b]
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(timestamps)]
    assert steps == [160] * 9  # one continuous clock across A's SSRC change
    assert audio_b[0].marker
    assert audio_b[5].marker
    decoded = g711.decode(b"".join(p.payload for p in audio_b), Codec.PCMA)
    assert 950 < frequency_of(decoded) < 1050  # µ-law in, A-law out, same tone
    assert {TelephoneEvent.parse(p.payload).digit for p in dtmf_b} == {"3"}  # type: ignore[union-attr]
    assert [p.ssrc for p in at_a] == [leg_a.media.ssrc]  # B -> A too
    assert relay.packets_relayed == len(at_b) + len(at_a)
    assert [d.digit for d in handler.digits] == ["3"]


async def test_reinvite_to_hold_and_back_is_answered_with_mirrored_direction(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        call, _, to_tag = await answered_call(endpoint, handler, peer, rtp)
        host, port = endpoint.address
        body = (
            "v=0\r\no=test 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp.port} RTP/AVP 0 101\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"
        )
        peer.send(
            f"INVITE sip:100@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-hold\r\n"
            f"From: <sip:5551234@127.0.0.1>;tag=caller-tag\r\nTo: <sip:100@{host}>;tag={to_tag}\r\n"
            "Call-ID: call-1@test\r\nCSeq: 5 INVITE\r\nContact: <sip:caller@127.0.0.1>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}",
            endpoint.address,
        )
        ok = await peer.recv_response(200)
        assert b"a=recvonly" in ok.body
        assert call.offer is not None
        assert call.offer.is_hold
        assert call.state is CallState.CONNECTED
    finally:
        rtp.close()


async def test_stop_hangs_up_live_calls_with_bye(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        await answered_call(endpoint, handler, peer, rtp)

        async def answer_bye() -> None:
            from commserver.sip.message import make_response

            bye = await peer.recv_request("BYE", timeout=3)
            peer.send(make_response(bye, 200).to_bytes(), endpoint.address)

        answering = asyncio.create_task(answer_bye())
        await endpoint.stop(timeout=2)
        await answering
    finally:
        rtp.close()
    assert handler.ended[0].reason is EndReason.SHUTDOWN
    assert not endpoint.calls


async def test_play_wav_plays_a_prompt_file(
    make_endpoint: EndpointFactory, peer: UdpPeer, tmp_path: Path
) -> None:
    endpoint, handler = await make_endpoint()
    prompt = tmp_path / "hello.wav"
    prompt.write_bytes(wav_bytes(tone(600, 0.2)))
    rtp = await UdpPeer.open()
    try:
        call, _, _ = await answered_call(endpoint, handler, peer, rtp)
        assert await call.play_wav(prompt)
        packets = await rtp_packets(rtp, 0.1)
    finally:
        rtp.close()
    assert len(packets) == 10


async def test_recording_ends_after_trailing_silence(
    make_endpoint: EndpointFactory, peer: UdpPeer, tmp_path: Path
) -> None:
    endpoint, handler = await make_endpoint()
    rtp = await UdpPeer.open()
    try:
        call, media, _ = await answered_call(endpoint, handler, peer, rtp)
        speech = g711.encode(tone(400, 0.3), Codec.PCMU)
        quiet = g711.encode(bytes(320), Codec.PCMU)

        async def speak_then_hush() -> None:
            for index in range(100):
                payload = speech[index * 160 : (index + 1) * 160] if index < 15 else quiet
                rtp.send(RtpPacket(0, index, 160 * index, 5, payload).to_bytes(), media)
                await asyncio.sleep(0.02)

        task = asyncio.create_task(speak_then_hush())
        seconds = await call.record(tmp_path / "vm.wav", max_seconds=5, silence_seconds=0.4)
        task.cancel()
    finally:
        rtp.close()
    assert 0.6 < seconds < 1.2  # 0.3 s of speech, then stopped by 0.4 s of silence
    assert (tmp_path / "vm.wav").exists()


async def test_the_signalled_media_address_wins_over_a_stranger_who_latched_first(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    endpoint, handler = await make_endpoint()
    rtp, stranger = await UdpPeer.open(), await UdpPeer.open()
    try:
        call, media, _ = await answered_call(endpoint, handler, peer, rtp)
        packet = RtpPacket(0, 1, 160, 0x2222, bytes(160)).to_bytes()
        stranger.send(packet, media)  # same host, other port: looks like a NAT move
        await asyncio.sleep(0.05)
        rtp.send(packet, media)  # the SDP address speaks: the stream moves back to it
        await asyncio.sleep(0.05)
        stranger.send(packet, media)
        await asyncio.sleep(0.05)
        await call.play(tone(500, 0.06))
        to_caller = await rtp_packets(rtp, 0.2)
        to_stranger = await stranger.silence(0.05)
    finally:
        rtp.close()
        stranger.close()
    assert call.media.remote == ("127.0.0.1", rtp.port)
    assert call.media.stats.rejected == 1
    assert len(to_caller) == 3
    assert to_stranger == []


def test_rtp_port_range_hands_out_even_ports_round_robin() -> None:
    ports = RtpPortRange(10001, 10008)
    assert len(ports) == 4
    assert list(ports.candidates()) == [10002, 10004, 10006, 10008]
    first = next(ports.candidates())
    assert next(ports.candidates()) == first + 2  # each search starts after the last port used
    with pytest.raises(ValueError, match="no even port"):
        RtpPortRange(10001, 10001)


async def test_a_full_rtp_port_range_refuses_the_call_with_503(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        port = free_udp_port() & ~1
        holder.bind(("127.0.0.1", port))
        endpoint, handler = await make_endpoint(rtp_ports=(port, port))
        rtp = await UdpPeer.open()
        try:
            peer.send(invite(endpoint.address, peer.port, sdp_port=rtp.port), endpoint.address)
            refused = await peer.recv_response(503)
        finally:
            rtp.close()
    finally:
        holder.close()
    assert "no media port" in refused.reason
    assert handler.offered == []
