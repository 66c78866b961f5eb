"""The typed event bus: every step of a contact, an agent or a service is an event on it.

Publishing never blocks. Each subscriber has its own bounded queue, so a slow consumer (a
browser, an exporter) never stalls the server or the other subscribers; when its queue is full
the oldest event is dropped and counted, and the subscriber can see how many it missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar, overload

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event on the bus; `kind` is the stable name used on the wire."""

    kind: ClassVar[str] = "event"
    at: datetime


E = TypeVar("E", bound=Event)


@dataclass(eq=False)
class Subscription(Generic[E]):
    """One subscriber's bounded view of the bus; iterate it to receive events."""

    types: tuple[type[E], ...]
    maxsize: int
    dropped: int = 0
    _items: deque[E] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _closed: bool = False

    def _offer(self, event: E) -> None:
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(event)
        self._ready.set()

    def get_nowait(self) -> E | None:
        """The next queued event, or None when nothing is waiting."""
        if not self._items:
            self._ready.clear()
            return None
        return self._items.popleft()

    async def get(self) -> E:
        """Wait for the next event."""
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def close(self) -> None:
        """End the iteration once queued events are consumed."""
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[E]:
        return self

    async def __anext__(self) -> E:
        return await self.get()


class EventBus:
    """Fan-out of typed events to subscribers; publish is synchronous and never blocks."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription[Event]] = []
        self.published = 0

    @overload
    def subscribe(self, *, maxsize: int = 1000) -> Subscription[Event]: ...
    @overload
    def subscribe(self, *types: type[E], maxsize: int = 1000) -> Subscription[E]: ...
    def subscribe(self, *types: type[Any], maxsize: int = 1000) -> Subscription[Any]:
        """Receive events of these types (all events when none given) in a bounded queue."""
        subscription: Subscription[Any] = Subscription(types or (Event,), maxsize)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription[E]) -> None:
        """Stop delivering to a subscription and end its iteration."""
        subscription.close()
        self._subscriptions = [s for s in self._subscriptions if s is not subscription]

    def publish(self, event: Event) -> None:
        """Deliver an event to every subscriber interested in its type."""
        self.published += 1
        for subscription in self._subscriptions:
            if isinstance(event, subscription.types):
                subscription._offer(event)

    def close(self) -> None:
        """End every subscription (at shutdown)."""
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
