"""Listen / whisper / barge through the call controller on the simulated backend: a supervisor's
phone joins the call an agent is talking on, ends with the call or when stopped, every step is
an event and an audit line; what cannot be done is refused with the right error."""

from __future__ import annotations

import asyncio
import logging

import pytest

from commserver.agents import AgentState
from commserver.app import Server
from commserver.contacts import ContactState
from commserver.contacts.events import ContactStateChanged
from commserver.errors import (
    AgentNotOnCall,
    InvalidPhoneNumber,
    InvalidTransition,
    NoSuchAgent,
    NoSuchSpySession,
    NoSupervisorPhone,
    NotSupportedByBackend,
    SpyFailed,
)
from commserver.supervision import SpyEnded, SpyEndReason, SpyStarted
from commserver.telephony.base import AgentEndpoint, BackendCapability, SpyMode
from commserver.telephony.sim import SimBackend, SimCaller
from tests.commserver.conftest import ServerFactory
from tests.monitor.conftest import eventually

DOING = {SpyMode.LISTEN: "listening to", SpyMode.WHISPER: "whispering to",
         SpyMode.BARGE: "barging into"}
BOSS_PHONE = AgentEndpoint("boss", extension="2009")
#: Calls here talk for long: at the end the drain need not wait for them.
QUICK = {"server": {"drain_timeout": 0.05}}


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


async def talking(server: Server, agent_id: str = "b1", talk_time: float = 30.0) -> str:
    """Place a billing call and wait until `agent_id` is connected to it; its contact id."""
    states = server.bus.subscribe(ContactStateChanged)
    sim(server).place_call(SimCaller(caller="+4930555", digits="2", talk_time=talk_time))
    async with asyncio.timeout(5):
        while True:
            event = await states.get()
            if event.new is ContactState.CONNECTED and event.agent_id == agent_id:
                server.bus.unsubscribe(states)
                return event.contact_id


@pytest.mark.parametrize("mode", list(SpyMode))
async def test_a_supervisor_joins_a_talking_agents_call_in_each_mode_and_stops(
    make_server: ServerFactory, mode: SpyMode, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_server(**QUICK) as server:
        events = server.bus.subscribe(SpyStarted, SpyEnded)
        contact_id = await talking(server)
        caplog.set_level(logging.INFO, logger="caruso.audit")
        session = await server.calls.spy_on_agent(
            "b1", mode, supervisor="sue", phone=BOSS_PHONE
        )
        [command] = sim(server).spies
        assert (command.leg_id, command.supervisor, command.mode) == (
            session.id, BOSS_PHONE, mode
        )
        assert (session.agent_id, session.contact_id, session.supervisor) == (
            "b1", contact_id, "sue"
        )
        assert server.calls.supervision.of_agent("b1") == [session]
        started = await asyncio.wait_for(events.get(), 1)
        assert isinstance(started, SpyStarted)
        assert (started.session_id, started.agent_id, started.mode) == (session.id, "b1", mode)

        assert sim(server).live_calls == 3  # caller, agent, supervisor
        await server.calls.stop_spy(session.id, by="sue")
        ended = await asyncio.wait_for(events.get(), 1)
        assert isinstance(ended, SpyEnded)
        assert (ended.session_id, ended.reason) == (session.id, SpyEndReason.STOPPED)
        assert server.calls.supervision.sessions == []
        assert sim(server).live_calls == 2  # the call goes on
        assert server.calls.agents["b1"].state is AgentState.BUSY
    audit = [r.getMessage() for r in caplog.records if r.name == "caruso.audit"]
    assert len(audit) == 2
    assert f"supervisor sue is {DOING[mode]} agent b1" in audit[0]
    assert "supervisor sue no longer" in audit[1]
    assert "stopped by sue" in audit[1]
    assert "+4930555" not in " ".join(audit)  # never the customer


async def test_the_session_ends_when_the_call_ends(make_server: ServerFactory) -> None:
    async with make_server(**QUICK) as server:
        ended = server.bus.subscribe(SpyEnded)
        await talking(server, talk_time=0.3)
        session = await server.calls.spy_on_agent(
            "b1", SpyMode.LISTEN, supervisor="sue", phone=BOSS_PHONE
        )
        event = await asyncio.wait_for(ended.get(), 5)
        assert (event.session_id, event.reason) == (session.id, SpyEndReason.CALL_ENDED)
        assert server.calls.supervision.sessions == []
        await eventually(lambda: sim(server).live_calls == 0)  # the spy leg is hung up too


async def test_the_session_ends_when_the_supervisor_hangs_up(make_server: ServerFactory) -> None:
    async with make_server(**QUICK) as server:
        ended = server.bus.subscribe(SpyEnded)
        await talking(server)
        session = await server.calls.spy_on_agent(
            "b1", SpyMode.WHISPER, supervisor="sue", phone=BOSS_PHONE
        )
        await sim(server).hangup(session.id)  # the supervisor puts the phone down
        event = await asyncio.wait_for(ended.get(), 1)
        assert (event.session_id, event.reason) == (session.id, SpyEndReason.HUNG_UP)
        assert server.calls.agents["b1"].state is AgentState.BUSY


async def test_an_unknown_agent_is_refused(make_server: ServerFactory) -> None:
    async with make_server(**QUICK) as server:
        with pytest.raises(NoSuchAgent):
            await server.calls.spy_on_agent(
                "nobody", SpyMode.LISTEN, supervisor="sue", phone=BOSS_PHONE
            )


async def test_an_agent_who_is_not_talking_is_refused(make_server: ServerFactory) -> None:
    async with make_server(**QUICK) as server:
        with pytest.raises(AgentNotOnCall, match="not talking"):
            await server.calls.spy_on_agent(
                "s1", SpyMode.LISTEN, supervisor="sue", phone=BOSS_PHONE
            )
        assert not sim(server).spies


async def test_a_supervisor_without_a_phone_is_told_what_to_do(
    make_server: ServerFactory,
) -> None:
    async with make_server(**QUICK) as server:
        await talking(server)
        with pytest.raises(NoSupervisorPhone, match="link your account"):
            await server.calls.spy_on_agent(
                "b1", SpyMode.LISTEN, supervisor="sue", phone=AgentEndpoint("boss")
            )


async def test_an_external_number_the_site_may_not_call_is_refused(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="caruso.audit")
    async with make_server(**QUICK) as server:
        await talking(server)
        with pytest.raises(InvalidPhoneNumber):
            await server.calls.spy_on_agent(
                "b1", SpyMode.LISTEN, supervisor="sue",
                phone=AgentEndpoint("boss", external_number="+1900premium"),
            )
        session = await server.calls.spy_on_agent(
            "b1", SpyMode.LISTEN, supervisor="sue",
            phone=AgentEndpoint("boss", external_number="+49 30 1234567"),
        )
        assert session.phone == "+49301234567"
    audit = " ".join(r.getMessage() for r in caplog.records if r.name == "caruso.audit")
    assert "+*******4567" in audit  # masked in the log, as dial-out numbers are
    assert "+49301234567" not in audit


async def test_an_agent_cannot_listen_to_their_own_call(make_server: ServerFactory) -> None:
    async with make_server(**QUICK) as server:
        await talking(server)
        with pytest.raises(InvalidTransition, match="own call"):
            await server.calls.spy_on_agent(
                "b1", SpyMode.LISTEN, supervisor="b1", phone=server.calls.agents["b1"].endpoint
            )


async def test_a_supervisor_phone_that_does_not_answer_is_a_spy_failure(
    make_server: ServerFactory,
) -> None:
    async with make_server(**QUICK) as server:
        await talking(server)
        sim(server).unanswering.add("boss")
        with pytest.raises(SpyFailed, match="did not answer"):
            await server.calls.spy_on_agent(
                "b1", SpyMode.BARGE, supervisor="sue", phone=BOSS_PHONE
            )
        assert server.calls.supervision.sessions == []


async def test_a_backend_without_the_capability_refuses_every_mode(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_server(**QUICK) as server:
        await talking(server)
        monkeypatch.setattr(
            sim(server), "capabilities", frozenset({BackendCapability.RECORD})
        )
        assert server.calls.supervision.modes == ()
        for mode in SpyMode:
            with pytest.raises(NotSupportedByBackend):
                await server.calls.spy_on_agent("b1", mode, supervisor="sue", phone=BOSS_PHONE)
        assert not sim(server).spies


async def test_stopping_an_unknown_session_is_refused(make_server: ServerFactory) -> None:
    async with make_server(**QUICK) as server:
        with pytest.raises(NoSuchSpySession):
            await server.calls.stop_spy("sim-99-spy-nobody", by="sue")
