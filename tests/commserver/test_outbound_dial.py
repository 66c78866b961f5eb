"""Agents' own calls on the simulated backend: choosing the phone at login, click-to-dial
(agent's phone first, then the customer), the agent busy throughout, wrap-up, the record."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from commserver.agents import AgentState, AgentStateChanged
from commserver.app import Server
from commserver.clock import utcnow
from commserver.config import AsteriskSettings
from commserver.contacts import CallRecord, ContactState, Direction
from commserver.contacts.events import CallRecordStored
from commserver.dialling import NumberPolicy, mask
from commserver.errors import (
    InvalidPhoneNumber,
    InvalidTransition,
    NotSupportedByBackend,
    UnknownExtension,
)
from commserver.telephony.asterisk import AsteriskBackend
from commserver.telephony.base import BackendCapability, EndpointRegistration
from commserver.telephony.sim import SimBackend, SimCaller, SimCustomer
from ivr.prompts import PromptCache
from tests.commserver.conftest import ServerFactory
from tests.monitor.conftest import eventually


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


async def stored_record(server: Server, contact_id: str) -> CallRecord:
    stored = server.bus.subscribe(CallRecordStored)
    try:
        rows = await server.storage.query(CallRecord, where={"contact_id": contact_id})
        while not rows:
            event = await asyncio.wait_for(stored.get(), 5)
            if event.contact_id == contact_id:
                rows = await server.storage.query(CallRecord, where={"contact_id": contact_id})
    finally:
        server.bus.unsubscribe(stored)
    return rows[0]


async def test_an_answered_outbound_call_keeps_the_agent_busy_then_wraps_up_and_is_recorded(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        sim(server).default_customer = SimCustomer(ring_seconds=0.05, talk_time=0.3)
        states = server.bus.subscribe(AgentStateChanged)
        contact = server.calls.dial("s1", "+49 30 1234-5678")
        assert contact.direction is Direction.OUTBOUND
        assert contact.caller == "+493012345678"
        agent = server.calls.agents["s1"]
        assert agent.state is AgentState.BUSY
        assert agent.contact_id == contact.id
        await eventually(lambda: contact.state is ContactState.CONNECTED)
        # Busy for the whole call: an inbound caller for s1's queue waits.
        sim(server).place_call(SimCaller(digits="1", talk_time=0.1))
        await eventually(
            lambda: any(c.state is ContactState.QUEUED for c in server.calls.live_contacts)
        )
        assert server.calls.acd.agent("s1").contacts == ()
        record = await stored_record(server, contact.id)
        await eventually(lambda: agent.state is not AgentState.BUSY)
        seen = []
        while (event := states.get_nowait()) is not None:
            if event.agent_id == "s1":
                seen.append(event.new)
    assert record.direction == "outbound"
    assert record.outcome == "answered"
    assert record.agent_id == "s1"
    assert record.caller == "+493012345678"
    assert record.queue is None
    assert record.talk_seconds >= 0.25
    assert sim(server).dialled[-1] == "+493012345678"
    assert AgentState.BUSY in seen
    assert AgentState.WRAP_UP in seen
    assert seen.index(AgentState.WRAP_UP) > seen.index(AgentState.BUSY)


@pytest.mark.parametrize(
    ("customer", "outcome", "cause"),
    [
        (SimCustomer(answers=False, ring_seconds=0.05), "no-answer", "no-answer"),
        (SimCustomer(busy=True), "busy", "busy"),
    ],
)
async def test_an_unanswered_outbound_call_is_recorded_with_its_outcome_and_frees_the_agent(
    make_server: ServerFactory, customer: SimCustomer, outcome: str, cause: str
) -> None:
    async with make_server() as server:
        sim(server).customers["5551234"] = customer
        server.calls.set_agent_state("s1", AgentState.PAUSED, "admin work")
        contact = server.calls.dial("s1", "5551234")
        record = await stored_record(server, contact.id)
        agent = server.calls.agents["s1"]
        await eventually(lambda: agent.state is AgentState.PAUSED)
        assert agent.pause_reason == "admin work"  # back to where they were
    assert (record.outcome, record.hangup_cause, record.direction) == (outcome, cause, "outbound")
    assert record.answered_at is None


async def test_the_agent_not_answering_their_own_phone_fails_the_dial(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        sim(server).unanswering.add("s1")
        contact = server.calls.dial("s1", "5551234")
        await eventually(lambda: server.calls.agents["s1"].state is AgentState.BUSY, 1)
        server.calls.hang_up_outbound("s1")  # gives up while the agent's phone rings
        record = await stored_record(server, contact.id)
        await eventually(lambda: server.calls.agents["s1"].state is AgentState.READY)
    assert record.outcome == "no-answer"
    assert record.hangup_cause == "agent-hangup"
    assert sim(server).dialled == type(sim(server).dialled)()  # the customer was never called


async def test_hanging_up_from_the_desktop_ends_a_connected_outbound_call(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        sim(server).default_customer = SimCustomer(ring_seconds=0.01, talk_time=60)
        contact = server.calls.dial("s1", "5551234")
        await eventually(lambda: contact.state is ContactState.CONNECTED)
        server.calls.hang_up_outbound("s1")
        record = await stored_record(server, contact.id)
        assert sim(server).live_calls == 0
    assert record.outcome == "answered"
    assert record.hangup_cause == "agent-hangup"


async def test_a_dial_is_refused_while_on_a_call_or_logged_out_and_bad_numbers_are_refused(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        sim(server).default_customer = SimCustomer(ring_seconds=5)
        with pytest.raises(InvalidTransition):
            server.calls.dial("sb", "5551234")  # logged out
        for bad in ("", "12", "+49 (30) abc", "1" * 25, "900#1", "+++4930123", "*21*"):
            with pytest.raises(InvalidPhoneNumber):
                server.calls.dial("s1", bad)
        server.calls.dial("s1", "5551234")
        with pytest.raises(InvalidTransition):
            server.calls.dial("s1", "5559999")  # one outbound call at a time
        with pytest.raises(InvalidTransition):
            server.calls.set_agent_state("s1", AgentState.LOGGED_OUT)
        with pytest.raises(InvalidTransition):
            server.calls.set_agent_phone("s1", extension="2002")
        server.calls.hang_up_outbound("s1")
        await eventually(lambda: server.calls.agents["s1"].state is AgentState.READY)
        with pytest.raises(InvalidTransition):
            server.calls.hang_up_outbound("s1")


async def test_a_narrow_number_pattern_stops_numbers_the_site_does_not_call(
    make_server: ServerFactory,
) -> None:
    pattern = r"^\+49[0-9]{6,12}$"
    telephony = {"backend": "sim", "outbound_number_pattern": pattern}
    async with make_server(telephony=telephony) as server:
        with pytest.raises(InvalidPhoneNumber):
            server.calls.dial("s1", "+19005551234")
        contact = server.calls.dial("s1", "+4930123456")
        assert contact.caller == "+4930123456"


def test_numbers_are_logged_masked_to_their_last_four_digits() -> None:
    assert mask("+493012345678") == "+********5678"
    assert mask("123") == "123"
    assert NumberPolicy().check(" 030 / 12 34-56 ") == "030123456"


async def test_an_agent_chooses_another_extension_or_an_external_number_or_the_configured_one(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        calls = server.calls
        assert calls.agents["sb"].endpoint.extension == "2003"
        with pytest.raises(UnknownExtension):
            calls.set_agent_phone("sb", extension="7777")
        with pytest.raises(InvalidTransition):
            calls.set_agent_phone("sb", extension="2001")  # s1 is logged in there
        calls.on_telephony_event(
            EndpointRegistration(at=utcnow(), extension="7777", registered=True)
        )
        assert calls.set_agent_phone("sb", extension="7777").extension == "7777"
        with pytest.raises(InvalidPhoneNumber):
            calls.set_agent_phone("sb", external_number="call me maybe")
        phone = calls.set_agent_phone("sb", external_number="+44 20 7946 0000")
        assert phone.external_number == "+442079460000"
        assert phone.extension is None
        # Inbound offers ring the chosen phone.
        calls.set_agent_state("sb", AgentState.READY)
        calls.set_agent_state("s1", AgentState.PAUSED, "lunch")
        sim(server).place_call(SimCaller(digits="1", talk_time=0.05))
        sb = calls.agents["sb"]
        await eventually(lambda: sb.calls_taken == 1 and sb.state is AgentState.READY)
        assert calls.set_agent_phone("sb").extension == "2003"


async def test_external_phones_are_refused_when_the_backend_cannot_reach_them(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_server() as server:
        monkeypatch.setattr(
            server.backend, "capabilities", frozenset({BackendCapability.RECORD}), raising=False
        )
        with pytest.raises(NotSupportedByBackend):
            server.calls.set_agent_phone("s1", external_number="+4930123456")
        with pytest.raises(NotSupportedByBackend):
            server.calls.dial("s1", "+4930123456")


@pytest.mark.parametrize(
    ("external_channel", "reachable"), [("", False), ("PJSIP/{number}@trunk", True)]
)
def test_asterisk_rings_external_phones_only_with_an_external_channel(
    tmp_path: Path, external_channel: str, reachable: bool
) -> None:
    backend = AsteriskBackend(
        AsteriskSettings(external_channel=external_channel), prompts=PromptCache(tmp_path)
    )
    assert (BackendCapability.EXTERNAL_PHONES in backend.capabilities) is reachable
    assert BackendCapability.DIAL_OUT not in backend.capabilities  # not implemented there yet
