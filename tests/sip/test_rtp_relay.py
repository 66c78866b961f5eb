"""The B2BUA RTP relay over real UDP on 127.0.0.1: stream continuity, pass-through, DTMF,
latching, hold, recording and closing, on the standard loop and on uvloop.

Phones are plain UDP sockets; every packet a test waits for is awaited with a deadline, and
"nothing was relayed" is shown by a later packet arriving first (one socket, packets in order).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from commserver.sip import g711
from commserver.sip.dtmf import TelephoneEvent, event_payloads
from commserver.sip.media import FRAME_BYTES, Recording
from commserver.sip.rtp import RtpPacket, RtpRelay, RtpSession
from commserver.sip.sdp import Codec, Direction, MediaOffer
from tests.sip.sip_harness import UdpPeer


@dataclass
class Bridge:
    """Two phones, each facing its own leg, and the relay between the legs (once started)."""

    phone_a: UdpPeer
    phone_b: UdpPeer
    leg_a: RtpSession
    leg_b: RtpSession
    relay: RtpRelay


@asynccontextmanager
async def bridge(
    *,
    codec_a: Codec = Codec.PCMU,
    codec_b: Codec = Codec.PCMU,
    dtmf_a: int = 101,
    dtmf_b: int = 101,
) -> AsyncIterator[Bridge]:
    """Two legs with their phones, configured by SDP but not yet relaying."""
    phone_a, phone_b = await UdpPeer.open(), await UdpPeer.open()
    leg_a, leg_b = await RtpSession.open("127.0.0.1"), await RtpSession.open("127.0.0.1")
    leg_a.configure(MediaOffer("127.0.0.1", phone_a.port, codec_a, dtmf_a, Direction.SENDRECV))
    leg_b.configure(MediaOffer("127.0.0.1", phone_b.port, codec_b, dtmf_b, Direction.SENDRECV))
    try:
        yield Bridge(phone_a, phone_b, leg_a, leg_b, RtpRelay(leg_a, leg_b))
    finally:
        for closable in (leg_a, leg_b, phone_a, phone_b):
            closable.close()


def audio(ssrc: int, seq: int, ts: int, *, fill: int = 0xFF, marker: bool = False) -> bytes:
    """One 20 ms µ-law packet; `fill` tells packets apart."""
    return RtpPacket(0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, bytes([fill]) * 160, marker).to_bytes()


async def receive(phone: UdpPeer, count: int) -> list[RtpPacket]:
    """The next `count` packets at a phone, parsed (each awaited with a deadline)."""
    packets = []
    for _ in range(count):
        packet = RtpPacket.parse(await phone.recv_raw(timeout=2.0))
        assert packet is not None
        packets.append(packet)
    return packets


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll `condition` until it holds, failing after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - counters the relay owns have no signal
            await asyncio.sleep(0.005)


def steps(values: list[int], modulus: int) -> list[int]:
    return [(b - a) % modulus for a, b in itertools.pairwise(values)]


async def prompt_then_relayed_audio() -> tuple[list[RtpPacket], list[RtpPacket], RtpSession]:
    """Phone A hears two prompt frames, then phone B's audio, then one more prompt frame."""
    async with bridge() as b:
        for index in range(2):
            b.leg_a.send_audio_frame(bytes(FRAME_BYTES), marker=index == 0)
        prompt = await receive(b.phone_a, 2)
        b.relay.start()
        for index in range(20):
            b.phone_b.send(
                audio(0xB0B, 500 + index, 9000 + 160 * index, fill=index), b.leg_b.local_address
            )
        relayed = await receive(b.phone_a, 20)
        b.relay.stop()
        b.leg_a.send_audio_frame(bytes(FRAME_BYTES))
        after = await receive(b.phone_a, 1)
        return prompt, [*relayed, *after], b.leg_a


def assert_one_continuous_stream(prompt: list[RtpPacket], rest: list[RtpPacket], ssrc: int) -> None:
    stream = [*prompt, *rest]
    assert {p.ssrc for p in stream} == {ssrc}
    assert steps([p.sequence for p in stream], 1 << 16) == [1] * (len(stream) - 1)
    assert steps([p.timestamp for p in stream], 1 << 32) == [160] * (len(stream) - 1)
    assert [p.marker for p in stream] == [True, False, True] + [False] * (len(stream) - 3)


async def test_relayed_audio_continues_the_prompt_stream_ssrc_sequence_and_timestamp() -> None:
    prompt, rest, leg_a = await prompt_then_relayed_audio()
    assert_one_continuous_stream(prompt, rest, leg_a.ssrc)
    assert [p.payload for p in rest[:20]] == [bytes([i]) * 160 for i in range(20)]


async def test_relayed_audio_continues_the_prompt_stream_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")
    prompt, rest, leg_a = await asyncio.to_thread(uvloop.run, prompt_then_relayed_audio())
    assert_one_continuous_stream(prompt, rest, leg_a.ssrc)


def fast_path(leg: RtpSession) -> bool:
    """Whether packets from this leg's phone may skip the general path right now."""
    return leg._route is not None


async def test_plain_audio_on_a_latched_bridged_leg_takes_fast_path_but_recording_not() -> None:
    recording = Recording(max_seconds=5)
    async with bridge() as b:
        b.relay.start()
        assert not fast_path(b.leg_a)  # not latched yet: the first packet goes the general way
        b.phone_a.send(audio(0xA, 1, 160), b.leg_a.local_address)
        await receive(b.phone_b, 1)
        assert fast_path(b.leg_a)
        b.leg_a.recording = recording
        assert not fast_path(b.leg_a)  # the recording needs every packet decoded
        b.phone_a.send(audio(0xA, 2, 320), b.leg_a.local_address)
        await receive(b.phone_b, 1)
        await until(lambda: recording.seconds > 0)
        b.leg_a.recording = None
        assert fast_path(b.leg_a)


async def test_leg_that_never_sent_passes_packets_on_unchanged_then_stays_continuous() -> None:
    async with bridge() as b:
        b.relay.start()
        sent = [audio(0xA, 100 + i, 1000 + 160 * i, fill=i) for i in range(5)]
        for packet in sent:
            b.phone_a.send(packet, b.leg_a.local_address)
        first = await receive(b.phone_b, 5)
        # A new stream always starts with the marker; the rest are the phone's own bytes.
        assert first[0] == RtpPacket(0, 100, 1000, 0xA, bytes(160), marker=True)
        assert [p.to_bytes() for p in first[1:]] == sent[1:]
        # Phone A restarts its stream (new SSRC, new numbering): B still sees one stream.
        for index in range(5):
            b.phone_a.send(audio(0xA2, 60000 + index, 7 + 160 * index), b.leg_a.local_address)
        second = await receive(b.phone_b, 5)
    stream = [*first, *second]
    assert {p.ssrc for p in stream} == {0xA}
    assert steps([p.sequence for p in stream], 1 << 16) == [1] * 9
    assert steps([p.timestamp for p in stream], 1 << 32) == [160] * 9
    assert [p.marker for p in stream] == [True, False, False, False, False] * 2


async def test_dtmf_is_relayed_with_the_far_legs_payload_type_and_detected_on_the_way() -> None:
    digits: list[str] = []
    async with bridge(dtmf_a=101, dtmf_b=96) as b:
        b.leg_a.on_dtmf = digits.append
        b.relay.start()
        b.phone_a.send(audio(0xA, 1, 160), b.leg_a.local_address)
        events = event_payloads("7", 60)
        for number, (payload, marker) in enumerate(events):
            packet = RtpPacket(101, 2 + number, 320, 0xA, payload, marker)
            b.phone_a.send(packet.to_bytes(), b.leg_a.local_address)
        b.phone_a.send(audio(0xA, 2 + len(events), 320 + 480), b.leg_a.local_address)
        at_b = await receive(b.phone_b, 2 + len(events))
    dtmf = [p for p in at_b if p.payload_type == 96]
    assert len(dtmf) == len(events)
    assert {TelephoneEvent.parse(p.payload).digit for p in dtmf} == {"7"}  # type: ignore[union-attr]
    assert {p.timestamp for p in dtmf} == {at_b[0].timestamp + 160}  # one event, one timestamp
    assert [p.payload_type for p in at_b] == [0] + [96] * len(events) + [0]
    assert digits == ["7"]


async def test_packets_from_a_stranger_or_not_rtp_are_dropped_once_the_leg_latched() -> None:
    stranger = await UdpPeer.open()
    try:
        async with bridge() as b:
            b.relay.start()
            b.phone_a.send(audio(0xA, 1, 160, fill=1), b.leg_a.local_address)
            await receive(b.phone_b, 1)
            for index in range(3):
                stranger.send(audio(0x5, 1 + index, 160, fill=0x55), b.leg_a.local_address)
            b.phone_a.send(b"not rtp at all", b.leg_a.local_address)
            b.phone_a.send(bytes([0x40]) + bytes(171), b.leg_a.local_address)  # RTP version 1
            b.phone_a.send(bytes(8), b.leg_a.local_address)  # shorter than a header
            b.phone_a.send(audio(0xA, 2, 320, fill=2), b.leg_a.local_address)
            (next_at_b,) = await receive(b.phone_b, 1)
            stats = b.leg_a.stats
    finally:
        stranger.close()
    assert next_at_b.payload == bytes([2]) * 160  # the stranger's packets never went through
    assert stats.rejected == 6
    assert stats.packets_received == 2
    assert b.leg_b.stats.packets_relayed == 2


async def test_rtp_with_csrc_extension_and_padding_is_relayed_as_its_payload_only() -> None:
    async with bridge() as b:
        b.relay.start()
        b.phone_a.send(audio(0xA, 1, 160), b.leg_a.local_address)
        await receive(b.phone_b, 1)
        # Padding bit, one CSRC, header extension of one word, 3 bytes of padding.
        header = bytes([0x80 | 0x20 | 0x10 | 1, 0, 0, 2, 0, 0, 1, 64, 0, 0, 0, 0xA])
        packet = header + bytes(4) + bytes([0xBE, 0xDE, 0, 1]) + bytes(4) + b"\x42" * 160
        b.phone_a.send(packet + bytes([0, 0, 3]), b.leg_a.local_address)
        (relayed,) = await receive(b.phone_b, 1)
    assert relayed.payload == b"\x42" * 160
    assert relayed.sequence == 2
    assert relayed.timestamp == 320


async def test_held_phone_gets_nothing_and_relaying_resumes_when_it_takes_media_again() -> None:
    async with bridge() as b:
        b.relay.start()
        b.phone_a.send(audio(0xA, 1, 160, fill=1), b.leg_a.local_address)
        await receive(b.phone_b, 1)
        b.leg_b.direction = Direction.RECVONLY  # B's phone said sendonly: it takes nothing now
        for index in range(3):
            b.phone_a.send(audio(0xA, 2 + index, 320 + 160 * index), b.leg_a.local_address)
        await until(lambda: b.leg_b.stats.held == 3)
        b.leg_b.direction = Direction.SENDRECV
        b.phone_a.send(audio(0xA, 5, 800, fill=5), b.leg_a.local_address)
        (resumed,) = await receive(b.phone_b, 1)
    assert resumed.payload == bytes([5]) * 160
    assert resumed.sequence == 5  # the gap shows what the held phone did not get
    assert b.leg_b.stats.packets_relayed == 2


async def test_legs_with_different_laws_are_transcoded_both_ways() -> None:
    async with bridge(codec_a=Codec.PCMU, codec_b=Codec.PCMA) as b:
        b.relay.start()
        ulaw = g711.encode(bytes(range(0, 256, 2)) * 2 + bytes(64), Codec.PCMU)[:160]
        b.phone_a.send(RtpPacket(0, 1, 160, 0xA, ulaw).to_bytes(), b.leg_a.local_address)
        alaw = g711.transcode(ulaw, Codec.PCMU, Codec.PCMA)
        b.phone_b.send(RtpPacket(8, 1, 160, 0xB, alaw).to_bytes(), b.leg_b.local_address)
        (at_b,) = await receive(b.phone_b, 1)
        (at_a,) = await receive(b.phone_a, 1)
    assert (at_b.payload_type, at_b.payload) == (8, alaw)
    assert (at_a.payload_type, at_a.payload) == (0, g711.transcode(alaw, Codec.PCMA, Codec.PCMU))


async def test_closing_one_leg_mid_relay_stops_that_direction_without_errors() -> None:
    async with bridge() as b:
        b.relay.start()
        b.phone_a.send(audio(0xA, 1, 160), b.leg_a.local_address)
        await receive(b.phone_b, 1)
        b.leg_b.close()
        assert b.leg_b.closed.is_set()
        b.phone_a.send(audio(0xA, 2, 320), b.leg_a.local_address)
        await until(lambda: b.leg_a.stats.packets_received == 2)
        assert b.relay.packets_relayed == 1
        b.leg_b.close()  # closing twice is harmless


async def test_jitter_follows_rfc_3550_on_the_general_and_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = itertools.count()
    # A clock that advances exactly 20 ms per packet the relay looks at.
    monkeypatch.setattr("commserver.sip.rtp._monotonic", lambda: 1000 + next(ticks) * 0.02)
    async with bridge() as b:
        b.relay.start()
        for index in range(6):  # the first packet latches (general path), the rest go fast
            b.phone_a.send(audio(0xA, index, 160 * index), b.leg_a.local_address)
            await receive(b.phone_b, 1)
            assert fast_path(b.leg_a)
        steady = b.leg_a.stats.jitter_ms
        # One packet whose timestamp runs a frame ahead of its arrival: D = 160 units (20 ms),
        # and J moves by (|D| - J) / 16 = 10 units, 1.25 ms.
        b.phone_a.send(audio(0xA, 6, 160 * 7), b.leg_a.local_address)
        await receive(b.phone_b, 1)
        jumped = b.leg_a.stats.jitter_ms
    assert steady == pytest.approx(0.0, abs=1e-6)
    assert jumped == pytest.approx(1.25, abs=1e-6)
