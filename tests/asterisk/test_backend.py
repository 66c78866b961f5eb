"""The asterisk backend's commands and events against the fake Asterisk, one leg at a time."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import pytest

from commserver.telephony.asterisk import AGENT_PREFIX, AsteriskBackend
from commserver.telephony.base import (
    AgentEndpoint,
    BackendCapability,
    CallEnded,
    CallGone,
    CallOffered,
    CallTransferred,
    DigitReceived,
    EndpointRegistration,
    EndpointState,
    EndpointStateChanged,
    HangupCause,
    Prompt,
    RingOutcome,
    SpyMode,
    TelephonyError,
)
from tests.asterisk.conftest import BackendFactory, Recorder
from tests.asterisk.fake_asterisk import FakeAsterisk, FakeChannel

AGENT = AgentEndpoint(agent_id="s1", extension="2001")


def hears_music(channel: FakeChannel) -> bool:
    return channel.moh


def silence(path: Path) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(1600))
    return path


async def offered(
    fake: FakeAsterisk, recorder: Recorder, **call: str
) -> tuple[FakeChannel, CallOffered]:
    channel = fake.incoming_call(**call)
    events = await recorder.wait_for(CallOffered, len(recorder.of(CallOffered)) + 1)
    return channel, events[-1]


async def connected(
    backend: AsteriskBackend, fake: FakeAsterisk, recorder: Recorder
) -> tuple[FakeChannel, str, str]:
    """A caller answered, rung through to agent s1 and bridged: (caller, call id, agent leg)."""
    channel, offer = await offered(fake, recorder)
    await backend.answer(offer.call_id)
    outcome, leg = await backend.ring_agent(offer.call_id, AGENT, timeout=2.0)
    assert outcome is RingOutcome.ANSWERED
    assert leg is not None
    await backend.bridge(offer.call_id, leg)
    return channel, offer.call_id, leg


async def test_an_inbound_call_is_offered_with_its_caller_and_dialed_number(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    _, recorder = await make_backend()
    channel, offer = await offered(fake, recorder, caller="+3312345", dialed="100", name="Ann")
    assert offer.call_id == channel.uniqueid
    assert (offer.caller, offer.dialed, offer.caller_name) == ("+3312345", "100", "Ann")
    assert offer.headers["agi_channel"] == channel.name
    assert fake.globals["CARUSO_ONLINE"] == "1"


async def test_the_ivr_answers_plays_and_collects_digits_typed_during_the_prompt(
    make_backend: BackendFactory, fake: FakeAsterisk, tmp_path: Path
) -> None:
    backend, recorder = await make_backend()
    fake.prompt_seconds = 0.5
    channel, offer = await offered(fake, recorder)
    await backend.answer(offer.call_id)
    assert channel.state == 6
    prompt = silence(tmp_path / "menu.wav")
    playing = asyncio.create_task(backend.play(offer.call_id, Prompt(wav=prompt)))
    await fake.wait_for(lambda: channel.digit_waiter is not None)
    started = time.monotonic()
    fake.press(channel, "42#7")
    await playing
    assert time.monotonic() - started < 0.3  # the first key cut the prompt short
    assert channel.played == [str(tmp_path / "menu")]  # STREAM FILE wants no extension
    digits = await backend.collect_digits(offer.call_id, max_digits=4, timeout=0.5)
    assert digits == "42"  # up to the terminator; the 7 stays for the next question
    assert await backend.collect_digits(offer.call_id, max_digits=1, timeout=0.5) == "7"
    assert [e.digit for e in recorder.of(DigitReceived)] == ["4", "2", "#", "7"]


async def test_collecting_digits_times_out_empty(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    _, offer = await offered(fake, recorder)
    started = time.monotonic()
    assert await backend.collect_digits(offer.call_id, max_digits=1, timeout=0.2) == ""
    assert 0.18 <= time.monotonic() - started < 0.5


async def test_a_text_prompt_is_rendered_and_played_by_its_path(
    make_backend: BackendFactory, fake: FakeAsterisk, tmp_path: Path
) -> None:
    backend, recorder = await make_backend()
    channel, offer = await offered(fake, recorder)
    await backend.play(offer.call_id, Prompt(text="Thank you for calling."))
    [played] = channel.played
    assert await asyncio.to_thread(Path(played + ".wav").is_file)


async def test_ringing_an_agent_then_bridging_connects_caller_and_agent(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    channel, offer = await offered(fake, recorder, caller="5550001", name="Bob")
    await backend.answer(offer.call_id)
    await backend.start_music(offer.call_id)
    assert hears_music(channel)
    outcome, leg = await backend.ring_agent(offer.call_id, AGENT, timeout=2.0)
    assert outcome is RingOutcome.ANSWERED
    assert leg is not None
    assert leg.startswith(AGENT_PREFIX)
    [agent] = fake.agent_channels()
    assert agent.uniqueid == leg
    assert agent.variables == {
        "CARUSO_ROLE": "agent",
        "CARUSO_CALL": offer.call_id,
        "CARUSO_AGENT": "s1",
    }
    originate = next(a for a in fake.actions if a.get("action") == "Originate")
    assert originate["callerid"] == '"Bob" <5550001>'
    await backend.stop_music(offer.call_id)
    await backend.bridge(offer.call_id, leg)
    [bridge] = fake.bridges.values()
    assert {bridge.bridger.uniqueid, bridge.target.uniqueid} == {offer.call_id, leg}
    assert not hears_music(channel)
    assert recorder.of(CallEnded) == []


@pytest.mark.parametrize(
    ("phone", "endpoint", "expected"),
    [
        ({"busy": True}, AGENT, RingOutcome.BUSY),
        ({"answer_after": None}, AGENT, RingOutcome.NO_ANSWER),
        ({"registered": False}, AGENT, RingOutcome.FAILED),
        ({}, AgentEndpoint(agent_id="x9", extension="2999"), RingOutcome.FAILED),
        ({}, AgentEndpoint(agent_id="remote"), RingOutcome.FAILED),
    ],
    ids=["busy", "no-answer", "unregistered", "unknown-extension", "no-phone-at-all"],
)
async def test_ring_outcomes_are_mapped_and_leave_nothing_behind(
    make_backend: BackendFactory,
    fake: FakeAsterisk,
    phone: dict[str, object],
    endpoint: AgentEndpoint,
    expected: RingOutcome,
) -> None:
    backend, recorder = await make_backend()
    fake.phone("2001", **phone)
    _, offer = await offered(fake, recorder)
    outcome, leg = await backend.ring_agent(offer.call_id, endpoint, timeout=0.3)
    assert (outcome, leg) == (expected, None)
    await fake.wait_for(lambda: not fake.agent_channels())
    assert recorder.of(CallEnded) == []  # a ring nobody took is no call for the server
    assert backend.live_calls == 1


async def test_a_caller_hanging_up_while_the_agent_rings_stops_the_ringing(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    fake.phone("2001", answer_after=None)
    channel, offer = await offered(fake, recorder)
    ringing = asyncio.create_task(backend.ring_agent(offer.call_id, AGENT, timeout=5.0))
    await fake.wait_for(lambda: fake.agent_channels())
    started = time.monotonic()
    fake.hangup(channel)
    assert await ringing == (RingOutcome.CALLER_GONE, None)
    assert time.monotonic() - started < 0.5
    await fake.wait_for(lambda: not fake.agent_channels())
    [ended] = recorder.of(CallEnded)
    assert (ended.call_id, ended.cause) == (offer.call_id, HangupCause.CALLER_HANGUP)


async def test_a_ring_the_server_withdraws_stops_the_phone_and_leaves_no_leg(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    fake.phone("2001", answer_after=None)
    _, offer = await offered(fake, recorder)
    ringing = asyncio.create_task(backend.ring_agent(offer.call_id, AGENT, timeout=5.0))
    await fake.wait_for(lambda: fake.agent_channels())
    ringing.cancel()  # the ACD's ring timeout, or another agent answered first
    await asyncio.gather(ringing, return_exceptions=True)
    await fake.wait_for(lambda: not fake.agent_channels())
    await fake.wait_for(lambda: backend.live_calls == 1)
    assert recorder.of(CallEnded) == []


async def test_a_ring_withdrawn_before_asterisk_made_the_channel_is_cleaned_up_too(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    fake.phone("2001", answer_after=0.05)
    _, offer = await offered(fake, recorder)
    ringing = asyncio.create_task(backend.ring_agent(offer.call_id, AGENT, timeout=5.0))
    await asyncio.sleep(0)  # cancelled while the Originate is on its way
    ringing.cancel()
    await asyncio.gather(ringing, return_exceptions=True)
    await asyncio.sleep(0.2)  # it would have answered by now
    assert fake.agent_channels() == []
    await fake.wait_for(lambda: backend.live_calls == 1)


async def test_who_hung_up_is_reported_as_the_hangup_cause(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    _, call_id, leg = await connected(backend, fake, recorder)
    fake.hangup(fake.channels[leg])
    ended = await recorder.wait_for(CallEnded)
    assert (ended[0].call_id, ended[0].cause) == (leg, HangupCause.AGENT_HANGUP)
    await backend.hangup(call_id, HangupCause.AGENT_HANGUP)
    ended = await recorder.wait_for(CallEnded, 2)
    assert (ended[1].call_id, ended[1].cause) == (call_id, HangupCause.AGENT_HANGUP)
    assert fake.hung_up[call_id].cause == 16
    await backend.hangup(call_id)  # a leg that is gone: not an error


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (16, HangupCause.CALLER_HANGUP),
        (17, HangupCause.BUSY),
        (19, HangupCause.NO_ANSWER),
        (21, HangupCause.REJECTED),
        (27, HangupCause.UNREACHABLE),
        (41, HangupCause.FAILED),
    ],
)
async def test_asterisk_hangup_causes_map_to_call_outcomes(
    make_backend: BackendFactory, fake: FakeAsterisk, cause: int, expected: HangupCause
) -> None:
    _, recorder = await make_backend()
    channel, offer = await offered(fake, recorder)
    fake.hangup(channel, cause)
    [ended] = await recorder.wait_for(CallEnded)
    assert (ended.call_id, ended.cause) == (offer.call_id, expected)


async def test_device_and_contact_state_become_endpoint_events_without_repeats(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()

    def registered() -> list[tuple[str, bool]]:
        return [(e.extension, e.registered) for e in recorder.of(EndpointRegistration)]

    # From the DeviceStateList of the first resync (both phones registered before).
    assert sorted(registered()) == [("2001", True), ("2002", True)]
    fake.unregister("2001")  # ContactStatus Removed and DeviceStateChange UNAVAILABLE
    await recorder.wait_for(EndpointRegistration, 3)
    fake.register("2001")
    await recorder.wait_for(EndpointRegistration, 4)
    fake.register("2001")  # a refresh from the same phone is no news
    fake.phone("9999")  # not an agent's extension
    await asyncio.sleep(0.1)
    assert registered()[2:] == [("2001", False), ("2001", True)]
    await connected(backend, fake, recorder)
    states = [(e.extension, e.state) for e in recorder.of(EndpointStateChanged)]
    assert ("2001", EndpointState.RINGING) in states
    assert states[-1] == ("2001", EndpointState.IN_USE)
    assert all(ext != "9999" for ext, _ in states)


async def test_voicemail_recording_writes_the_file_and_returns_its_length(
    make_backend: BackendFactory, fake: FakeAsterisk, tmp_path: Path
) -> None:
    backend, recorder = await make_backend()
    fake.record_seconds = 0.25
    channel, offer = await offered(fake, recorder)
    target = tmp_path / "voicemail" / "box-1" / "msg-1.wav"
    seconds = await backend.record(offer.call_id, target, max_seconds=60)
    assert seconds == pytest.approx(0.25, abs=0.01)
    assert target.is_file()
    assert 'RECORD FILE "' + str(target.with_suffix("")) + '" wav "#" 60000 0 BEEP s=5' in (
        channel.commands
    )
    recording = asyncio.create_task(backend.record(offer.call_id, target, max_seconds=60))
    await fake.wait_for(lambda: channel.digit_waiter is not None)
    fake.press(channel, "#")
    assert await recording < 0.2  # '#' ends it early


async def test_a_voicemail_ended_by_hanging_up_still_returns_its_length(
    make_backend: BackendFactory, fake: FakeAsterisk, tmp_path: Path
) -> None:
    backend, recorder = await make_backend()
    fake.record_seconds = 5.0
    channel, offer = await offered(fake, recorder)
    message = tmp_path / "m.wav"
    recording = asyncio.create_task(backend.record(offer.call_id, message, max_seconds=9))
    await fake.wait_for(lambda: channel.digit_waiter is not None)
    await asyncio.sleep(0.1)
    fake.hangup(channel)
    seconds = await recording
    assert 0.05 < seconds < 1.0


async def test_call_recording_starts_and_stops_mixmonitor(
    make_backend: BackendFactory, fake: FakeAsterisk, tmp_path: Path
) -> None:
    backend, recorder = await make_backend()
    assert BackendCapability.RECORD in backend.capabilities
    channel, call_id, _ = await connected(backend, fake, recorder)
    await backend.start_recording(call_id, tmp_path / "calls" / "c1.wav")
    assert channel.mixmonitor == str(tmp_path / "calls" / "c1.wav")
    await backend.stop_recording(call_id)
    assert channel.mixmonitor == ""
    await backend.stop_recording(call_id)  # nothing running: fine


async def test_a_blind_transfer_sends_the_caller_on_and_lets_go_of_the_call(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    channel, call_id, leg = await connected(backend, fake, recorder)
    await backend.blind_transfer(call_id, "3000")
    [moved] = recorder.of(CallTransferred)
    assert (moved.call_id, moved.destination, moved.attended) == (call_id, "3000", False)
    ended = await recorder.wait_for(CallEnded, 2)
    assert {(e.call_id, e.cause) for e in ended} == {
        (call_id, HangupCause.NORMAL),
        (leg, HangupCause.AGENT_HANGUP),
    }
    assert (channel.context, channel.exten) == ("caruso-transfer", "3000")
    assert call_id in fake.channels  # the caller goes on, without Caruso


async def test_an_attended_transfer_completes_when_asterisk_reports_it(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    channel, call_id, _ = await connected(backend, fake, recorder)
    await backend.attended_transfer(call_id, "3001")
    [moved] = await recorder.wait_for(CallTransferred)
    assert (moved.call_id, moved.destination, moved.attended) == (call_id, "3001", True)
    assert channel.exten == "3001"


@pytest.mark.parametrize(
    ("mode", "options"),
    [(SpyMode.LISTEN, "qE"), (SpyMode.WHISPER, "qEw"), (SpyMode.BARGE, "qEB")],
)
async def test_a_supervisor_listens_whispers_or_barges_through_chanspy(
    make_backend: BackendFactory, fake: FakeAsterisk, mode: SpyMode, options: str
) -> None:
    backend, recorder = await make_backend()
    assert {BackendCapability.LISTEN, BackendCapability.WHISPER, BackendCapability.BARGE} <= (
        backend.capabilities
    )
    _, call_id, leg = await connected(backend, fake, recorder)
    spy_id = await backend.spy(call_id, AgentEndpoint(agent_id="boss", extension="2002"), mode)
    spy = fake.channels[spy_id]
    assert spy.spying_on == fake.channels[leg].name
    assert spy.spy_options == options
    await backend.hangup(spy_id)
    await fake.wait_for(lambda: spy_id not in fake.channels)
    assert leg in fake.channels  # the call goes on


async def test_supervising_a_call_without_an_agent_is_refused(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    _, offer = await offered(fake, recorder)
    with pytest.raises(TelephonyError, match="connected to an agent"):
        await backend.spy(offer.call_id, AgentEndpoint("boss", "2002"), SpyMode.LISTEN)


async def test_a_refused_caller_is_handed_to_the_dialplan_fallback_not_hung_up(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    channel, offer = await offered(fake, recorder)
    await backend.hangup(offer.call_id, HangupCause.REJECTED)
    [ended] = await recorder.wait_for(CallEnded)
    assert (ended.call_id, ended.cause) == (offer.call_id, HangupCause.REJECTED)
    await fake.wait_for(lambda: channel.fallback)
    assert channel.variables["CARUSO_FALLBACK"] == "1"
    assert not channel.hung_up.is_set()


async def test_after_stop_accepting_new_callers_go_to_the_fallback_queue(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    await backend.stop_accepting()
    assert fake.globals["CARUSO_ONLINE"] == "0"
    channel = fake.incoming_call()
    assert channel.fallback
    await asyncio.sleep(0.05)
    assert recorder.of(CallOffered) == []


async def test_the_heartbeat_is_refreshed_for_the_dialplan(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    await make_backend()

    def beats() -> list[dict[str, str]]:
        return [a for a in fake.actions if a.get("variable") == "CARUSO_HEARTBEAT"]

    first = len(beats())
    await fake.wait_for(lambda: len(beats()) >= first + 2, timeout=2.0)
    assert abs(int(fake.globals["CARUSO_HEARTBEAT"]) - time.time()) < 2


async def test_a_stale_heartbeat_sends_callers_to_the_fallback(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    _, recorder = await make_backend()
    fake.globals["CARUSO_HEARTBEAT"] = str(int(time.time()) - 60)  # Caruso went quiet
    channel = fake.incoming_call()
    assert channel.fallback
    assert recorder.of(CallOffered) == []


async def test_close_keeps_connected_calls_up_and_hands_waiting_callers_over(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    _, call_id, leg = await connected(backend, fake, recorder)
    waiting, offer = await offered(fake, recorder)
    await backend.answer(offer.call_id)
    await backend.close()
    ended = {e.call_id: e.cause for e in recorder.of(CallEnded)}
    assert ended == {
        call_id: HangupCause.SHUTDOWN,
        leg: HangupCause.SHUTDOWN,
        offer.call_id: HangupCause.SHUTDOWN,
    }
    await fake.wait_for(lambda: waiting.fallback)
    assert call_id in fake.channels
    assert leg in fake.channels
    assert len(fake.bridges) == 1  # still talking
    assert fake.globals["CARUSO_ONLINE"] == "0"


async def test_hangup_on_stop_ends_everything(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend(hangup_on_stop=True)
    _, call_id, leg = await connected(backend, fake, recorder)
    await backend.close()
    await fake.wait_for(lambda: call_id not in fake.channels and leg not in fake.channels)


async def test_commands_for_a_call_that_is_gone_raise_call_gone(
    make_backend: BackendFactory, fake: FakeAsterisk
) -> None:
    backend, recorder = await make_backend()
    channel, offer = await offered(fake, recorder)
    fake.hangup(channel)
    await recorder.wait_for(CallEnded)
    with pytest.raises(CallGone):
        await backend.answer(offer.call_id)
    with pytest.raises(CallGone):
        await backend.play(offer.call_id, Prompt(text="hello"))
    await backend.stop_music(offer.call_id)  # nothing to stop: fine
