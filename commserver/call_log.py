"""The call log: finished contacts' records, written in batches and read newest first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from commserver.contacts import CallRecord
from storage import BatchWriter, StorageManager


@dataclass(frozen=True, slots=True)
class CallPage:
    """One page of the call log, newest first."""

    records: list[CallRecord]
    total: int
    limit: int
    offset: int


class CallLog(Protocol):
    """The service the web front and reports read finished calls through."""

    async def recent(self, *, limit: int, offset: int) -> CallPage:
        """Records ordered by end time, newest first."""

    async def write(self, record: CallRecord) -> None:
        """Store one record; returns once it is durable."""


class StoredCallLog:
    """`CallLog` over the storage manager, writing through a batch writer."""

    def __init__(self, storage: StorageManager, writer: BatchWriter[CallRecord]) -> None:
        self._storage = storage
        self._writer = writer

    async def write(self, record: CallRecord) -> None:
        """Queue the record for the next batch and wait until it is committed."""
        await self._writer.write(record)

    async def recent(self, *, limit: int, offset: int) -> CallPage:
        """A page of records, newest first (ties broken by id)."""
        records = await self._storage.query(
            CallRecord, order_by=["-ended_at", "-id"], limit=limit, offset=offset
        )
        total = await self._storage.count(CallRecord)
        return CallPage(records, total, limit, offset)
