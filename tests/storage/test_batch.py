"""The batch writer: concurrent writers share transactions, nothing is lost, bad rows stay alone."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from storage import Conflict, InvalidValue, StorageError, StorageManager
from tests.storage.conftest import CallRecord, Opener, calls_model

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def call(contact_id: str, **changes: object) -> CallRecord:
    values: dict[str, object] = {
        "id": None,
        "contact_id": contact_id,
        "queue": "support",
        "agent": None,
        "outcome": "answered",
        "ended_at": NOW,
        "talk_seconds": 1.0,
        "answered": True,
        "extra": {"n": contact_id},
    }
    values.update(changes)
    return CallRecord(**values)  # type: ignore[arg-type]


async def test_many_concurrent_writers_lose_no_row_and_share_batches(
    calls: StorageManager,
) -> None:
    writers, per_writer = 40, 50

    async with calls.batch_writer(CallRecord, max_batch=100, max_delay=0.02) as writer:

        async def agent_line(line: int) -> list[CallRecord]:
            return [await writer.write(call(f"w{line}-{n}")) for n in range(per_writer)]

        async with asyncio.timeout(50):
            results = await asyncio.gather(*(agent_line(line) for line in range(writers)))

    written = [record for line in results for record in line]
    assert len(written) == writers * per_writer
    assert all(record.id is not None for record in written)
    assert len({record.id for record in written}) == len(written)
    assert await calls.count(CallRecord) == len(written)
    assert writer.stats.rows == len(written)
    assert writer.stats.failed_rows == 0
    # Batching happened: far fewer transactions than rows.
    assert writer.stats.batches <= len(written) // 10
    for record in written[:: len(written) // 20]:
        assert await calls.get(CallRecord, record.id) == record


async def test_one_bad_row_fails_alone_and_its_batch_is_still_written(
    calls: StorageManager,
) -> None:
    await calls.insert(call("taken"))
    # A long delay and a batch size of exactly the number of writes: one single batch.
    async with calls.batch_writer(CallRecord, max_batch=30, max_delay=5.0) as writer:
        contacts = [f"ok-{n}" for n in range(29)]
        contacts.insert(13, "taken")  # violates the unique index at the database
        outcomes = await asyncio.gather(
            *(writer.write(call(contact)) for contact in contacts), return_exceptions=True
        )
    failures = [(c, o) for c, o in zip(contacts, outcomes, strict=True) if isinstance(o, Exception)]
    assert [contact for contact, _ in failures] == ["taken"]
    assert isinstance(failures[0][1], Conflict)
    assert writer.stats.fallbacks == 1
    assert writer.stats.failed_rows == 1
    assert await calls.count(CallRecord) == 30  # "taken" once + 29 good rows
    stored = {record.contact_id for record in await calls.query(CallRecord)}
    assert stored == {"taken", *contacts}


async def test_invalid_value_fails_its_write_at_once(calls: StorageManager) -> None:
    async with calls.batch_writer(CallRecord, max_delay=0.01) as writer:
        good = asyncio.create_task(writer.write(call("good")))
        with pytest.raises(InvalidValue, match=r"CallRecord\.outcome must not be None"):
            await writer.write(call("bad", outcome=None))
        assert (await good).contact_id == "good"
    assert await calls.count(CallRecord) == 1


async def test_a_lone_row_is_flushed_after_max_delay(calls: StorageManager) -> None:
    async with calls.batch_writer(CallRecord, max_batch=1000, max_delay=0.2) as writer:
        started = time.monotonic()
        record = await writer.write(call("alone"))
        elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 5.0
    assert await calls.get(CallRecord, record.id) == record


async def test_full_batch_is_flushed_without_waiting_for_the_delay(calls: StorageManager) -> None:
    async with calls.batch_writer(CallRecord, max_batch=10, max_delay=30.0) as writer:
        async with asyncio.timeout(10):  # would hang for 30 s if only the delay flushed
            await asyncio.gather(*(writer.write(call(f"b-{n}")) for n in range(10)))
    assert writer.stats.batches == 1


async def test_rows_in_flight_are_bounded(calls: StorageManager) -> None:
    peak = 0
    async with calls.batch_writer(CallRecord, max_batch=5, max_delay=0.001, max_queue=10) as w:
        writes = [asyncio.create_task(w.write(call(f"q-{n}"))) for n in range(100)]
        while not all(task.done() for task in writes):
            peak = max(peak, len(w._pending))
            await asyncio.sleep(0)
        await asyncio.gather(*writes)
    assert 0 < peak <= 10
    assert await calls.count(CallRecord) == 100


async def test_rows_accepted_before_an_error_in_the_block_are_still_written(
    calls: StorageManager,
) -> None:
    tasks: list[asyncio.Task[CallRecord]] = []

    async def broken_block() -> None:
        async with calls.batch_writer(CallRecord, max_batch=100, max_delay=10.0) as writer:
            tasks.extend(asyncio.create_task(writer.write(call(f"e-{n}"))) for n in range(5))
            await asyncio.sleep(0)  # let them be accepted
            raise RuntimeError("caller broke")

    with pytest.raises(RuntimeError, match="caller broke"):
        await broken_block()
    assert len(await asyncio.gather(*tasks)) == 5
    assert await calls.count(CallRecord) == 5


async def test_closing_the_manager_drains_open_writers(open_storage: Opener) -> None:
    manager = await open_storage(calls_model())
    manager.bind(CallRecord, "CallRecord")
    writer = await manager.batch_writer(CallRecord, max_batch=100, max_delay=10.0).__aenter__()
    tasks = [asyncio.create_task(writer.write(call(f"d-{n}"))) for n in range(7)]
    await asyncio.sleep(0)
    await manager.close()
    assert all(record.id is not None for record in await asyncio.gather(*tasks))
    reopened = await open_storage(calls_model())
    reopened.bind(CallRecord, "CallRecord")
    assert await reopened.count(CallRecord) == 7


async def test_writer_refuses_writes_when_not_open(calls: StorageManager) -> None:
    writer = calls.batch_writer(CallRecord)
    with pytest.raises(StorageError, match="not open"):
        await writer.write(call("early"))
    async with writer:
        await writer.write(call("inside"))
    with pytest.raises(StorageError, match="not open"):
        await writer.write(call("late"))
    with pytest.raises(StorageError, match="only once"):
        await writer.__aenter__()
    with pytest.raises(StorageError, match="max_batch must be at least 1"):
        calls.batch_writer(CallRecord, max_batch=0)
