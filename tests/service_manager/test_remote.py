"""Remote services: Caruso calling an integrator's HTTP process, and that process going away."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web

from service_manager import (
    InterfaceRegistry,
    RemoteProtocolError,
    RemoteServiceError,
    RetryPolicy,
    ServiceDescriptor,
    ServiceError,
    ServiceKind,
    ServiceManager,
    ServiceStatus,
    ServiceTimeout,
    ServiceUnavailable,
)
from service_manager.remote_server import service_app
from tests.service_manager.conftest import (
    LEDGER,
    LEDGER_V1,
    FaultInjector,
    InMemoryLedger,
    ServeApp,
)


def ledger_app(ledger: InMemoryLedger, faults: FaultInjector | None = None) -> web.Application:
    app = service_app(LEDGER_V1, ledger)
    if faults is not None:
        app.middlewares.append(faults.middleware)
    return app


def descriptor(url: str, *, name: str = "ledger", version: str = "r1") -> ServiceDescriptor:
    return ServiceDescriptor(name=name, interface="ledger/1", base_url=url, version=version)


async def test_calls_reach_the_remote_service_through_the_typed_proxy(
    interfaces: InterfaceRegistry, serve_app: ServeApp
) -> None:
    ledger = InMemoryLedger()
    server = await serve_app(ledger_app(ledger))
    async with ServiceManager(interfaces=interfaces) as manager:
        info, created = await manager.register_remote(descriptor(server.url))
        assert created
        assert info.kind is ServiceKind.REMOTE
        assert info.status is ServiceStatus.UP
        assert info.base_url == server.url
        proxy = manager.get(LEDGER)
        assert await proxy.balance("acme") == 100.0
        assert await proxy.charge("acme", 30) == 70.0
        assert await proxy.charge(account="acme", amount=5.5) == 64.5
        assert ledger.charges == 2
        # Scripts reach the same service by name with JSON arguments.
        assert await manager.call("ledger", "balance", {"account": "acme"}, timeout=2) == 64.5


async def test_a_stopped_remote_service_is_unavailable_with_a_clear_message_and_down(
    interfaces: InterfaceRegistry, serve_app: ServeApp, fast_retry: RetryPolicy
) -> None:
    server = await serve_app(ledger_app(InMemoryLedger()))
    async with ServiceManager(interfaces=interfaces, retry=fast_retry) as manager:
        await manager.register_remote(descriptor(server.url))
        proxy = manager.get(LEDGER)
        assert await proxy.balance("acme") == 100.0
        await server.stop()
        with pytest.raises(ServiceUnavailable) as info:
            await proxy.balance("acme")
        message = info.value.message
        assert "'ledger'" in message
        assert server.url in message
        assert "unavailable" in message
        assert info.value.details["url"] == server.url
        assert manager.list()[0].status is ServiceStatus.DOWN
        (checked,) = await manager.health()
        assert checked.status is ServiceStatus.DOWN
        assert checked.detail.startswith("unreachable")
        with pytest.raises(ServiceUnavailable):
            await manager.call("ledger", "charge", {"account": "a", "amount": 1}, timeout=2)


async def test_idempotent_methods_are_retried_after_5xx(
    interfaces: InterfaceRegistry, serve_app: ServeApp, fast_retry: RetryPolicy
) -> None:
    faults = FaultInjector(fail_with_503={"balance": 2})
    server = await serve_app(ledger_app(InMemoryLedger(), faults))
    async with ServiceManager(interfaces=interfaces, retry=fast_retry) as manager:
        await manager.register_remote(descriptor(server.url))
        assert await manager.get(LEDGER).balance("acme") == 100.0
    assert faults.attempts["balance"] == 3


async def test_idempotent_retries_give_up_after_the_policy(
    interfaces: InterfaceRegistry, serve_app: ServeApp, fast_retry: RetryPolicy
) -> None:
    faults = FaultInjector(fail_with_503={"balance": 10})
    server = await serve_app(ledger_app(InMemoryLedger(), faults))
    async with ServiceManager(interfaces=interfaces, retry=fast_retry) as manager:
        await manager.register_remote(descriptor(server.url))
        with pytest.raises(ServiceUnavailable, match="balance answered HTTP 503"):
            await manager.get(LEDGER).balance("acme")
    assert faults.attempts["balance"] == 3


async def test_non_idempotent_methods_are_never_retried(
    interfaces: InterfaceRegistry, serve_app: ServeApp, fast_retry: RetryPolicy
) -> None:
    ledger = InMemoryLedger()
    faults = FaultInjector(fail_with_503={"charge": 1})
    server = await serve_app(ledger_app(ledger, faults))
    async with ServiceManager(interfaces=interfaces, retry=fast_retry) as manager:
        await manager.register_remote(descriptor(server.url))
        with pytest.raises(ServiceUnavailable):
            await manager.get(LEDGER).charge("acme", 10)
    assert faults.attempts["charge"] == 1
    assert ledger.charges == 0


async def test_a_slow_remote_times_out_and_only_idempotent_calls_retry(
    interfaces: InterfaceRegistry, serve_app: ServeApp, fast_retry: RetryPolicy
) -> None:
    faults = FaultInjector()
    server = await serve_app(ledger_app(InMemoryLedger(), faults))
    async with ServiceManager(
        interfaces=interfaces, retry=fast_retry, call_timeout=0.2
    ) as manager:
        await manager.register_remote(descriptor(server.url))
        proxy = manager.get(LEDGER)
        began = time.monotonic()
        with pytest.raises(ServiceTimeout, match=r"did not answer pause within 0\.2 s"):
            await proxy.pause(1)
        assert faults.attempts["pause"] == 3
        assert time.monotonic() - began < 2.0
        # A dynamic call's own budget is shorter than the retries: it wins.
        with pytest.raises(ServiceTimeout, match=r"within 0\.3 s"):
            await manager.call("ledger", "pause", {"seconds": 1}, timeout=0.3)


async def test_remote_errors_and_protocol_violations_are_not_retried(
    interfaces: InterfaceRegistry, serve_app: ServeApp, fast_retry: RetryPolicy
) -> None:
    hits: dict[str, int] = {}

    async def refuse(request: web.Request) -> web.Response:
        hits["balance"] = hits.get("balance", 0) + 1
        return web.json_response(
            {"error": {"code": "account-locked", "message": "account acme is locked"}},
            status=422,
        )

    async def nonsense(request: web.Request) -> web.Response:
        hits["pause"] = hits.get("pause", 0) + 1
        return web.json_response({"result": {"not": "a string"}})

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "up"})

    app = web.Application()
    app.router.add_post("/balance", refuse)
    app.router.add_post("/pause", nonsense)
    app.router.add_get("/health", ok)
    server = await serve_app(app)
    async with ServiceManager(interfaces=interfaces, retry=fast_retry) as manager:
        await manager.register_remote(descriptor(server.url))
        proxy = manager.get(LEDGER)
        with pytest.raises(RemoteServiceError, match="account acme is locked") as refused:
            await proxy.balance("acme")
        assert refused.value.details["remote_code"] == "account-locked"
        with pytest.raises(RemoteProtocolError, match="does not match ledger/1"):
            await proxy.pause(1)
    assert hits == {"balance": 1, "pause": 1}


async def test_remote_health_reflects_what_the_service_reports(
    interfaces: InterfaceRegistry, serve_app: ServeApp
) -> None:
    state: dict[str, Any] = {"status": 200}

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "up", "detail": "3 customers"},
                                 status=state["status"])

    app = web.Application()
    app.router.add_get("/health", health)
    server = await serve_app(app)
    async with ServiceManager(interfaces=interfaces) as manager:
        info, _ = await manager.register_remote(descriptor(server.url))
        assert (info.status, info.detail) == (ServiceStatus.UP, "3 customers")
        state["status"] = 500
        (checked,) = await manager.health()
        assert (checked.status, checked.detail) == (ServiceStatus.DOWN, "health answered HTTP 500")


async def test_re_registration_replaces_the_remote_and_drains_the_old_one(
    interfaces: InterfaceRegistry, serve_app: ServeApp
) -> None:
    first, second = InMemoryLedger(), InMemoryLedger()
    second.accounts["acme"] = 7.0
    server_1 = await serve_app(ledger_app(first))
    server_2 = await serve_app(ledger_app(second))
    async with ServiceManager(interfaces=interfaces) as manager:
        await manager.register_remote(descriptor(server_1.url, version="r1"))
        proxy = manager.get(LEDGER)
        slow = asyncio.create_task(proxy.pause(0.3))
        await asyncio.sleep(0.05)
        info, created = await manager.register_remote(descriptor(server_2.url, version="r2"))
        assert not created
        assert info.version == "r2"
        assert slow.done()
        assert slow.result() == "rested"
        assert await proxy.balance("acme") == 7.0


async def test_a_remote_cannot_take_the_name_of_a_local_service(
    interfaces: InterfaceRegistry, serve_app: ServeApp
) -> None:
    server = await serve_app(ledger_app(InMemoryLedger()))
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(LEDGER, InMemoryLedger())
        with pytest.raises(ServiceError, match="in-process service") as info:
            await manager.register_remote(descriptor(server.url))
        assert info.value.code == "duplicate-service"
