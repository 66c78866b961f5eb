"""Remote service descriptors persist through storage and come back after a restart."""

from __future__ import annotations

import pytest

from service_manager import (
    DescriptorStore,
    InterfaceRegistry,
    NoSuchService,
    ServiceDescriptor,
    ServiceKey,
    ServiceKind,
    ServiceManager,
    ServiceStatus,
    ServiceUnavailable,
)
from service_manager.remote_server import service_app
from tests.service_manager.conftest import (
    LEDGER,
    LEDGER_V1,
    InMemoryLedger,
    Ledger,
    ServeApp,
    open_storage,
)


def ledger_descriptor(url: str) -> ServiceDescriptor:
    return ServiceDescriptor(name="ledger", interface="ledger", base_url=url, version="r7")


async def test_a_registered_remote_service_is_back_after_a_restart(
    interfaces: InterfaceRegistry, serve_app: ServeApp, sqlite_url: str
) -> None:
    server = await serve_app(service_app(LEDGER_V1, InMemoryLedger()))
    storage = await open_storage(sqlite_url)
    async with storage, ServiceManager(interfaces=interfaces, storage=storage) as manager:
        info, _ = await manager.register_remote(ledger_descriptor(server.url))
        assert info.interface == "ledger/1"  # a bare interface name means its newest version

    storage = await open_storage(sqlite_url)
    async with storage, ServiceManager(interfaces=interfaces, storage=storage) as manager:
        assert manager.list() == []
        (restored,) = await manager.restore()
        assert (restored.name, restored.version, restored.base_url) == ("ledger", "r7", server.url)
        assert (restored.kind, restored.status) == (ServiceKind.REMOTE, ServiceStatus.UP)
        assert await manager.get(LEDGER).balance("acme") == 100.0
        (stored,) = await DescriptorStore(storage).load_all()
        assert stored.registered_at is not None
        assert stored.registered_at.tzinfo is not None


async def test_an_unreachable_remote_comes_back_down_without_a_crash(
    interfaces: InterfaceRegistry, serve_app: ServeApp, sqlite_url: str
) -> None:
    server = await serve_app(service_app(LEDGER_V1, InMemoryLedger()))
    storage = await open_storage(sqlite_url)
    async with storage, ServiceManager(interfaces=interfaces, storage=storage) as manager:
        await manager.register_remote(ledger_descriptor(server.url))
    await server.stop()

    storage = await open_storage(sqlite_url)
    async with storage, ServiceManager(
        interfaces=interfaces, storage=storage, health_timeout=0.5
    ) as manager:
        (restored,) = await manager.restore()
        assert restored.status is ServiceStatus.DOWN
        assert restored.detail.startswith("unreachable")
        with pytest.raises(ServiceUnavailable, match=server.url):
            await manager.call("ledger", "charge", {"account": "acme", "amount": 1}, timeout=2)


async def test_removing_a_remote_service_deletes_its_descriptor(
    interfaces: InterfaceRegistry, serve_app: ServeApp, sqlite_url: str
) -> None:
    server = await serve_app(service_app(LEDGER_V1, InMemoryLedger()))
    storage = await open_storage(sqlite_url)
    async with storage, ServiceManager(interfaces=interfaces, storage=storage) as manager:
        await manager.register_remote(ledger_descriptor(server.url))
        await manager.remove("ledger")
        with pytest.raises(NoSuchService):
            await manager.remove("ledger")

    storage = await open_storage(sqlite_url)
    async with storage, ServiceManager(interfaces=interfaces, storage=storage) as manager:
        assert await manager.restore() == []
        assert await DescriptorStore(storage).load_all() == []


async def test_descriptors_that_no_longer_fit_are_skipped_at_restore(
    interfaces: InterfaceRegistry, sqlite_url: str
) -> None:
    storage = await open_storage(sqlite_url)
    async with storage:
        store = DescriptorStore(storage)
        await store.save(ServiceDescriptor("erp", "erp/2", "http://127.0.0.1:9", "1"))
        await store.save(ServiceDescriptor("ledger", "ledger/1", "ftp://127.0.0.1:9", "1"))
        await store.save(ServiceDescriptor("taken", "ledger/1", "http://127.0.0.1:9", "1"))
        async with ServiceManager(interfaces=interfaces, storage=storage) as manager:
            manager.register(ServiceKey("taken", Ledger), InMemoryLedger())
            assert await manager.restore() == []
            assert [(i.name, i.kind) for i in manager.list()] == [("taken", ServiceKind.LOCAL)]
        # Skipped, not deleted: an operator may fix the interface registry and restart.
        assert len(await store.load_all()) == 3
