"""The monitor's and the desktop's API on a running server: supervisor actions, one's own
state, the screen pop, waiting contacts and today's queue figures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from commserver.agents import AgentState
from commserver.app import Server
from commserver.telephony.sim import SimBackend, SimCaller
from monitor.accounts import Role
from monitor.context import WEB
from service_manager.examples.customer_directory import (
    CUSTOMER_DIRECTORY,
    Customer,
    InMemoryCustomerDirectory,
)
from tests.monitor.conftest import ServerFactory, WebClient, add_user, eventually

MakeClient = Callable[[Server], WebClient]
MARKUP_NAME = '<img src=x onerror="alert(1)">Eve & "Co"'


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


async def supervisor(server: Server, make: MakeClient) -> WebClient:
    await add_user(server, "sue", Role.SUPERVISOR)
    browser = make(server)
    await browser.login("sue")
    return browser


async def test_a_supervisor_pauses_with_a_reason_forces_ready_and_logs_out_an_agent(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await supervisor(server, web_client) as browser:
        paused = await browser.call("POST", "/api/agents/s1/state",
                                    {"state": "paused", "reason": "  Team   meeting "})
        in_controller = (server.calls.agents["s1"].state, server.calls.agents["s1"].pause_reason)
        ready = await browser.call("POST", "/api/agents/s1/state", {"state": "ready"})
        out = await browser.call("POST", "/api/agents/s1/state", {"state": "logged-out"})
    assert paused[0] == 200
    assert paused[1]["agent"]["pause_reason"] == "Team meeting"
    assert in_controller == (AgentState.PAUSED, "Team meeting")
    assert ready[0] == 200
    assert out[0] == 200
    assert server.calls.agents["s1"].state is AgentState.LOGGED_OUT


async def test_bad_actions_are_refused_with_a_clear_error(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await supervisor(server, web_client) as browser:
        no_reason = await browser.call("POST", "/api/agents/s1/state", {"state": "paused"})
        busy = await browser.call("POST", "/api/agents/s1/state", {"state": "busy"})
        unknown_state = await browser.call("POST", "/api/agents/s1/state", {"state": "<b>"})
        unknown_agent = await browser.call("POST", "/api/agents/zz/state", {"state": "ready"})
        not_json = await browser.call("POST", "/api/agents/s1/state", ["ready"])
    assert (no_reason[0], no_reason[1]["error"]) == (400, "invalid-request")
    assert (busy[0], busy[1]["details"]["field"]) == (400, "state")
    assert (unknown_state[0], unknown_state[1]["message"]) == (400, "unknown agent state '<b>'")
    assert (unknown_agent[0], unknown_agent[1]["error"]) == (404, "no-such-agent")
    assert not_json[0] == 400
    assert server.calls.agents["s1"].state is AgentState.READY


async def test_an_agent_on_a_call_cannot_be_logged_out_and_a_pause_waits_for_the_call(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await supervisor(server, web_client) as browser:
        sim(server).place_call(SimCaller(caller="+4930111", digits="1", talk_time=0.5))
        await eventually(lambda: server.calls.agents["s1"].state is AgentState.BUSY)
        logout = await browser.call("POST", "/api/agents/s1/state", {"state": "logged-out"})
        pause = await browser.call("POST", "/api/agents/s1/state",
                                   {"state": "paused", "reason": "Coaching"})
        during = server.calls.agents["s1"].state
        await eventually(lambda: server.calls.agents["s1"].state is AgentState.PAUSED)
    assert (logout[0], logout[1]["error"]) == (409, "invalid-transition")
    assert pause[0] == 200
    assert during is AgentState.BUSY  # the call goes on
    assert server.calls.agents["s1"].pause_reason == "Coaching"
    assert server.calls.agents["s1"].calls_taken == 1


async def test_an_agent_sets_only_their_own_state_from_the_desktop(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "ann", Role.AGENT, "sb")
        await add_user(server, "sue", Role.SUPERVISOR)
        await browser.login("ann")
        ready = await browser.call("POST", "/api/desktop/state", {"state": "ready"})
        paused = await browser.call("POST", "/api/desktop/state",
                                    {"state": "paused", "reason": "Lunch"})
        other_reason = await browser.call("POST", "/api/desktop/state",
                                          {"state": "paused", "reason": "Break"})
        _status, view = await browser.call("GET", "/api/desktop")
        await browser.login("sue")
        no_agent = await browser.call("GET", "/api/desktop")
    assert ready[0] == paused[0] == other_reason[0] == 200
    assert view["agent"]["id"] == "sb"
    assert (view["agent"]["state"], view["agent"]["pause_reason"]) == ("paused", "Break")
    assert view["contact"] is None
    assert server.calls.agents["s1"].state is AgentState.READY
    assert (no_agent[0], no_agent[1]["error"]) == (403, "no-agent-linked")


async def test_the_screen_pop_has_the_customer_record_and_their_recent_contacts(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        server.services.register(CUSTOMER_DIRECTORY, InMemoryCustomerDirectory(
            [Customer(7, MARKUP_NAME, "+49 30 1234567", "eve@example.org", 1, "EW-7", True)]
        ))
        await add_user(server, "sam", Role.AGENT, "s1")
        await browser.login("sam")
        sim(server).place_call(SimCaller(caller="+49301234567", digits="1", talk_time=0.05))
        await eventually(lambda: server.calls.agents["s1"].calls_taken == 1)
        await eventually(lambda: server.calls.agents["s1"].state is AgentState.READY)
        # Long enough to stay connected however loaded the machine is; shutdown hangs it up.
        sim(server).place_call(SimCaller(caller="+49301234567", digits="1", talk_time=30.0))

        async def popped() -> dict[str, object]:
            _, view = await browser.call("GET", "/api/desktop")
            contact = view["contact"]
            return contact["pop"] if contact and contact["pop"] else {}

        pop: dict[str, object] = {}
        for _ in range(1000):  # up to ~10 s on a loaded machine
            pop = await popped()
            if pop.get("status") == "found" and pop.get("history"):
                break
            await asyncio.sleep(0.01)
    assert pop["status"] == "found"
    customer = pop["customer"]
    assert isinstance(customer, dict)
    assert customer["name"] == MARKUP_NAME
    history = pop["history"]
    assert isinstance(history, list)
    assert len(history) == 1
    assert history[0]["outcome"] == "answered"
    assert history[0]["agent_id"] == "s1"


async def test_without_a_directory_the_pop_says_so_and_an_unknown_number_is_unknown(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sam", Role.AGENT, "s1")
        await browser.login("sam")
        statuses = []
        for register in (False, True):
            if register:
                server.services.register(CUSTOMER_DIRECTORY, InMemoryCustomerDirectory([]))
            await eventually(lambda: server.calls.agents["s1"].state is AgentState.READY)
            sim(server).place_call(SimCaller(caller="+4940999999", digits="1", talk_time=0.3))
            await eventually(lambda: server.calls.agents["s1"].state is AgentState.BUSY)
            feed = server.web.app[WEB].feed
            contact_id = server.calls.agents["s1"].contact_id
            assert contact_id is not None
            await eventually(lambda: (p := feed.pops.get(contact_id)) is not None  # noqa: B023
                             and p.status.value != "pending")
            _, view = await browser.call("GET", "/api/desktop")
            statuses.append(view["contact"]["pop"]["status"])
    assert statuses == ["no-directory", "unknown"]


async def test_waiting_contacts_and_queue_figures_follow_the_calls(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await supervisor(server, web_client) as browser:
        server.calls.set_agent_state("b1", AgentState.PAUSED, "Break")
        sim(server).place_call(SimCaller(caller="+4930222", digits="2", patience=0.6))
        await eventually(lambda: any(c.queue == "billing" for c in server.calls.live_contacts))
        _, waiting = await browser.call("GET", "/api/monitor")
        sim(server).place_call(SimCaller(caller="+4930333", digits="1", talk_time=0.05))
        await eventually(lambda: server.calls.agents["s1"].calls_taken == 1)
        await eventually(lambda: not server.calls.live_contacts, timeout=5)
        _, done = await browser.call("GET", "/api/monitor")
    (contact,) = waiting["contacts"]
    assert (contact["caller"], contact["queue"], contact["priority"]) == ("+4930222", "billing", 2)
    billing = next(q for q in waiting["queues"] if q["name"] == "billing")
    assert billing["waiting"] == 1
    assert billing["oldest_queued_at"] is not None
    assert billing["agents_logged_in"] == 1
    assert billing["agents_ready"] == 0
    queues = {q["name"]: q for q in done["queues"]}
    assert (queues["billing"]["offered_today"], queues["billing"]["abandoned_today"]) == (1, 1)
    assert queues["billing"]["service_level_today"] == 0.0
    assert (queues["support"]["answered_today"], queues["support"]["answered_within_today"]) == (
        1, 1,
    )
    assert queues["support"]["service_level_today"] == 1.0
    assert done["contacts"] == []


async def test_todays_figures_survive_a_restart(
    make_server: ServerFactory, web_client: MakeClient, tmp_path: Path
) -> None:
    async with make_server() as server:
        sim(server).place_call(SimCaller(caller="+4930444", digits="1", talk_time=0.05))
        await eventually(lambda: server.calls.agents["s1"].calls_taken == 1)
        await eventually(lambda: not server.calls.live_contacts)
    async with make_server() as server, await supervisor(server, web_client) as browser:
        _, body = await browser.call("GET", "/api/monitor")
    support = next(q for q in body["queues"] if q["name"] == "support")
    assert (support["offered_today"], support["answered_today"]) == (1, 1)


async def test_an_admin_creates_accounts_over_the_api(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "adm", Role.ADMIN)
        await browser.login("adm")
        created = await browser.call("POST", "/api/users", {
            "name": "Zoe", "password": "long enough pw", "role": "agent", "agent_id": "sb"})
        again = await browser.call("POST", "/api/users", {
            "name": "zoe", "password": "long enough pw", "role": "agent", "agent_id": "sb"})
        bad_role = await browser.call("POST", "/api/users", {
            "name": "yan", "password": "long enough pw", "role": "root"})
        _, listed = await browser.call("GET", "/api/users")
    assert created == (201, {"user": {"name": "zoe", "role": "agent", "agent_id": "sb",
                                      "home": "/desktop"}})
    assert (again[0], again[1]["error"]) == (409, "duplicate-account")
    assert (bad_role[0], bad_role[1]["details"]["field"]) == (400, "role")
    assert [u["name"] for u in listed["users"]] == ["adm", "zoe"]
    assert all("hash" not in str(u) for u in listed["users"])
