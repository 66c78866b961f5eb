"""Factories for the web front's tests: a whole server (sim backend, SQLite, real port),
accounts in its store, and signed-in HTTP clients that carry cookies and the CSRF token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from commserver.app import Server, build_server
from commserver.config import config_from_mapping
from monitor.accounts import Role
from monitor.context import WEB

ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]
PASSWORD = "correct horse battery"


def site(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A small site: two queues, three agents, a menu; fast simulated phones."""
    raw: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path), "drain_timeout": 2.0},
        "web": {"port": 0},
        "telephony": {"backend": "sim", "ring_timeout": 5.0, "sim": {"answer_delay": 0.01}},
        "queues": [
            {"name": "support", "skills": {"support": 1}, "wrap_up": 0.05},
            {"name": "billing", "skills": {"billing": 1}, "wrap_up": 0.05, "priority": 2},
        ],
        "agents": [
            {"id": "s1", "name": "Sam Support", "skills": {"support": 50}, "logged_in": True,
             "extension": "2001"},
            {"id": "b1", "skills": {"billing": 50}, "logged_in": True, "extension": "2002"},
            {"id": "sb", "skills": {"support": 10, "billing": 10}, "extension": "2003"},
        ],
        "ivr": {
            "menu": {"choices": {"1": "support", "2": "billing"}, "timeout": 0.05, "retries": 1}
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    return raw


@pytest.fixture
def make_server(tmp_path: Path) -> ServerFactory:
    """Start a server on this test's own SQLite file and a free port."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Server]:
        config = config_from_mapping(site(tmp_path, **overrides))
        async with build_server(config) as server:
            yield server

    return factory


async def add_user(
    server: Server, name: str, role: Role, agent_id: str | None = None,
    password: str = PASSWORD,
) -> None:
    """Create an account in the server's own store."""
    await server.web.app[WEB].accounts.add(name, password, role, agent_id)


class WebClient:
    """A browser-like HTTP client: cookie jar, and the CSRF token on state-changing calls."""

    def __init__(self, base: str) -> None:
        self.base = base
        # unsafe=True: keep cookies set by an IP-address host (127.0.0.1).
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def __aenter__(self) -> WebClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    async def session(self) -> dict[str, Any]:
        """GET /api/session, keeping its CSRF token."""
        async with self.http.get(f"{self.base}/api/session") as response:
            body: dict[str, Any] = await response.json()
        self.csrf = body["csrf_token"]
        return body

    async def login(self, name: str, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
        """Sign in the way the login page does."""
        await self.session()
        status, body = await self.call("POST", "/api/login", {"name": name, "password": password})
        if status == 200:
            self.csrf = body["csrf_token"]
        return status, body

    async def call(
        self, method: str, path: str, body: object = None, *, headers: dict[str, str] | None = None,
        csrf: bool = True,
    ) -> tuple[int, Any]:
        """One request; JSON in and out."""
        sent = dict(headers or {})
        if csrf and method not in ("GET", "HEAD"):
            sent.setdefault("X-CSRF-Token", self.csrf)
        async with self.http.request(
            method, f"{self.base}{path}", json=body, headers=sent, allow_redirects=False
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


@pytest.fixture
def web_client() -> Callable[[Server], WebClient]:
    """Make a fresh browser-like client for a server (use as `async with`)."""

    def make(server: Server) -> WebClient:
        return WebClient(server.web.url)

    return make


class EventStream:
    """Reads Server-Sent Events from an open response: (event name, JSON data) at a time."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 5.0) -> tuple[str, Any]:
        """The next event with data (comments and `retry:` lines are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readuntil(b"\n\n", max_size=16 * 1024**2)
                if not raw:
                    raise EOFError("the stream ended")
                event, data = "message", None
                for line in raw.decode().splitlines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if data is not None:
                    return event, data

    async def until(
        self, check: Callable[[str, Any], bool], timeout: float = 5.0
    ) -> tuple[str, Any]:
        """Skip events until one passes `check`."""
        async with asyncio.timeout(timeout):
            while True:
                event, data = await self.next(timeout)
                if check(event, data):
                    return event, data


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `check()` holds (polled every 10 ms), or fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")
