"""Wrap-up dispositions: what the agent notes about a contact, stored on its call record.

The call record is written when the call ends, while the agent may pick a disposition during
the call or in wrap-up. A disposition for a contact whose record is not stored yet waits here
(in memory) and is applied when `CallRecordStored` for that contact comes by; one for a stored
record updates it at once. Only the agent who had the contact may set its disposition.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

from commserver.contacts import CallRecord, Contact
from commserver.contacts.events import CallRecordStored
from commserver.events import EventBus
from commserver.tasks import TaskSet
from monitor.domain_errors import InvalidRequest, NoSuchContactRecord
from storage import StorageError, StorageManager

log = logging.getLogger(__name__)

MAX_DISPOSITION = 64
MAX_PENDING = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What the desktop offers; any other short text is accepted too.
DEFAULT_DISPOSITIONS = (
    "Resolved", "Follow-up needed", "Callback scheduled", "Escalated", "Information given",
    "Complaint", "Wrong number",
)


def check_disposition(raw: str) -> str:
    """A disposition, trimmed: 1-64 characters, no control characters."""
    text = " ".join(raw.split())
    if not text or len(text) > MAX_DISPOSITION or _CONTROL.search(text):
        raise InvalidRequest(
            f"a disposition is 1-{MAX_DISPOSITION} characters of text", field="disposition"
        )
    return text


class Dispositions:
    """Sets dispositions on call records, now or once the record is stored."""

    def __init__(
        self, storage: StorageManager, live_contact: Callable[[str], Contact | None]
    ) -> None:
        self._storage = storage
        self._live_contact = live_contact
        self._pending: OrderedDict[str, str] = OrderedDict()
        self._tasks = TaskSet("dispositions")
        storage.bind(CallRecord, "CallRecord")

    async def _record(self, contact_id: str) -> CallRecord | None:
        rows = await self._storage.query(CallRecord, where={"contact_id": contact_id}, limit=1)
        return rows[0] if rows else None

    async def set(self, contact_id: str, agent_id: str, disposition: str) -> bool:
        """Note a disposition; True if the record has it now, False if it waits for it."""
        text = check_disposition(disposition)
        live = self._live_contact(contact_id)
        if live is not None and live.agent_id != agent_id:
            raise NoSuchContactRecord(f"contact {contact_id} is not yours",
                                      contact_id=contact_id)
        record = await self._record(contact_id)
        if record is None:
            if live is None:
                raise NoSuchContactRecord(f"no contact {contact_id}", contact_id=contact_id)
            self._pending[contact_id] = text
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
            # The record may have been stored while we looked: then apply it now.
            record = await self._record(contact_id)
            if record is None:
                return False
        if record.agent_id != agent_id:
            raise NoSuchContactRecord(f"contact {contact_id} is not yours",
                                      contact_id=contact_id)
        self._pending.pop(contact_id, None)
        await self._storage.update(replace(record, disposition=text))
        return True

    async def _apply(self, contact_id: str) -> None:
        text = self._pending.pop(contact_id, None)
        if text is None:
            return
        try:
            record = await self._record(contact_id)
            if record is not None:
                await self._storage.update(replace(record, disposition=text))
        except StorageError as exc:
            log.error("disposition of %s not stored: %s", contact_id, exc)

    @asynccontextmanager
    async def running(self, bus: EventBus | None) -> AsyncIterator[Dispositions]:
        """Apply waiting dispositions as records are stored, until exit."""
        if bus is None:
            yield self
            return
        subscription = bus.subscribe(CallRecordStored, maxsize=10_000)

        async def consume() -> None:
            async for event in subscription:
                if event.contact_id in self._pending:
                    await self._apply(event.contact_id)

        self._tasks.spawn(consume(), name="dispositions")
        try:
            yield self
        finally:
            bus.unsubscribe(subscription)
            await self._tasks.cancel_all()
