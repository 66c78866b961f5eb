"""What integrators plug into, on a running server: API tokens, the typed event stream and
Prometheus metrics, and who may read them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from commserver.agents import AgentState
from commserver.app import Server
from commserver.telephony.sim import SimBackend, SimCaller
from monitor.accounts import Role
from monitor.context import WEB
from tests.monitor.conftest import EventStream, ServerFactory, WebClient, add_user, eventually

MakeClient = Callable[[Server], WebClient]


async def admin(server: Server, make: MakeClient) -> WebClient:
    await add_user(server, "ada", Role.ADMIN)
    client = make(server)
    await client.login("ada")
    return client


async def new_token(client: WebClient, name: str = "prometheus") -> tuple[int, str]:
    status, body = await client.call("POST", "/api/tokens", {"name": name})
    assert status == 201
    return body["token"]["id"], body["secret"]


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                     if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {wanted}")


async def test_a_token_reads_metrics_and_stops_working_once_revoked(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await admin(server, web_client) as ada:
        token_id, secret = await new_token(ada)
        _, listed = await ada.call("GET", "/api/tokens")
        async with aiohttp.ClientSession() as http:
            async def scrape(header: str | None) -> tuple[int, str, str]:
                headers = {"Authorization": header} if header else {}
                async with http.get(f"{server.web.url}/metrics", headers=headers) as response:
                    return response.status, response.headers["Content-Type"], await response.text()

            ok = await scrape(f"Bearer {secret}")
            anonymous = await scrape(None)
            wrong = await scrape("Bearer caruso_not-a-token")
            revoked_answer = await ada.call("DELETE", f"/api/tokens/{token_id}")
            revoked = await scrape(f"Bearer {secret}")
    assert ok[0] == 200
    assert ok[1].startswith("text/plain; version=0.0.4")
    assert metric(ok[2], "caruso_agents", state="ready") == 2  # s1 and b1 log in at start
    assert "# TYPE caruso_http_requests_total counter" in ok[2]
    assert [t["name"] for t in listed["tokens"]] == ["prometheus"]
    assert "token_hash" not in listed["tokens"][0]
    assert "secret" not in listed["tokens"][0]
    assert anonymous[0] == 401
    assert wrong[0] == 401
    assert revoked_answer[0] == 200
    assert revoked[0] == 401


async def test_metrics_count_contacts_by_queue_and_http_requests_by_route(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await admin(server, web_client) as ada:
        backend = server.backend
        assert isinstance(backend, SimBackend)
        for n in range(2):
            backend.place_call(SimCaller(caller=f"+4930{n}", digits="1", talk_time=0.05))
        await eventually(lambda: server.web.app[WEB].floor.stats.lifetime.get("support")
                         is not None and server.web.app[WEB].floor.stats.lifetime[
                             "support"].offered == 2, timeout=8)
        await ada.call("GET", "/api/agents/nobody")  # an unmatched path
        _, text = await ada.call("GET", "/metrics")
    assert metric(text, "caruso_contacts_offered_total", queue="support") == 2
    assert metric(text, "caruso_contacts_answered_total", queue="support") == 2
    assert metric(text, "caruso_contacts_abandoned_total", queue="billing") == 0
    assert metric(text, "caruso_queue_waiting", queue="support") == 0
    assert metric(text, "caruso_event_bus_dropped_total", subscriber="history") == 0
    assert metric(text, "caruso_event_bus_published_total") > 0
    assert metric(text, "caruso_http_requests_total", method="POST", route="/api/login",
                  status="200") == 1
    assert metric(text, "caruso_http_requests_total", method="GET", route="unmatched",
                  status="404") == 1


async def test_the_event_stream_sends_typed_events_with_their_kind(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await admin(server, web_client) as ada:
        _, secret = await new_token(ada, "crm")
        async with aiohttp.ClientSession() as http, http.get(
            f"{server.web.url}/api/events?kinds=agent-state-changed",
            headers={"Authorization": f"Bearer {secret}"},
        ) as response:
            assert response.status == 200
            assert response.content_type == "text/event-stream"
            stream = EventStream(response)
            await asyncio.sleep(0.05)
            server.calls.set_agent_state("s1", AgentState.PAUSED, "Coaching")
            kind, data = await stream.next()
    assert kind == "agent-state-changed"
    assert data["kind"] == "agent-state-changed"
    assert (data["agent_id"], data["old"], data["new"], data["reason"]) == (
        "s1", "ready", "paused", "Coaching"
    )
    assert data["at"].endswith("+00:00")


async def test_the_event_stream_admits_admins_and_tokens_only(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await admin(server, web_client) as ada:
        await add_user(server, "sue", Role.SUPERVISOR)
        async with web_client(server) as sue:
            await sue.login("sue")
            supervisor = await sue.call("GET", "/api/events")
            metrics = await sue.call("GET", "/metrics")
        unknown_kind = await ada.call("GET", "/api/events?kinds=agent-state-changed,teleport")
        async with ada.http.get(f"{ada.base}/api/events") as response:
            admin_status = response.status
            stream = EventStream(response)
            server.calls.set_agent_state("b1", AgentState.PAUSED, "Break")
            kind, _ = await stream.next()
        anonymous = await web_client(server).__aenter__()
        async with anonymous:
            nobody = await anonymous.call("GET", "/api/events")
    assert supervisor[0] == 403
    assert metrics[0] == 403
    assert unknown_kind[0] == 400
    assert "teleport" in unknown_kind[1]["message"]
    assert admin_status == 200
    assert kind == "agent-state-changed"
    assert nobody[0] == 401


async def test_signing_out_ends_an_admins_event_stream(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, await admin(server, web_client) as ada:
        async with ada.http.get(f"{ada.base}/api/events") as response:
            await asyncio.sleep(0.05)
            assert server.web.app[WEB].streams.clients == 1
            await ada.call("POST", "/api/logout")
            ended: Any = await asyncio.wait_for(response.content.read(), timeout=5)
    assert isinstance(ended, bytes)
    await eventually(lambda: server.web.app[WEB].streams.clients == 0)
