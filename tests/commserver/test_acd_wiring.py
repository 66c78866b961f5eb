"""The server drives the real ACD: overflow on max wait, auto-pause on missed rings, the
reason of each assignment, and supervisors' state changes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from commserver.agents import AgentState, AgentStateChanged
from commserver.calls import CallController
from commserver.clock import utcnow
from commserver.contacts import CallRecord, ContactState
from commserver.contacts.events import CallRecordStored, ContactStateChanged
from commserver.errors import InvalidTransition, NoSuchAgent
from commserver.telephony.base import (
    CallTransferred,
    EndpointRegistration,
    EndpointState,
    EndpointStateChanged,
)
from commserver.telephony.sim import SimBackend, SimCaller
from tests.commserver.conftest import ServerFactory


def sim(backend: object) -> SimBackend:
    assert isinstance(backend, SimBackend)
    return backend


def queues(**support: Any) -> list[dict[str, Any]]:
    return [
        {"name": "support", "skills": {"support": 1}, "wrap_up": 0.05, **support},
        {"name": "billing", "skills": {"billing": 1}, "wrap_up": 0.05},
    ]


async def test_a_caller_waiting_past_max_wait_goes_to_voicemail(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    overflow = {"max_wait": 0.2, "on_max_wait": {"action": "voicemail", "target": "support"}}
    async with make_server(queues=queues(**overflow)) as server:
        server.calls.set_agent_state("s1", AgentState.PAUSED, "meeting")
        stored = server.bus.subscribe(CallRecordStored)
        sim(server.backend).place_call(SimCaller(digits="1", talk_time=0.1))
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
    assert record.outcome == "voicemail"
    [message] = (tmp_path / "voicemail" / "support").glob("*.wav")
    assert message.stat().st_size > 1000
    assert record.queue == "support"
    assert record.wait_seconds >= 0.2
    assert (tmp_path / "voicemail" / "support").is_dir()


async def test_an_agent_who_keeps_missing_rings_is_paused_by_the_acd(
    make_server: ServerFactory,
) -> None:
    async with make_server(acd={"auto_pause_after_misses": 1}) as server:
        states = server.bus.subscribe(AgentStateChanged)
        sim(server.backend).unanswering.add("s1")
        server.calls.set_agent_state("sb", AgentState.READY)
        stored = server.bus.subscribe(CallRecordStored)
        sim(server.backend).place_call(SimCaller(digits="1", talk_time=0.02))
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
        s1 = server.calls.agents["s1"]
        changes = []
        while (event := states.get_nowait()) is not None:
            changes.append((event.agent_id, event.new))
    assert record.agent_id == "sb"
    assert s1.state is AgentState.PAUSED
    assert s1.pause_reason == "ring-no-answer"
    assert ("s1", AgentState.RESERVED) in changes
    assert ("s1", AgentState.PAUSED) in changes


async def test_every_assignment_says_why(make_server: ServerFactory) -> None:
    async with make_server() as server:
        stored = server.bus.subscribe(CallRecordStored)
        sim(server.backend).place_call(SimCaller(digits="2", talk_time=0.01))
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
        why = server.calls.acd.why(record.contact_id)
    assert why is not None
    assert why.queue == "billing"
    assert "b1" in why.candidates
    assert "billing" in why.describe()


async def test_supervisor_commands_go_through_the_acd(make_server: ServerFactory) -> None:
    async with make_server() as server:
        calls = server.calls
        seen = []
        for state, reason in [
            (AgentState.PAUSED, "training"),
            (AgentState.READY, ""),
            (AgentState.LOGGED_OUT, ""),
        ]:
            calls.set_agent_state("sb", state, reason)
            seen.append((calls.agents["sb"].state, calls.agents["sb"].pause_reason))
        with pytest.raises(InvalidTransition):
            calls.set_agent_state("sb", AgentState.BUSY)
        with pytest.raises(NoSuchAgent):
            calls.set_agent_state("nobody", AgentState.READY)
    assert seen == [
        (AgentState.PAUSED, "training"),
        (AgentState.READY, ""),
        (AgentState.LOGGED_OUT, ""),
    ]


async def test_a_call_the_pbx_transferred_away_is_recorded_as_transferred(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        states = server.bus.subscribe(ContactStateChanged)
        stored = server.bus.subscribe(CallRecordStored)
        call_id = sim(server.backend).place_call(SimCaller(digits="1", talk_time=60))
        while (await asyncio.wait_for(states.get(), 5)).new is not ContactState.CONNECTED:
            pass
        server.calls.on_telephony_event(
            CallTransferred(at=utcnow(), call_id=call_id, destination="3000")
        )
        await sim(server.backend).hangup(call_id)
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
        agent = server.calls.agents["s1"]
    assert record.outcome == "transferred"
    assert record.agent_id == "s1"
    assert agent.state in (AgentState.WRAP_UP, AgentState.READY)


async def test_a_phone_busy_outside_caruso_keeps_its_agent_out_of_routing(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        calls = server.calls

        def phone(state: EndpointState) -> None:
            calls.on_telephony_event(
                EndpointStateChanged(at=utcnow(), extension="2001", state=state)
            )

        phone(EndpointState.IN_USE)
        busy = (calls.agents["s1"].state, calls.agents["s1"].pause_reason)
        phone(EndpointState.AVAILABLE)
        back = calls.agents["s1"].state
    assert busy == (AgentState.PAUSED, "phone-busy")
    assert back is AgentState.READY


async def test_registering_logs_in_and_unregistering_mid_call_logs_out_once_free(
    make_server: ServerFactory,
) -> None:
    async with make_server(telephony={"sip": {"ready_on_register": True}}) as server:
        calls = server.calls

        def register(registered: bool) -> None:
            calls.on_telephony_event(
                EndpointRegistration(at=utcnow(), extension="2003", registered=registered)
            )

        calls.set_agent_state("s1", AgentState.LOGGED_OUT)
        register(True)
        assert calls.agents["sb"].state is AgentState.READY
        states = server.bus.subscribe(ContactStateChanged)
        stored = server.bus.subscribe(CallRecordStored)
        sim(server.backend).place_call(SimCaller(digits="1", talk_time=0.3))
        while (await asyncio.wait_for(states.get(), 5)).new is not ContactState.CONNECTED:
            pass
        register(False)
        still_on_call = state_of(calls, "sb")
        await asyncio.wait_for(stored.get(), 5)
        while state_of(calls, "sb") is not AgentState.LOGGED_OUT:
            await asyncio.wait_for(states.get(), 5)
    assert still_on_call is AgentState.BUSY


def state_of(calls: CallController, agent_id: str) -> AgentState:
    """An agent's state, read afresh (it changes under the test's feet)."""
    return calls.agents[agent_id].state
