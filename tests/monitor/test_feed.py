"""The live feed: full snapshot then deltas over SSE, coalescing, per-client mailboxes that
keep a stalled browser from holding anyone else up, and streams ending at sign-out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from commserver.agents import AgentState
from commserver.app import Server
from monitor.accounts import Role
from monitor.context import WEB
from monitor.feed import MAILBOX_SIZE, FeedClient, Frame
from tests.monitor.conftest import EventStream, ServerFactory, WebClient, add_user


def frame(revision: int) -> Frame:
    return Frame(revision, f"id: {revision}\n\n".encode())


async def test_a_monitor_mailbox_that_overflows_is_emptied_and_resynced_with_a_snapshot() -> None:
    snapshot = Frame(99, b"full")
    client = FeedClient(agent_id=None, resync=lambda: snapshot, maxsize=3)
    assert await client.next(0.1) is snapshot  # a new client starts from a snapshot
    for revision in range(1, 4):
        client.offer(frame(revision))
    assert (await client.next(0.1)) == frame(1)
    for revision in range(4, 9):
        client.offer(frame(revision))
    assert client.dropped > 0
    assert await client.next(0.1) is snapshot
    assert await client.next(0.05) is None  # nothing stale left behind the snapshot


async def test_a_desktop_mailbox_keeps_the_newest_views() -> None:
    client = FeedClient(agent_id="s1", resync=None, maxsize=2)
    for revision in range(1, 6):
        client.offer(frame(revision))
    assert client.dropped == 3
    assert [await client.next(0.1), await client.next(0.1)] == [frame(4), frame(5)]


async def test_a_client_that_never_reads_holds_up_nobody(
    make_server: ServerFactory,
) -> None:
    async with make_server() as server:
        feed = server.web.app[WEB].feed
        stalled, reader = feed.connect_monitor(), feed.connect_monitor()
        assert await stalled.next(0.1) is not None  # it read its snapshot, then froze
        received: list[int] = []

        async def read() -> None:
            while len(received) < 60:
                got = await reader.next(1.0)
                if got is not None:
                    received.append(got.revision)

        reading = asyncio.create_task(read())
        for i in range(60):
            feed.floor.set_agent_state("sb", AgentState.READY if i % 2 else AgentState.PAUSED,
                                       "" if i % 2 else f"reason {i}")
            feed.push()
            await asyncio.sleep(0)
        await asyncio.wait_for(reading, 5)
        assert received[-1] == feed.revision
        assert stalled.dropped > 0
        assert len(stalled._frames) <= MAILBOX_SIZE


async def test_the_stream_starts_with_a_snapshot_then_sends_only_what_changed(
    make_server: ServerFactory, web_client: Callable[[Server], WebClient],
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        await browser.login("sue")
        async with browser.http.get(f"{server.web.url}/api/monitor/events") as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            stream = EventStream(response)
            event, full = await stream.next()
            assert event == "full"
            assert set(full["agents"]) == {"s1", "b1", "sb"}
            assert set(full["queues"]) == {"support", "billing"}
            server.calls.set_agent_state("sb", AgentState.PAUSED, "Training")
            event, delta = await stream.next()
        assert event == "delta"
        assert delta["base"] == full["rev"]
        assert delta["rev"] == full["rev"] + 1
        assert list(delta["agents"]) == ["sb"]
        assert delta["agents"]["sb"]["state"] == "paused"
        assert delta["agents"]["sb"]["pause_reason"] == "Training"


async def test_a_burst_of_changes_is_coalesced_into_few_frames(
    make_server: ServerFactory, web_client: Callable[[Server], WebClient],
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        await browser.login("sue")
        async with browser.http.get(f"{server.web.url}/api/monitor/events") as response:
            stream = EventStream(response)
            await stream.next()
            pushes = server.web.app[WEB].feed.pushes
            for i in range(40):  # no await in between: one burst
                server.calls.set_agent_state(
                    "sb", AgentState.PAUSED if i % 2 == 0 else AgentState.READY, "Break"
                )
            server.calls.set_agent_state("s1", AgentState.PAUSED, "Lunch")
            _, delta = await stream.next()
        assert server.web.app[WEB].feed.pushes - pushes <= 2
        assert delta["agents"]["s1"]["pause_reason"] == "Lunch"
        assert delta["agents"]["sb"]["state"] == "ready"


async def test_signing_out_ends_the_sessions_event_streams(
    make_server: ServerFactory, web_client: Callable[[Server], WebClient],
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        await browser.login("sue")
        async with browser.http.get(f"{server.web.url}/api/monitor/events") as response:
            stream = EventStream(response)
            await stream.next()
            status, _ = await browser.call("POST", "/api/logout")
            assert status == 200
            rest = await asyncio.wait_for(response.content.read(), 3)
        assert b"data:" not in rest
        assert server.web.app[WEB].feed.clients == 0
        async with browser.http.get(f"{server.web.url}/api/monitor/events") as again:
            assert again.status == 401
