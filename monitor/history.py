"""The history reports read besides call records: agent state changes and contact events.

`HistoryRecorder` subscribes to the event bus and writes every `AgentStateChanged` as an
`AgentStateLog` row and every `ContactStateChanged` as a `ContactEvent` row (business objects
of `monitor/model.xml`), through batch writers: historical availability and occupancy come
from the first, rings, misses and wrap-up times (and the queue_log export) from the second.

The recorder takes whatever events are queued at once and writes them together, so one
consumer keeps up with the bus while each row is still committed before it counts as written.
Its bus subscription is bounded: if storage stalls long enough to fill it, the oldest events
are dropped and counted (`dropped`, exported on /metrics); call records, which reports count
from, are written by the call controller itself and never depend on this.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commserver.agents import AgentState, AgentStateChanged
from commserver.clock import utcnow
from commserver.contacts import ContactStateChanged
from commserver.events import Event, EventBus, Subscription
from commserver.tasks import TaskSet
from storage import BatchWriter, StorageError, StorageManager

log = logging.getLogger(__name__)

#: Events the recorder may hold while storage is slow before it starts dropping the oldest.
BUS_QUEUE = 50_000
#: Rows handed to the batch writers in one go.
CHUNK = 1000
LOGGED_OUT = "logged-out"


@dataclass(frozen=True, slots=True)
class AgentStateLog:
    """An agent entered `state` at `at` (business object `AgentStateLog`)."""

    id: int | None
    agent_id: str
    state: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """A contact moved from `old_state` to `new_state` (business object `ContactEvent`)."""

    id: int | None
    contact_id: str
    at: datetime
    old_state: str
    new_state: str
    queue: str | None
    agent_id: str | None
    outcome: str | None


def bind_history(storage: StorageManager) -> None:
    """Bind the history's dataclasses to their business objects (idempotent)."""
    storage.bind(AgentStateLog, "AgentStateLog")
    storage.bind(ContactEvent, "ContactEvent")


def row_of(event: Event) -> AgentStateLog | ContactEvent | None:
    """The history row an event becomes, if any."""
    if isinstance(event, AgentStateChanged):
        return AgentStateLog(
            id=None,
            agent_id=event.agent_id,
            state=event.new.value,
            reason=event.reason[:64],
            at=event.at,
        )
    if isinstance(event, ContactStateChanged):
        return ContactEvent(
            id=None,
            contact_id=event.contact_id,
            at=event.at,
            old_state=event.old.value,
            new_state=event.new.value,
            queue=event.queue,
            agent_id=event.agent_id,
            outcome=event.outcome.value if event.outcome is not None else None,
        )
    return None


class HistoryRecorder:
    """Writes agent state changes and contact events from the bus into storage."""

    def __init__(
        self,
        storage: StorageManager,
        bus: EventBus,
        *,
        agent_states: Callable[[], Mapping[str, str]] = dict,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._storage = storage
        self._bus = bus
        self._agent_states = agent_states
        self._now = now
        self._subscription: Subscription[Event] | None = None
        self._agents: BatchWriter[AgentStateLog] | None = None
        self._contacts: BatchWriter[ContactEvent] | None = None
        self._tasks = TaskSet("history-recorder")
        self.written = 0
        self.failed = 0
        bind_history(storage)

    @property
    def dropped(self) -> int:
        """Events the bus dropped before the recorder could take them."""
        return self._subscription.dropped if self._subscription is not None else 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[HistoryRecorder]:
        """Record until exit; on exit write what is queued and log every agent out."""
        self._subscription = self._bus.subscribe(
            AgentStateChanged, ContactStateChanged, maxsize=BUS_QUEUE
        )
        try:
            async with (
                self._storage.batch_writer(AgentStateLog) as agents,
                self._storage.batch_writer(ContactEvent) as contacts,
            ):
                self._agents, self._contacts = agents, contacts
                await self._close_open_shifts("restart")
                self._tasks.spawn(self._consume(self._subscription), name="history-consume")
                try:
                    yield self
                finally:
                    await self._tasks.cancel_all()
                    await self._write(_take_queued(self._subscription))
                    await self._log_everyone_out()
        finally:
            self._bus.unsubscribe(self._subscription)
            self._agents = self._contacts = None

    async def _consume(self, subscription: Subscription[Event]) -> None:
        while True:
            try:
                first = await subscription.get()
            except StopAsyncIteration:
                return  # the bus closed: nothing more will come
            await self._write([first, *_take_queued(subscription, CHUNK - 1)])

    async def _write(self, events: list[Event]) -> None:
        """Write the rows of these events, in order; a failed row is logged and counted."""
        writes: list[Coroutine[Any, Any, object]] = []
        for event in events:
            row = row_of(event)
            if isinstance(row, AgentStateLog) and self._agents is not None:
                writes.append(self._agents.write(row))
            elif isinstance(row, ContactEvent) and self._contacts is not None:
                writes.append(self._contacts.write(row))
        if not writes:
            return
        results = await asyncio.gather(*writes, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        self.written += len(results) - len(failures)
        for failure in failures:
            if not isinstance(failure, Exception):
                raise failure  # cancellation is not a write failure
        if failures:
            self.failed += len(failures)
            log.error("history: %d of %d rows not written: %s", len(failures), len(results),
                      failures[0])

    async def _close_open_shifts(self, reason: str) -> None:
        """After a crash an agent's last row may say they were working: close it now."""
        assert self._agents is not None
        for agent_id in self._agent_states():
            try:
                last = await self._storage.query(
                    AgentStateLog, where={"agent_id": agent_id}, order_by=["-at", "-id"], limit=1
                )
                if last and last[0].state != LOGGED_OUT:
                    await self._agents.write(
                        AgentStateLog(None, agent_id, LOGGED_OUT, reason, self._now())
                    )
            except StorageError as exc:
                log.warning("history: cannot close agent %s's last shift: %s", agent_id, exc)

    async def _log_everyone_out(self) -> None:
        """At shutdown, agents still logged in stop being staffed."""
        now = self._now()
        events: list[Event] = [
            AgentStateChanged(at=now, agent_id=agent_id, old=AgentState(state),
                              new=AgentState.LOGGED_OUT, reason="shutdown")
            for agent_id, state in self._agent_states().items()
            if state != LOGGED_OUT
        ]
        await self._write(events)


def _take_queued(subscription: Subscription[Event], limit: int = 1_000_000) -> list[Event]:
    """Events already waiting in the subscription, without waiting for more."""
    taken: list[Event] = []
    while len(taken) < limit and (event := subscription.get_nowait()) is not None:
        taken.append(event)
    return taken
