"""Prompts of every call on the endpoint's one 20 ms clock (`media_playout.Playout`), over UDP."""

from __future__ import annotations

import asyncio
import itertools

from commserver.sip import SipCall, SipEndpoint
from commserver.sip.rtp import RtpPacket
from tests.sip.sip_harness import EndpointFactory, UdpPeer
from tests.sip.test_media import answered_call, tone


async def packets_until(rtp: UdpPeer, count: int, within: float = 5.0) -> list[RtpPacket]:
    """RTP packets received by `rtp`, returned once `count` arrived (or the deadline passed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    packets: list[RtpPacket] = []
    while len(packets) < count and loop.time() < deadline:
        try:
            data = await rtp.recv_raw(timeout=max(deadline - loop.time(), 0.01))
        except TimeoutError:
            break
        packet = RtpPacket.parse(data)
        if packet is not None:
            packets.append(packet)
    return packets


async def two_calls(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> tuple[list[SipCall], list[UdpPeer], SipEndpoint]:
    """Two answered calls on one endpoint, each with its own RTP phone."""
    endpoint, handler = await make_endpoint()
    phones = [await UdpPeer.open(), await UdpPeer.open()]
    calls = [
        (
            await answered_call(
                endpoint,
                handler,
                peer,
                rtp,
                call_id=f"playout-{index}@test",
                branch=f"z9hG4bK-playout-{index}",
                from_tag=f"caller-{index}",
            )
        )[0]
        for index, rtp in enumerate(phones)
    ]
    return calls, phones, endpoint


async def test_prompts_on_two_calls_play_every_frame_in_order_on_one_clock(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    calls, phones, endpoint = await two_calls(make_endpoint, peer)
    try:
        played = await asyncio.gather(*(call.play(tone(700, 0.3)) for call in calls))
        received = [await packets_until(rtp, 15) for rtp in phones]
        assert endpoint.playout.playing == 0
    finally:
        for rtp in phones:
            rtp.close()
    assert played == [True, True]
    for packets in received:
        assert len(packets) == 15
        assert packets[0].marker
        assert not any(p.marker for p in packets[1:])
        steps = [(b.sequence - a.sequence) & 0xFFFF for a, b in itertools.pairwise(packets)]
        assert steps == [1] * 14
        assert all(len(p.payload) == 160 for p in packets)


async def test_a_new_prompt_ends_the_one_playing_and_plays_from_its_start(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    calls, phones, _ = await two_calls(make_endpoint, peer)
    call, rtp = calls[0], phones[0]
    try:
        long_prompt = asyncio.ensure_future(call.play(tone(400, 5.0)))
        assert len(await packets_until(rtp, 3)) == 3
        assert await call.play(tone(900, 0.1))
        assert await long_prompt is False
        tail = await packets_until(rtp, 20, within=0.5)
    finally:
        for peer_rtp in phones:
            peer_rtp.close()
    # After the short prompt's 5 frames nothing more came: the long one really stopped.
    assert sum(1 for p in tail if p.marker) == 1
    assert len(tail) <= 6


async def test_stop_playback_cancel_and_hang_up_each_end_a_prompt(
    make_endpoint: EndpointFactory, peer: UdpPeer
) -> None:
    calls, phones, endpoint = await two_calls(make_endpoint, peer)
    first, second = calls
    try:
        stopped = asyncio.ensure_future(first.play(tone(400, 5.0)))
        assert len(await packets_until(phones[0], 2)) == 2
        first.stop_playback()
        assert await stopped is False

        cancelled = asyncio.ensure_future(first.play(tone(400, 5.0)))
        assert len(await packets_until(phones[0], 2)) == 2
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        assert endpoint.playout.playing == 0

        hung_up = asyncio.ensure_future(second.play(tone(400, 5.0)))
        assert len(await packets_until(phones[1], 2)) == 2
        hanging_up = asyncio.ensure_future(second.hangup())  # ends the leg at once, then BYE
        assert await hung_up is False
        await hanging_up
        assert endpoint.playout.playing == 0
    finally:
        for rtp in phones:
            rtp.close()


async def test_an_empty_prompt_plays_at_once(make_endpoint: EndpointFactory, peer: UdpPeer) -> None:
    calls, phones, endpoint = await two_calls(make_endpoint, peer)
    try:
        assert await calls[0].play(b"")
        assert endpoint.playout.playing == 0
    finally:
        for rtp in phones:
            rtp.close()
