"""The foundation's HTTP API on a real port: health lists services, calls are paged newest first."""

from __future__ import annotations

import asyncio

import aiohttp

from commserver.contacts.events import CallRecordStored
from commserver.telephony.sim import SimBackend, SimCaller
from monitor.accounts import Role
from tests.commserver.conftest import ServerFactory
from tests.monitor.conftest import WebClient, add_user


async def test_health_lists_every_registered_service_with_its_status(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.web.url}/api/health") as response:
            assert response.status == 200
            body = await response.json()
    names = {s["name"]: s for s in body["services"]}
    assert {"storage", "event-bus", "telephony", "calls", "call-log"} <= set(names)
    assert all(s["status"] == "up" for s in names.values())
    assert body["status"] == "ok"


async def test_calls_are_listed_newest_first_with_paging(make_server: ServerFactory) -> None:
    async with make_server() as server, WebClient(server.web.url) as web:
        assert isinstance(server.backend, SimBackend)
        await add_user(server, "sue", Role.SUPERVISOR)
        await web.login("sue")
        stored = server.bus.subscribe(CallRecordStored)
        callers = [f"+49300{i}" for i in range(5)]
        for caller in callers:
            server.backend.place_call(SimCaller(caller=caller, digits="1", talk_time=0.01))
            await asyncio.wait_for(stored.get(), 5)
        status, first = await web.call("GET", "/api/calls?limit=2")
        assert status == 200
        _, second = await web.call("GET", first["next"])
    assert first["total"] == 5
    assert [c["caller"] for c in first["calls"]] == callers[::-1][:2]
    assert [c["caller"] for c in second["calls"]] == callers[::-1][2:4]
    assert first["calls"][0]["outcome"] == "answered"
    assert first["calls"][0]["ended_at"].endswith("+00:00")


async def test_the_call_list_needs_a_supervisor(make_server: ServerFactory) -> None:
    async with make_server() as server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.web.url}/api/calls") as response:
            assert response.status == 401
            body = await response.json()
    assert "caller" not in str(body)


async def test_a_bad_paging_parameter_is_a_400_with_a_message(make_server: ServerFactory) -> None:
    async with make_server() as server, WebClient(server.web.url) as web:
        await add_user(server, "sue", Role.SUPERVISOR)
        await web.login("sue")
        status, body = await web.call("GET", "/api/calls?limit=lots")
        too_many, _ = await web.call("GET", "/api/calls?limit=100000")
    assert status == 400
    assert too_many == 400
    assert body["error"] == "bad-request"
    assert "'limit' must be an integer" in body["message"]


async def test_an_unknown_api_path_is_a_json_404(make_server: ServerFactory) -> None:
    async with make_server() as server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.web.url}/api/nothing-here") as response:
            assert response.status == 404
            body = await response.json()
    assert body["error"] == "not-found"
