"""The history recorder on a running server: agent state changes and contact events stored as
they happen, agents logged out at shutdown, and open shifts closed after a crash."""

from __future__ import annotations

from datetime import UTC, datetime

from commserver.agents import AgentState
from commserver.telephony.sim import SimBackend, SimCaller
from monitor.context import WEB
from monitor.history import AgentStateLog, ContactEvent
from tests.monitor.conftest import ServerFactory, eventually


async def test_state_changes_and_contact_events_are_stored_and_shutdown_logs_agents_out(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        server.calls.set_agent_state("s1", AgentState.PAUSED, "Coaching")
        backend = server.backend
        assert isinstance(backend, SimBackend)
        backend.place_call(SimCaller(caller="+4930555", digits="2", talk_time=0.05))
        await eventually(lambda: not server.calls.live_contacts and backend.live_calls == 0)
        recorder = server.web.app[WEB].history
        assert recorder is not None
        await eventually(lambda: recorder.written >= 10)
    async with make_server() as again:
        states = await again.storage.query(AgentStateLog, order_by=["id"])
        events = await again.storage.query(ContactEvent, order_by=["id"])
    s1 = [(row.state, row.reason) for row in states if row.agent_id == "s1"]
    assert s1[:3] == [("ready", ""), ("paused", "Coaching"), ("logged-out", "shutdown")]
    b1 = [row.state for row in states if row.agent_id == "b1"]
    assert b1[:5] == ["ready", "reserved", "busy", "wrap-up", "ready"]
    assert "logged-out" in b1
    path = [(e.old_state, e.new_state) for e in events if e.queue == "billing"]
    assert ("queued", "offered") in path
    assert path[-1] == ("wrap-up", "ended")
    assert recorder.failed == 0


async def test_after_a_crash_an_agent_left_working_is_logged_out_at_the_next_start(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        # As if the process died while sb was ready: no logout was ever written.
        await server.storage.insert(
            AgentStateLog(None, "sb", "ready", "", datetime(2024, 5, 6, 9, tzinfo=UTC))
        )
    # The clean shutdown above logged out s1 and b1 but not sb (it was logged out then).
    async with make_server() as again:
        rows = await again.storage.query(AgentStateLog, where={"agent_id": "sb"},
                                         order_by=["id"])
    assert [(r.state, r.reason) for r in rows] == [("ready", ""), ("logged-out", "restart")]
