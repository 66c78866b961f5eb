"""A whole Caruso (`build_server`) on the asterisk backend, driven through the fake Asterisk."""

from __future__ import annotations

import asyncio

import pytest

from commserver.contacts import CallRecord, ContactState
from commserver.contacts.events import CallRecordStored, ContactStateChanged
from commserver.errors import ConfigError
from commserver.telephony.asterisk import AsteriskBackend
from tests.asterisk.conftest import ServerFactory
from tests.asterisk.fake_asterisk import FakeAsterisk, FakeChannel


def asterisk(backend: object) -> AsteriskBackend:
    assert isinstance(backend, AsteriskBackend)
    return backend


async def keys_at_the_menu(fake: FakeAsterisk, channel: FakeChannel, digits: str) -> None:
    """Wait for the menu prompt to play, then key the choice."""
    await fake.wait_for(lambda: channel.played, timeout=10.0)
    fake.press(channel, digits)


async def talking(fake: FakeAsterisk, channel: FakeChannel) -> FakeChannel:
    """Wait until the caller is bridged with an agent; return the agent's channel."""
    await fake.wait_for(lambda: channel.bridge is not None, timeout=10.0)
    assert channel.bridge is not None
    return channel.bridge.target


async def test_a_call_goes_through_the_ivr_and_queue_to_the_agent_and_is_recorded(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    async with make_server() as server:
        states = server.bus.subscribe(ContactStateChanged)
        stored = server.bus.subscribe(CallRecordStored)
        channel = fake.incoming_call(caller="+4930111", dialed="100")
        await keys_at_the_menu(fake, channel, "1")
        agent = await talking(fake, channel)
        assert agent.device == "PJSIP/2001"  # s1 has the support skill
        assert agent.uniqueid.startswith("caruso-agent-")
        assert not channel.moh
        await asyncio.sleep(0.05)
        fake.hangup(channel)
        done = await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
        path = []
        while (event := states.get_nowait()) is not None:
            path.append(event.new)
        await fake.wait_for(lambda: agent.hung_up.is_set())
    assert done.outcome == "answered"
    assert (record.caller, record.queue, record.agent_id) == ("+4930111", "support", "s1")
    assert record.hangup_cause == "caller-hangup"
    assert record.talk_seconds is not None
    assert record.talk_seconds >= 0.04
    assert path[1:5] == [
        ContactState.IVR,
        ContactState.QUEUED,
        ContactState.OFFERED,
        ContactState.CONNECTED,
    ]
    commands = channel.commands
    assert commands[0] == "ANSWER"
    assert any(c.startswith("STREAM FILE") for c in commands)
    assert 'SET MUSIC ON "default"' in commands
    assert any(c.startswith("EXEC Bridge") for c in commands)


async def test_ami_junk_and_a_slow_manager_during_a_call_do_not_break_it(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    async with make_server() as server:
        stored = server.bus.subscribe(CallRecordStored)
        channel = fake.incoming_call()
        fake.inject(b"\x00\xffnot AMI at all\r\n\r\nKey: without event\r\n\r\n")
        fake.response_delay = 0.05
        await keys_at_the_menu(fake, channel, "2")
        fake.inject(b"Event: VarSet\r\nPrivilege: dialplan,all\r\nVari")
        fake.inject(b"able: X\r\nValue: 1\r\n\r\n")  # a frame split across writes
        agent = await talking(fake, channel)
        fake.hangup(agent)
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
    assert record.agent_id == "b1"
    assert record.hangup_cause == "agent-hangup"


async def test_wrong_manager_credentials_stop_the_start_with_a_clear_error(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    with pytest.raises(ConfigError) as caught:
        async with make_server(
            telephony={"backend": "asterisk", "asterisk": {"port": fake.port, "secret": "nope"}}
        ):
            pass
    message = str(caught.value)
    assert "refused the manager login of user 'caruso'" in message
    assert "nope" not in message
    assert caught.value.details["key"] == "telephony.asterisk.secret"


async def test_a_reconnect_mid_call_keeps_one_contact_and_one_record(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    async with make_server() as server:
        stored = server.bus.subscribe(CallRecordStored)
        channel = fake.incoming_call()
        await keys_at_the_menu(fake, channel, "1")
        await talking(fake, channel)
        fake.drop_sessions()
        backend = asterisk(server.backend)
        await fake.wait_for(lambda: backend.resyncs == 2 and backend.manager.ready)
        assert len(server.calls.live_contacts) == 1
        fake.hangup(channel)
        await asyncio.wait_for(stored.get(), 5)
        records = await server.storage.query(CallRecord)
    assert len(records) == 1


async def test_a_caruso_restart_with_a_call_up_keeps_it_up_and_the_next_one_adopts_it(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    async with make_server(server={"drain_timeout": 0.2}) as first:
        channel = fake.incoming_call()
        await keys_at_the_menu(fake, channel, "1")
        agent = await talking(fake, channel)
    # Caruso stopped: the conversation did not.
    assert channel.uniqueid in fake.channels
    assert agent.uniqueid in fake.channels
    assert channel.bridge is not None
    assert first.backend is not None
    async with make_server() as second:
        backend = asterisk(second.backend)
        await fake.wait_for(lambda: backend.adopted == 1)
        [contact] = second.calls.live_contacts
        assert contact.agent_id == "s1"
        assert contact.state is ContactState.CONNECTED
        fake.hangup(agent)  # the agent hangs up: the new Caruso ends the caller's leg too
        await fake.wait_for(lambda: channel.hung_up.is_set())


async def test_the_adopted_call_is_recorded_by_the_next_caruso(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    async with make_server(server={"drain_timeout": 0.2}):
        channel = fake.incoming_call()
        await keys_at_the_menu(fake, channel, "1")
        agent = await talking(fake, channel)
    async with make_server() as second:
        stored = second.bus.subscribe(CallRecordStored)
        await fake.wait_for(lambda: asterisk(second.backend).adopted == 1)
        fake.hangup(agent)
        await asyncio.wait_for(stored.get(), 3)
        records = await second.storage.query(CallRecord)
    assert [r.agent_id for r in records][-1] == "s1"


async def test_while_caruso_is_stopped_new_callers_reach_the_fallback_queue(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    async with make_server():
        pass
    assert fake.globals["CARUSO_ONLINE"] == "0"
    channel = fake.incoming_call()
    assert channel.fallback
    assert not channel.in_agi
