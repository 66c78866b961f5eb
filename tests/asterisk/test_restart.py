"""Restart safety: reconnects resync without duplicates; a new Caruso adopts live calls."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

from commserver.telephony.asterisk import AsteriskBackend
from commserver.telephony.base import (
    CallAdopted,
    CallEnded,
    CallOffered,
    HangupCause,
    Prompt,
    RingOutcome,
)
from tests.asterisk.conftest import BackendFactory
from tests.asterisk.fake_asterisk import FakeAsterisk
from tests.asterisk.test_backend import AGENT, connected, offered


async def reconnected(backend: AsteriskBackend, fake: FakeAsterisk, count: int = 2) -> None:
    await fake.wait_for(lambda: backend.resyncs >= count and backend.manager.ready)


async def crash(backend: AsteriskBackend) -> None:
    """Caruso dies: its manager connection goes away without any goodbye to Asterisk."""
    await backend.manager.close()


async def test_a_reconnect_resyncs_without_offering_live_calls_again(
    make_backend: BackendFactory, fake: FakeAsterisk, tmp_path: Path
) -> None:
    backend, recorder = await make_backend()
    channel, offer = await offered(fake, recorder)
    await backend.answer(offer.call_id)
    fake.drop_sessions()
    await reconnected(backend, fake)
    assert len(recorder.of(CallOffered)) == 1
    assert recorder.of(CallAdopted) == []
    # Still Caruso's call: commands work on the new connection.
    with wave.open(str(tmp_path / "p.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(160))
    await backend.play(offer.call_id, Prompt(wav=tmp_path / "p.wav"))
    assert channel.played == [str(tmp_path / "p")]
    fake.hangup(channel)
    await recorder.wait_for(CallEnded)
    fake.drop_sessions()
    await reconnected(backend, fake, 3)
    assert len(recorder.of(CallEnded)) == 1


async def test_a_call_that_ended_while_disconnected_ends_at_the_resync(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    channel, offer = await offered(fake, recorder)
    fake.drop_sessions()
    fake.hangup(channel)  # its Hangup event reaches no manager session
    await reconnected(backend, fake)
    [ended] = await recorder.wait_for(CallEnded)
    assert (ended.call_id, ended.cause) == (offer.call_id, HangupCause.CALLER_HANGUP)
    assert backend.live_calls == 0


async def test_a_call_arriving_while_disconnected_is_offered_once_after_the_resync(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    fake.drop_sessions()
    channel = fake.incoming_call()  # AsyncAGIStart reaches nobody
    await reconnected(backend, fake)
    [offer] = await recorder.wait_for(CallOffered)
    assert offer.call_id == channel.uniqueid
    assert (offer.caller, offer.dialed) == ("5551234", "100")
    fake.drop_sessions()
    await reconnected(backend, fake, 3)
    assert len(recorder.of(CallOffered)) == 1
    await backend.answer(offer.call_id)
    assert channel.state == 6


async def test_an_agi_result_lost_with_the_connection_is_settled_by_the_resync(
    make_backend: BackendFactory, fake: FakeAsterisk, tmp_path: Path
) -> None:
    backend, recorder = await make_backend()
    fake.prompt_seconds = 0.3
    channel, offer = await offered(fake, recorder)
    playing = asyncio.create_task(backend.play(offer.call_id, Prompt(wav=tmp_path / "x.wav")))
    await fake.wait_for(lambda: channel.digit_waiter is not None)
    fake.drop_sessions()  # the AsyncAGIExec of this prompt will reach nobody
    async with asyncio.timeout(3.0):
        await playing  # returns after the resync instead of waiting forever
    assert backend.resyncs == 2


async def test_a_ring_in_flight_during_a_reconnect_still_gets_its_answer(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    fake.phone("2001", answer_after=0.4)
    _, offer = await offered(fake, recorder)
    ringing = asyncio.create_task(backend.ring_agent(offer.call_id, AGENT, timeout=3.0))
    await fake.wait_for(lambda: fake.agent_channels())
    fake.drop_sessions()
    outcome, leg = await ringing
    assert outcome is RingOutcome.ANSWERED
    assert leg is not None
    await backend.bridge(offer.call_id, leg)


async def test_a_restarted_caruso_adopts_a_connected_call_exactly_once(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    first, first_events = await make_backend()
    caller, call_id, leg = await connected(first, fake, first_events)
    await first.close()  # a Caruso restart: connected calls are left up
    assert len(fake.bridges) == 1
    second, events = await make_backend()
    [adopted] = await events.wait_for(CallAdopted)
    assert adopted.call_id == call_id
    assert (adopted.agent_leg_id, adopted.agent_id) == (leg, "s1")
    assert (adopted.caller, adopted.dialed, adopted.answered) == ("5551234", "100", True)
    assert adopted.up_since is not None
    assert events.of(CallOffered) == []
    fake.drop_sessions()
    await reconnected(second, fake)
    assert len(events.of(CallAdopted)) == 1  # no duplicate contact on a later resync
    fake.hangup(fake.channels[leg])
    ended = await events.wait_for(CallEnded)
    assert (ended[0].call_id, ended[0].cause) == (leg, HangupCause.AGENT_HANGUP)
    await second.hangup(call_id, HangupCause.AGENT_HANGUP)
    await fake.wait_for(lambda: caller.hung_up.is_set())


async def test_after_a_crash_an_answered_caller_in_the_queue_is_adopted(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    first, first_events = await make_backend()
    channel, offer = await offered(fake, first_events)
    await first.answer(offer.call_id)
    await first.start_music(offer.call_id)
    await crash(first)
    second, events = await make_backend()
    [adopted] = await events.wait_for(CallAdopted)
    assert (adopted.call_id, adopted.answered, adopted.agent_leg_id) == (
        offer.call_id,
        True,
        None,
    )
    assert channel.moh  # still hearing music while the new Caruso takes over
    outcome, leg = await second.ring_agent(offer.call_id, AGENT, timeout=2.0)
    assert outcome is RingOutcome.ANSWERED
    assert leg is not None
    await second.bridge(offer.call_id, leg)


async def test_resync_after_a_restart_takes_well_under_five_seconds(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    first, first_events = await make_backend()
    for _ in range(20):
        _, offer = await offered(fake, first_events)
        await first.answer(offer.call_id)
    await crash(first)
    started = time.monotonic()
    second, events = await make_backend()
    await events.wait_for(CallAdopted, 20)
    assert time.monotonic() - started < 5.0
    assert second.adopted == 20


async def test_an_agent_leg_left_ringing_by_a_crashed_caruso_is_hung_up(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    first, first_events = await make_backend()
    fake.phone("2001", answer_after=None)
    _, offer = await offered(fake, first_events)
    await first.answer(offer.call_id)
    ringing = asyncio.create_task(first.ring_agent(offer.call_id, AGENT, timeout=30.0))
    await fake.wait_for(lambda: fake.agent_channels())
    await crash(first)
    _, events = await make_backend()
    await fake.wait_for(lambda: not fake.agent_channels())  # the agent's phone stops ringing
    [adopted] = await events.wait_for(CallAdopted)
    assert adopted.agent_leg_id is None
    ringing.cancel()
    await asyncio.gather(ringing, return_exceptions=True)


async def test_a_caller_who_hung_up_during_the_restart_is_not_adopted(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    first, first_events = await make_backend()
    channel, offer = await offered(fake, first_events)
    await first.answer(offer.call_id)
    await crash(first)
    fake.hangup(channel)
    await fake.wait_for(lambda: channel.uniqueid not in fake.channels)
    _, events = await make_backend()
    await asyncio.sleep(0.1)
    assert events.of(CallAdopted) == []
    assert events.of(CallOffered) == []
