"""`caruso bench monitor`: state-change-to-browser latency of the live monitor's event stream.

A whole server runs in-process (sim backend, SQLite in a temporary folder, the web front on a
free port) with `--agents` agents. `--clients` event-stream clients sign in as one supervisor
and read `/api/monitor/events` over real HTTP. The benchmark then changes agents' states
(`--changes` times, at random gaps of 20-200 ms) and measures, for every change and every
client, the time until the client has received the first frame rendered after the change
(frames carry their revision in the SSE `id:` line). The second phase repeats this with one
more client that connects and never reads (a stalled browser); its frames pile up in its own
mailbox only, and the others' latency should not move.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from commserver.agents import AgentState
from commserver.app import Server, build_server
from commserver.config import config_from_mapping
from monitor.accounts import Role
from monitor.context import WEB
from monitor.feed import FeedClient
from monitor.floor import Floor

HELP = "monitor push latency (state change -> browser) across N event-stream clients"
PASSWORD = "bench-password-1"
#: Rounds of "every agent changes" sent to the stalled client before measuring.
FILL_ROUNDS = 100


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of the benchmark."""
    parser.add_argument("--clients", type=int, default=50, help="event-stream clients")
    parser.add_argument("--agents", type=int, default=180, help="agents on the floor")
    parser.add_argument("--changes", type=int, default=150, help="state changes per phase")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the change gaps")


@dataclass
class StreamReader:
    """One client: the time each revision arrived."""

    arrivals: dict[int, float] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def _progress(message: str) -> None:
    print(f"bench monitor: {message}", file=sys.stderr, flush=True)


async def _read_stream(http: aiohttp.ClientSession, url: str, reader: StreamReader) -> None:
    async with http.get(url) as response:
        response.raise_for_status()
        buffer = b""
        async for chunk in response.content.iter_any():
            now = time.perf_counter()
            buffer += chunk
            *messages, buffer = buffer.split(b"\n\n")
            for message in messages:
                if message.startswith(b"id: "):
                    revision = int(message[4 : message.index(b"\n")])
                    reader.arrivals.setdefault(revision, now)
                    reader.ready.set()


async def _stalled_client(url: str, cookie: str) -> socket.socket:
    """Open the event stream on a socket with a tiny receive buffer, and never read it."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (parts.hostname, parts.port))
    request = (
        f"GET /api/monitor/events HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Cookie: caruso_session={cookie}\r\nAccept: text/event-stream\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    return sock


def _toggle(floor: Floor, agent_id: str) -> None:
    """Ready <-> paused: one state change, one bus event."""
    if floor.agent(agent_id).state is AgentState.READY:
        floor.set_agent_state(agent_id, AgentState.PAUSED, "Bench")
    else:
        floor.set_agent_state(agent_id, AgentState.READY)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _phase(
    server: Server, http: aiohttp.ClientSession, clients: int, changes: int,
    rng: random.Random, *, stalled_cookie: str | None,
) -> dict[str, Any]:
    feed = server.web.app[WEB].feed
    floor = server.web.app[WEB].floor
    url = f"{server.web.url}/api/monitor/events"
    before = set(feed.monitor_clients)
    stalled = await _stalled_client(server.web.url, stalled_cookie) if stalled_cookie else None
    stuck: FeedClient | None = None
    stalled_since = 0.0
    blocked = False
    if stalled is not None:
        for _ in range(1000):  # up to 10 s for the server to register it
            if set(feed.monitor_clients) - before:
                break
            await asyncio.sleep(0.01)
        (stuck,) = set(feed.monitor_clients) - before
        stalled_since = time.perf_counter()
        _progress("filling the stalled client's socket buffers")
        # Fill its pipe before measuring: frames where every agent changed are big, and with
        # nobody reading, the kernel's buffers (up to 4 MB on Linux) and then the server's
        # write buffer fill up, so from then on writes to it block.
        for _ in range(FILL_ROUNDS):
            for agent in floor.agents():
                _toggle(floor, agent.id)
            await asyncio.sleep(feed.interval)
        blocked = stuck.dropped > 0 or stuck.closed
        _progress(f"stalled client blocked: {blocked}; measuring")
    readers = [StreamReader() for _ in range(clients)]
    tasks = [asyncio.create_task(_read_stream(http, url, r)) for r in readers]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(r.ready.wait() for r in readers))
        agent_ids = [a.id for a in floor.agents()]
        marks: list[tuple[int, float]] = []
        pushes_before = feed.pushes
        dropped_after: float | None = None
        for i in range(changes):
            marks.append((feed.revision, time.perf_counter()))
            _toggle(floor, agent_ids[i % len(agent_ids)])
            await asyncio.sleep(rng.uniform(0.02, 0.2))
            if stuck is not None and stuck.closed and dropped_after is None:
                dropped_after = time.perf_counter() - stalled_since
        await asyncio.sleep(1.0)
        latencies: list[float] = []
        missing = 0
        for reader in readers:
            revisions = sorted(reader.arrivals)
            for revision, at in marks:
                later = next((r for r in revisions if r > revision), None)
                if later is None:
                    missing += 1
                else:
                    latencies.append((reader.arrivals[later] - at) * 1000)
        stalled_info: dict[str, Any] | None = None
        if stuck is not None:
            stalled_info = {
                "frames_dropped_from_its_mailbox": stuck.dropped,
                "writes_blocked_before_measuring": blocked,
                "cut_off_after_s": round(dropped_after, 1) if dropped_after else None,
            }
        result: dict[str, Any] = {
            "clients": clients,
            "state_changes": changes,
            "frames_pushed": feed.pushes - pushes_before,
            "samples": len(latencies),
            "missing": missing,
            "latency_ms_p50": round(_percentile(latencies, 0.50), 2),
            "latency_ms_p90": round(_percentile(latencies, 0.90), 2),
            "latency_ms_p99": round(_percentile(latencies, 0.99), 2),
            "latency_ms_max": round(max(latencies), 2),
        }
        if stalled_info is not None:
            result["stalled_client"] = stalled_info
        return result
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if stalled is not None:
            stalled.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Both phases; the figures as a dict."""
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="caruso-bench-monitor-") as folder:
        raw: dict[str, Any] = {
            "server": {"data_dir": folder, "log_level": "warning", "drain_timeout": 1.0},
            "web": {"port": 0},
            "telephony": {"backend": "sim"},
            "queues": [{"name": "support", "skills": {"support": 1}}],
            "agents": [
                {"id": f"a{i:03d}", "skills": {"support": 50}, "logged_in": True}
                for i in range(args.agents)
            ],
        }
        config = config_from_mapping(raw, source=Path(folder) / "bench.toml")
        async with build_server(config) as server:
            await server.web.app[WEB].accounts.add("bench", PASSWORD, Role.SUPERVISOR)
            jar = aiohttp.CookieJar(unsafe=True)
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
            async with aiohttp.ClientSession(
                cookie_jar=jar, connector=connector, timeout=timeout
            ) as http:
                async with http.get(f"{server.web.url}/api/session") as response:
                    token = (await response.json())["csrf_token"]
                async with http.post(
                    f"{server.web.url}/api/login",
                    json={"name": "bench", "password": PASSWORD},
                    headers={"X-CSRF-Token": token},
                ) as response:
                    response.raise_for_status()
                    cookie = response.cookies["caruso_session"].value
                _progress(f"{args.clients} clients, {args.agents} agents: no stalled client")
                plain = await _phase(server, http, args.clients, args.changes, rng,
                                     stalled_cookie=None)
                _progress("again, with one stalled client")
                stalled = await _phase(server, http, args.clients, args.changes, rng,
                                       stalled_cookie=cookie)
    return {
        "agents": args.agents,
        "push_interval_ms": server.web.app[WEB].feed.interval * 1000,
        "without_stalled_client": plain,
        "with_one_stalled_client": stalled,
        "goal": "p99 <= 250 ms",
    }
