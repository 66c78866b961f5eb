"""The screen pop: who is calling, looked up once per offered contact, off the push path.

When a contact is offered to an agent, the customer directory (if a `customer-directory`
service is registered) is asked for the caller's number and the stored call records give the
recent contacts from that number. The lookup runs in its own owned task with a timeout, so a
slow legacy system never holds up the live feed; when it finishes the feed is told to push.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commserver.contacts import CallRecord, ContactState, ContactStateChanged
from commserver.keys import STORAGE
from commserver.tasks import TaskSet
from monitor.api import to_json
from service_manager import ServiceManager
from service_manager.examples.customer_directory import CUSTOMER_DIRECTORY

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT = 2.0
HISTORY_LENGTH = 5
MAX_ENTRIES = 2000
_ENDED = frozenset({ContactState.ENDED, ContactState.ABANDONED})


class PopStatus(enum.Enum):
    """How far the customer lookup got."""

    PENDING = "pending"
    FOUND = "found"
    UNKNOWN = "unknown"
    NO_DIRECTORY = "no-directory"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ScreenPop:
    """What the desktop shows about the customer on a contact."""

    contact_id: str
    caller: str
    status: PopStatus
    customer: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class ScreenPops:
    """Lookups per offered contact, cached until the contact ends (bounded)."""

    def __init__(
        self,
        services: ServiceManager,
        *,
        caller_of: Callable[[str], str | None],
        on_ready: Callable[[], None],
        timeout: float = LOOKUP_TIMEOUT,
    ) -> None:
        self._services = services
        self._caller_of = caller_of
        self._on_ready = on_ready
        self._timeout = timeout
        self._pops: OrderedDict[str, ScreenPop] = OrderedDict()
        self._tasks = TaskSet("screen-pops")

    def get(self, contact_id: str) -> ScreenPop | None:
        """The pop of a contact, once it has been offered."""
        return self._pops.get(contact_id)

    def on_contact(self, event: ContactStateChanged) -> None:
        """Start a lookup when a contact is first offered; forget it when it ends."""
        if event.new in _ENDED:
            self._pops.pop(event.contact_id, None)
            return
        if event.new is not ContactState.OFFERED or event.contact_id in self._pops:
            return
        caller = self._caller_of(event.contact_id)
        if caller is None:
            return
        self._store(ScreenPop(event.contact_id, caller, PopStatus.PENDING))
        self._tasks.spawn(self._look_up(event.contact_id, caller), name=f"pop-{event.contact_id}")

    def _store(self, pop: ScreenPop) -> None:
        self._pops[pop.contact_id] = pop
        self._pops.move_to_end(pop.contact_id)
        while len(self._pops) > MAX_ENTRIES:
            self._pops.popitem(last=False)

    async def _look_up(self, contact_id: str, caller: str) -> None:
        status, customer = await self._customer(caller)
        history = await self._history(caller)
        if contact_id in self._pops:  # still live: it may have ended meanwhile
            self._store(ScreenPop(contact_id, caller, status, customer, history))
            self._on_ready()

    async def _customer(self, caller: str) -> tuple[PopStatus, dict[str, Any] | None]:
        if CUSTOMER_DIRECTORY not in self._services:
            return PopStatus.NO_DIRECTORY, None
        if not caller.strip():
            return PopStatus.UNKNOWN, None
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._services.get(CUSTOMER_DIRECTORY).find_by_phone(caller)
        except Exception as exc:
            # A legacy directory failing must never break the desktop: say so and go on.
            log.warning("customer lookup for a contact failed: %s", type(exc).__name__)
            return PopStatus.FAILED, None
        if found is None:
            return PopStatus.UNKNOWN, None
        customer = to_json(found)
        return PopStatus.FOUND, customer if isinstance(customer, dict) else {"value": customer}

    async def _history(self, caller: str) -> list[dict[str, Any]]:
        if not caller.strip() or STORAGE not in self._services:
            return []
        try:
            async with asyncio.timeout(self._timeout):
                records = await self._services.get(STORAGE).query(
                    CallRecord,
                    where={"caller": caller},
                    order_by=["-ended_at"],
                    limit=HISTORY_LENGTH,
                )
        except Exception as exc:
            log.warning("contact history lookup failed: %s", type(exc).__name__)
            return []
        return [
            {
                "contact_id": r.contact_id,
                "arrived_at": r.arrived_at.isoformat(),
                "queue": r.queue,
                "agent_id": r.agent_id,
                "outcome": r.outcome,
                "talk_seconds": r.talk_seconds,
            }
            for r in records
        ]

    async def close(self) -> None:
        """Cancel lookups still running (at shutdown)."""
        await self._tasks.cancel_all()
