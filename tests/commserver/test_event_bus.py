"""The event bus: typed fan-out, bounded per-subscriber queues, a slow reader never blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from commserver.events import Event, EventBus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Event):
    kind: ClassVar[str] = "ping"
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Event):
    kind: ClassVar[str] = "pong"


async def test_subscribers_get_only_the_types_they_asked_for() -> None:
    bus = EventBus()
    pings = bus.subscribe(Ping)
    everything = bus.subscribe()
    bus.publish(Ping(at=NOW, n=1))
    bus.publish(Pong(at=NOW))
    assert await pings.get() == Ping(at=NOW, n=1)
    assert pings.get_nowait() is None
    assert [type(await everything.get()) for _ in range(2)] == [Ping, Pong]


async def test_a_full_subscriber_drops_its_oldest_events_and_counts_them() -> None:
    bus = EventBus()
    slow = bus.subscribe(Ping, maxsize=3)
    fast = bus.subscribe(Ping, maxsize=100)
    for n in range(10):
        bus.publish(Ping(at=NOW, n=n))
    assert slow.dropped == 7
    assert [(await slow.get()).n for _ in range(3)] == [7, 8, 9]
    assert fast.dropped == 0


async def test_closing_the_bus_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe(Ping)
    bus.publish(Ping(at=NOW, n=1))
    bus.close()
    assert [e.n async for e in sub] == [1]
