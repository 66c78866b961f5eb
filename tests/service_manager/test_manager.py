"""The registry itself: typed lookup, lifecycle, listing, removal and dynamic calls."""

from __future__ import annotations

import asyncio
from typing import Protocol

import pytest

from service_manager import (
    DuplicateService,
    InterfaceMismatch,
    InterfaceRegistry,
    InvalidArguments,
    NoSuchMethod,
    NoSuchService,
    ServiceCallFailed,
    ServiceKey,
    ServiceKind,
    ServiceManager,
    ServiceStatus,
    ServiceTimeout,
    ServiceUnavailable,
    UnknownInterface,
)
from service_manager.examples.customer_directory import (
    CUSTOMER_DIRECTORY,
    SAMPLE_CUSTOMERS,
    InMemoryCustomerDirectory,
)
from tests.service_manager.conftest import LEDGER, InMemoryLedger, Ledger


class Clock(Protocol):
    """An interface that is deliberately not in the registry."""

    async def now(self) -> float: ...


CLOCK = ServiceKey("clock", Clock)


class Lifecycle:
    """A service that records start/close into a shared journal."""

    def __init__(self, name: str, journal: list[str], *, fail_start: bool = False) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start

    async def start(self) -> None:
        if self.fail_start:
            raise OSError("database not reachable")
        self.journal.append(f"start {self.name}")

    async def aclose(self) -> None:
        self.journal.append(f"close {self.name}")

    async def now(self) -> float:
        return 42.0


async def test_get_returns_a_typed_proxy_that_reaches_the_implementation(
    interfaces: InterfaceRegistry,
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(CUSTOMER_DIRECTORY, InMemoryCustomerDirectory(SAMPLE_CUSTOMERS))
        directory = manager.get(CUSTOMER_DIRECTORY)
        customer = await directory.find_by_phone("030 1234567")
        assert customer is not None
        assert customer.id == 1001
        assert await directory.get(999) is None
        assert manager.get(CUSTOMER_DIRECTORY) is directory


async def test_duplicate_registration_is_refused(interfaces: InterfaceRegistry) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(LEDGER, InMemoryLedger())
        with pytest.raises(DuplicateService) as info:
            manager.register(LEDGER, InMemoryLedger())
        assert info.value.code == "duplicate-service"
        assert "replace()" in info.value.message


async def test_unknown_name_raises_no_such_service(interfaces: InterfaceRegistry) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        with pytest.raises(NoSuchService) as info:
            manager.get(LEDGER)
        assert info.value.code == "no-such-service"
        assert info.value.details == {"service": "ledger"}


async def test_a_key_with_another_interface_is_refused(interfaces: InterfaceRegistry) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(LEDGER, InMemoryLedger())
        with pytest.raises(InterfaceMismatch):
            manager.get(ServiceKey("ledger", Clock))


async def test_an_implementation_missing_methods_is_refused(
    interfaces: InterfaceRegistry,
) -> None:
    class HalfLedger:
        async def balance(self, account: str) -> float:
            return 0.0

    async with ServiceManager(interfaces=interfaces) as manager:
        with pytest.raises(InterfaceMismatch) as info:
            manager.register(LEDGER, HalfLedger())  # type: ignore[misc]
        assert info.value.details["missing"] == ["charge", "pause"]
        assert "ledger" not in manager


async def test_services_start_in_order_and_close_in_reverse_order() -> None:
    journal: list[str] = []
    manager = ServiceManager()
    for name in ("a", "b", "c"):
        manager.register(ServiceKey(name, Clock), Lifecycle(name, journal))
    async with manager:
        assert journal == ["start a", "start b", "start c"]
    assert journal[3:] == ["close c", "close b", "close a"]


async def test_a_service_registered_while_running_is_started_before_its_first_call() -> None:
    journal: list[str] = []
    async with ServiceManager() as manager:
        manager.register(CLOCK, Lifecycle("late", journal))
        assert await manager.get(CLOCK).now() == 42.0
        assert journal == ["start late"]
    assert journal == ["start late", "close late"]


async def test_a_failing_start_makes_the_service_down_not_the_manager() -> None:
    journal: list[str] = []
    async with ServiceManager() as manager:
        manager.register(CLOCK, Lifecycle("broken", journal, fail_start=True))
        with pytest.raises(ServiceUnavailable, match="failed to start: database not reachable"):
            await manager.get(CLOCK).now()
        (info,) = await manager.health()
        assert info.status is ServiceStatus.DOWN
        assert "database not reachable" in info.detail
    assert journal == []  # never started, so never closed


async def test_a_failing_start_at_entry_aborts_and_closes_what_started() -> None:
    journal: list[str] = []
    manager = ServiceManager()
    manager.register(ServiceKey("ok", Clock), Lifecycle("ok", journal))
    manager.register(ServiceKey("bad", Clock), Lifecycle("bad", journal, fail_start=True))
    with pytest.raises(ServiceUnavailable, match="'bad'"):
        async with manager:
            pytest.fail("the manager must not be entered")
    assert journal == ["start ok", "close ok"]


async def test_close_errors_are_collected_after_every_service_was_closed() -> None:
    journal: list[str] = []

    class BadClose(Lifecycle):
        async def aclose(self) -> None:
            raise RuntimeError(f"{self.name} would not close")

    manager = ServiceManager()
    manager.register(ServiceKey("a", Clock), Lifecycle("a", journal))
    manager.register(ServiceKey("b", Clock), BadClose("b", journal))
    manager.register(ServiceKey("c", Clock), Lifecycle("c", journal))
    with pytest.raises(ExceptionGroup) as info:
        async with manager:
            pass
    assert [str(e) for e in info.value.exceptions] == ["b would not close"]
    assert journal[-2:] == ["close c", "close a"]


async def test_list_and_health_report_local_services(interfaces: InterfaceRegistry) -> None:
    class Sick(Lifecycle):
        async def health(self) -> bool:
            return False

    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(CUSTOMER_DIRECTORY, InMemoryCustomerDirectory(SAMPLE_CUSTOMERS),
                         version="2.1")
        manager.register(CLOCK, Sick("sick", []))
        listed = {i.name: i for i in manager.list()}
        assert listed["customer-directory"].interface == "customer-directory/1"
        assert listed["customer-directory"].version == "2.1"
        assert listed["customer-directory"].kind is ServiceKind.LOCAL
        assert listed["clock"].interface.endswith("test_manager.Clock")
        checked = {i.name: i for i in await manager.health()}
        assert checked["customer-directory"].status is ServiceStatus.UP
        assert checked["clock"].status is ServiceStatus.DOWN
        assert checked["clock"].to_json()["status"] == "down"


async def test_removed_service_refuses_new_calls_through_an_old_proxy(
    interfaces: InterfaceRegistry,
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(LEDGER, InMemoryLedger())
        ledger = manager.get(LEDGER)
        assert await ledger.balance("acme") == 100.0
        report = await manager.remove(LEDGER)
        assert report.drained
        assert report.abandoned == 0
        with pytest.raises(NoSuchService):
            await ledger.balance("acme")
        with pytest.raises(NoSuchService):
            await manager.remove("ledger")
        assert manager.list() == []


async def test_dynamic_call_validates_and_returns_the_json_form(
    interfaces: InterfaceRegistry,
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(CUSTOMER_DIRECTORY, InMemoryCustomerDirectory(SAMPLE_CUSTOMERS))
        found = await manager.call("customer-directory", "find_by_phone",
                                   {"phone": "+493012345 67"}, timeout=1.0)
        assert isinstance(found, dict)
        assert found["name"] == "Anna Schmidt"
        hits = await manager.call("customer-directory", "search", {"text": "example.org"},
                                  timeout=1.0)
        assert isinstance(hits, list)
        assert [h["id"] for h in hits] == [1001, 1002]
        with pytest.raises(NoSuchService):
            await manager.call("crm", "find", {}, timeout=1.0)
        with pytest.raises(NoSuchMethod, match="find_by_phone, get, search"):
            await manager.call("customer-directory", "delete", {}, timeout=1.0)
        with pytest.raises(InvalidArguments) as bad:
            await manager.call("customer-directory", "get",
                               {"customer_id": "1001", "extra": 1}, timeout=1.0)
        assert bad.value.details["errors"] == {
            "extra": "unknown argument",
            "customer_id": "customer_id: expected an integer, got string",
        }


async def test_dynamic_call_times_out_and_wraps_unexpected_errors(
    interfaces: InterfaceRegistry,
) -> None:
    class Faulty(InMemoryLedger):
        async def charge(self, account: str, amount: float) -> float:
            raise KeyError(account)

    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(LEDGER, Faulty())
        with pytest.raises(ServiceTimeout, match=r"did not complete pause within 0\.05 s"):
            await manager.call("ledger", "pause", {"seconds": 5}, timeout=0.05)
        with pytest.raises(ServiceCallFailed, match="KeyError"):
            await manager.call("ledger", "charge", {"account": "x", "amount": 1}, timeout=1)
        assert manager.list()[0].in_flight == 0


async def test_dynamic_call_needs_a_registered_interface() -> None:
    async with ServiceManager() as manager:
        manager.register(CLOCK, Lifecycle("c", []))
        with pytest.raises(UnknownInterface, match="cannot be called by name"):
            await manager.call("clock", "now", {}, timeout=1.0)


async def test_calls_after_close_fail_clearly(interfaces: InterfaceRegistry) -> None:
    manager = ServiceManager(interfaces=interfaces)
    async with manager:
        manager.register(LEDGER, InMemoryLedger())
        ledger = manager.get(LEDGER)
    with pytest.raises(ServiceUnavailable, match="shut down"):
        await ledger.balance("acme")
    with pytest.raises(ServiceUnavailable):
        manager.register(LEDGER, InMemoryLedger())


async def test_proxy_counts_in_flight_calls(interfaces: InterfaceRegistry) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(LEDGER, InMemoryLedger())
        ledger = manager.get(LEDGER)
        calls = [asyncio.create_task(ledger.pause(0.2)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert manager.list()[0].in_flight == 3
        assert await asyncio.gather(*calls) == ["rested"] * 3
        assert manager.list()[0].in_flight == 0


async def test_shutdown_lets_a_dependent_finish_its_call_with_its_dependency(
    interfaces: InterfaceRegistry,
) -> None:
    """Shutdown drains and closes in reverse order, so dependencies outlive dependents."""
    journal: list[str] = []
    entered = asyncio.Event()

    class Dependent(Lifecycle):
        def __init__(self, ledger: Ledger) -> None:
            super().__init__("dependent", journal)
            self.ledger = ledger

        async def now(self) -> float:
            entered.set()
            await asyncio.sleep(0.1)  # still working when shutdown begins
            return await self.ledger.balance("acme")

    class ClosingLedger(InMemoryLedger):
        async def aclose(self) -> None:
            journal.append("close ledger")

    manager = ServiceManager(interfaces=interfaces)
    manager.register(LEDGER, ClosingLedger())
    manager.register(CLOCK, Dependent(manager.get(LEDGER)))
    async with manager:
        call = asyncio.create_task(manager.get(CLOCK).now())
        await entered.wait()
    assert call.done()
    assert call.result() == 100.0
    assert journal == ["start dependent", "close dependent", "close ledger"]
