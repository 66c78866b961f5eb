"""Replacing a service by a new version while many tasks keep calling it."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol

import pytest

from service_manager import (
    InterfaceRegistry,
    InterfaceSpec,
    ServiceKey,
    ServiceManager,
    ServiceStatus,
    ServiceUnavailable,
)


class Worker(Protocol):
    """The interface under replacement."""

    async def work(self, job: int) -> str: ...


WORKER_V1 = InterfaceSpec.from_protocol("worker", 1, Worker)
WORKER = ServiceKey("worker", Worker)


class VersionedWorker:
    """Answers with its version; fails loudly if called after (or while being) closed."""

    def __init__(self, version: str, *, pause: float = 0.004) -> None:
        self.version = version
        self.pause = pause
        self.in_flight = 0
        self.completed = 0
        self.closed = False
        self.in_flight_at_close: int | None = None
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def work(self, job: int) -> str:
        if self.closed or not self.started:
            raise RuntimeError(f"{self.version} called while not serving")
        self.in_flight += 1
        try:
            await asyncio.sleep(random.uniform(0, self.pause))
            if self.closed:
                raise RuntimeError(f"{self.version} closed under a running call")
            self.completed += 1
            return self.version
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.in_flight_at_close = self.in_flight
        self.closed = True


def is_closed(worker: VersionedWorker) -> bool:
    """Read through a call so mypy does not pin the flag to an earlier narrowing."""
    return worker.closed


async def test_replacing_twice_under_load_loses_no_call() -> None:
    v1, v2, v3 = VersionedWorker("v1"), VersionedWorker("v2"), VersionedWorker("v3")
    failures: list[BaseException] = []
    # (began, version that answered) for every call
    answers: list[tuple[float, str]] = []
    deadline = time.monotonic() + 1.5

    async with ServiceManager(interfaces=InterfaceRegistry([WORKER_V1])) as manager:
        manager.register(WORKER, v1, version="v1")
        worker = manager.get(WORKER)

        async def caller(n: int) -> None:
            for job in range(100_000):  # bounded; the deadline ends it long before
                if time.monotonic() >= deadline:
                    return
                began = time.monotonic()
                try:
                    answers.append((began, await worker.work(n * 100_000 + job)))
                except Exception as exc:
                    failures.append(exc)

        async with asyncio.TaskGroup() as group:
            for n in range(50):
                group.create_task(caller(n))
            await asyncio.sleep(0.5)
            report_2 = await manager.replace(WORKER, v2, version="v2")
            swapped_2 = time.monotonic()
            await asyncio.sleep(0.5)
            report_3 = await manager.replace(WORKER, v3, version="v3")
            swapped_3 = time.monotonic()

    assert failures == []
    assert len(answers) > 1000, "the load did not run"
    # The old versions drained: nothing was running when they were closed.
    assert v1.in_flight_at_close == 0
    assert v2.in_flight_at_close == 0
    assert report_2.drained
    assert report_2.abandoned == 0
    assert report_2.old_version == "v1"
    assert report_3.drained
    assert report_3.abandoned == 0
    assert report_3.new_version == "v3"
    # Every version served, and calls begun after a swap never reached an older version.
    assert v1.completed > 0
    assert v2.completed > 0
    assert v3.completed > 0
    assert all(version != "v1" for began, version in answers if began > swapped_2)
    assert all(version == "v3" for began, version in answers if began > swapped_3)
    assert v1.completed + v2.completed + v3.completed == len(answers)


async def test_old_version_shows_as_draining_until_its_calls_finish() -> None:
    old, new = VersionedWorker("old", pause=0.0), VersionedWorker("new", pause=0.0)
    release = asyncio.Event()

    async def slow_work(job: int) -> str:
        await release.wait()
        return "old"

    old.work = slow_work  # type: ignore[method-assign]
    async with ServiceManager(interfaces=InterfaceRegistry([WORKER_V1])) as manager:
        manager.register(WORKER, old, version="old")
        worker = manager.get(WORKER)
        pending = asyncio.create_task(worker.work(1))
        await asyncio.sleep(0.01)
        replacing = asyncio.create_task(manager.replace(WORKER, new, version="new"))
        await asyncio.sleep(0.01)
        listed = {(i.version, i.status) for i in manager.list()}
        assert listed == {("new", ServiceStatus.UP), ("old", ServiceStatus.DRAINING)}
        assert await worker.work(2) == "new"
        assert not replacing.done()
        assert not is_closed(old)
        release.set()
        assert await pending == "old"
        report = await replacing
        assert report.drained
        assert is_closed(old)
        assert [i.version for i in manager.list()] == ["new"]


async def test_drain_timeout_is_reported_and_the_old_version_closed() -> None:
    old, new = VersionedWorker("old", pause=0.0), VersionedWorker("new", pause=0.0)
    stuck = asyncio.Event()

    async def hung_work(job: int) -> str:
        await stuck.wait()
        return "old"

    old.work = hung_work  # type: ignore[method-assign]
    async with ServiceManager(interfaces=InterfaceRegistry([WORKER_V1])) as manager:
        manager.register(WORKER, old, version="old")
        pending = asyncio.create_task(manager.get(WORKER).work(1))
        await asyncio.sleep(0.01)
        report = await manager.replace(WORKER, new, version="new", drain_timeout=0.1)
        assert not report.drained
        assert report.abandoned == 1
        assert report.waited >= 0.1
        assert old.closed
        stuck.set()
        await pending


async def test_a_new_version_that_fails_to_start_leaves_the_old_one_serving() -> None:
    old = VersionedWorker("old", pause=0.0)

    class Broken(VersionedWorker):
        async def start(self) -> None:
            raise OSError("cannot reach the ERP")

    async with ServiceManager(interfaces=InterfaceRegistry([WORKER_V1])) as manager:
        manager.register(WORKER, old, version="old")
        with pytest.raises(ServiceUnavailable, match="cannot reach the ERP"):
            await manager.replace(WORKER, Broken("new"), version="new")
        assert await manager.get(WORKER).work(1) == "old"
        assert not old.closed
