"""Fixtures for the service-manager tests: real aiohttp servers on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest
from aiohttp import web

from service_manager import (
    InterfaceRegistry,
    InterfaceSpec,
    RetryPolicy,
    ServiceKey,
    load_service_model,
)
from service_manager.examples.customer_directory import CUSTOMER_DIRECTORY_V1
from storage import StorageManager, load_model
from storage.examples import CUSTOMERS_MODEL, seed_legacy_customers

TOKEN = "s3cret-test-token"


class Ledger(Protocol):
    """A test interface with one retry-safe and one unsafe method."""

    async def balance(self, account: str) -> float: ...

    async def charge(self, account: str, amount: float) -> float: ...

    async def pause(self, seconds: float) -> str: ...


LEDGER_V1 = InterfaceSpec.from_protocol("ledger", 1, Ledger, idempotent={"balance", "pause"})
LEDGER = ServiceKey("ledger", Ledger)


class InMemoryLedger:
    """A Ledger implementation that records what happened to it."""

    def __init__(self) -> None:
        self.accounts: dict[str, float] = {"acme": 100.0}
        self.charges = 0

    async def balance(self, account: str) -> float:
        return self.accounts.get(account, 0.0)

    async def charge(self, account: str, amount: float) -> float:
        self.charges += 1
        self.accounts[account] = self.accounts.get(account, 0.0) - amount
        return self.accounts[account]

    async def pause(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "rested"


@pytest.fixture
def interfaces() -> InterfaceRegistry:
    """The interfaces the tests know."""
    return InterfaceRegistry([CUSTOMER_DIRECTORY_V1, LEDGER_V1])


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Three attempts with short backoff, so retry tests stay fast."""
    return RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@dataclass
class RunningServer:
    """A real aiohttp server on 127.0.0.1 with an OS-chosen port."""

    runner: web.AppRunner
    url: str
    stopped: bool = False

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.runner.cleanup()


@dataclass
class FaultInjector:
    """Per-method failure plan for a remote test service, and what it saw."""

    fail_with_503: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        method = request.path.strip("/")
        if request.method == "POST":
            self.attempts[method] = self.attempts.get(method, 0) + 1
            if self.fail_with_503.get(method, 0) > 0:
                self.fail_with_503[method] -= 1
                return web.json_response({"error": {"code": "busy", "message": "busy"}},
                                         status=503)
        return await handler(request)


ServeApp = Callable[[web.Application], Awaitable[RunningServer]]


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Factory: start an aiohttp app on 127.0.0.1 port 0; stopped at teardown."""
    servers: list[RunningServer] = []

    async def start(app: web.Application) -> RunningServer:
        # A short shutdown timeout: tests stop servers with deliberately hung handlers.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        server = RunningServer(runner, f"http://{host}:{port}")
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for this test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'caruso.db'}"


async def open_storage(url: str) -> StorageManager:
    """Seed the legacy customer table if absent, then open storage with both models."""
    await seed_legacy_customers(url)
    return await StorageManager.open(
        url, models=[load_service_model(), load_model(CUSTOMERS_MODEL)]
    )
