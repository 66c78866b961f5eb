"""A call end to end on the simulated backend: IVR, queue, agent, talk, hang-up, stored record."""

from __future__ import annotations

import asyncio
import itertools

from commserver.agents import AgentState
from commserver.clock import utcnow
from commserver.contacts import CallRecord, ContactState
from commserver.contacts.events import CallRecordStored, ContactStateChanged
from commserver.telephony.base import CallOffered
from commserver.telephony.sim import SimBackend, SimCaller
from tests.commserver.conftest import ServerFactory


def sim(backend: object) -> SimBackend:
    assert isinstance(backend, SimBackend)
    return backend


async def test_a_call_keys_2_reaches_the_billing_agent_and_its_record_is_stored(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        states = server.bus.subscribe(ContactStateChanged)
        stored = server.bus.subscribe(CallRecordStored)
        sim(server.backend).place_call(SimCaller(caller="+4930111", digits="2", talk_time=0.05))
        done = await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
        path = []
        while (event := states.get_nowait()) is not None:
            path.append(event.new)
    assert done.outcome == "answered"
    assert record.queue == "billing"
    assert record.agent_id == "b1"
    assert record.caller == "+4930111"
    assert record.outcome == "answered"
    assert record.answered_at is not None
    assert record.queued_at is not None
    assert record.talk_seconds >= 0.04
    # ENDED follows once the agent's wrap-up is over.
    assert path[1:6] == [
        ContactState.IVR,
        ContactState.QUEUED,
        ContactState.OFFERED,
        ContactState.CONNECTED,
        ContactState.WRAP_UP,
    ]


async def test_the_agent_wraps_up_then_takes_the_next_waiting_call(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        stored = server.bus.subscribe(CallRecordStored)
        for _ in range(3):
            sim(server.backend).place_call(SimCaller(digits="1", talk_time=0.05))
        for _ in range(3):
            await asyncio.wait_for(stored.get(), 5)
        records = await server.storage.query(CallRecord, order_by=["answered_at"])
        agent = server.calls.agents["s1"]
        assert agent.calls_taken == 3
    assert [r.agent_id for r in records] == ["s1", "s1", "s1"]
    assert all(r.outcome == "answered" for r in records)
    # Served one after another: each answered after the previous ended plus wrap-up.
    for earlier, later in itertools.pairwise(records):
        assert later.answered_at is not None
        assert earlier.ended_at is not None
        assert later.answered_at >= earlier.ended_at


async def test_a_caller_who_hangs_up_while_queued_is_recorded_as_abandoned(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        server.calls.set_agent_state("s1", AgentState.PAUSED, "lunch")
        stored = server.bus.subscribe(CallRecordStored)
        sim(server.backend).place_call(SimCaller(digits="1", patience=0.1))
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
        assert server.calls.live_contacts == []
    assert record.outcome == "abandoned"
    assert record.agent_id is None
    assert record.queue == "support"
    assert record.wait_seconds >= 0.09


async def test_an_unanswered_ring_goes_back_to_the_queue_and_the_next_agent_answers(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        server.calls.set_agent_state("sb", AgentState.READY)
        sim(server.backend).unanswering.add("s1")
        stored = server.bus.subscribe(CallRecordStored)
        sim(server.backend).place_call(SimCaller(digits="1", talk_time=0.02))
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
    # s1 had been idle longest and was rung first; nobody answered; sb took it.
    assert record.agent_id == "sb"
    assert record.outcome == "answered"


async def test_no_choice_after_every_retry_ends_the_call_as_rejected(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        stored = server.bus.subscribe(CallRecordStored)
        sim(server.backend).place_call(SimCaller(digits="9"))
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
    assert record.outcome == "rejected"
    assert record.queue is None


async def test_shutdown_hangs_up_live_calls_and_records_them(
    make_server: ServerFactory, tmp_path: object
) -> None:
    async with make_server(server={"drain_timeout": 0.1}) as server:
        sim(server.backend).place_call(SimCaller(digits="1", talk_time=60))
        states = server.bus.subscribe(ContactStateChanged)
        while (await asyncio.wait_for(states.get(), 5)).new is not ContactState.CONNECTED:
            pass
        storage = server.storage
    # The server is closed now; reopen the same database to look.
    async with make_server() as again:
        [record] = await again.storage.query(CallRecord)
    assert storage is not again.storage
    assert record.outcome == "answered"
    assert record.hangup_cause == "shutdown"


async def test_a_very_long_call_id_still_gets_a_stored_record(make_server: ServerFactory) -> None:
    async with make_server() as server:
        stored = server.bus.subscribe(CallRecordStored)
        call_id = "a" * 300 + "@carrier.example"
        server.calls.on_telephony_event(
            CallOffered(at=utcnow(), call_id=call_id, caller="+4930111", dialed="100")
        )
        await asyncio.wait_for(stored.get(), 5)
        [record] = await server.storage.query(CallRecord)
    assert len(record.contact_id) <= 120
    assert record.contact_id.endswith("a" * 20)
