"""SQLite, the embedded default: durable settings, two writers on one file, memory databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text

from storage import StorageManager
from tests.storage.conftest import CallRecord, Note, Opener, calls_model


def call(contact_id: str) -> CallRecord:
    return CallRecord(None, contact_id, "q", None, "answered", datetime.now(UTC))


async def test_connections_are_durable_wal_with_busy_timeout_and_foreign_keys(
    sqlite_url: str,
) -> None:
    async with StorageManager.open(sqlite_url, [calls_model()]) as manager:
        async with manager.engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL: a commit is on disk when it returns
        "foreign_keys": 1,
        "busy_timeout": 10_000,
    }


async def test_two_managers_on_one_file_write_concurrently_without_errors(
    sqlite_url: str, open_sqlite: Opener
) -> None:
    # Two managers stand for two processes (server and a CLI tool) sharing the file.
    first = await open_sqlite(calls_model())
    second = await open_sqlite(calls_model())
    for manager in (first, second):
        manager.bind(CallRecord, "CallRecord")

    async def burst(manager: StorageManager, prefix: str) -> None:
        for n in range(60):
            await manager.insert(call(f"{prefix}-{n}"))

    managers = enumerate((first, second))
    bursts = [burst(manager, f"{number}-{t}") for number, manager in managers for t in range(3)]
    async with asyncio.timeout(50):
        await asyncio.gather(*bursts)
    assert await first.count(CallRecord) == 360


async def test_memory_database_serves_concurrent_tasks(open_sqlite: Opener) -> None:
    manager = await open_sqlite(calls_model(), url="sqlite+aiosqlite://")
    manager.bind(CallRecord, "CallRecord")
    manager.bind(Note, "Note")
    stored = await asyncio.gather(*(manager.insert(call(f"m-{n}")) for n in range(50)))
    counts = await asyncio.gather(*(manager.count(CallRecord) for _ in range(10)))
    assert counts == [50] * 10
    assert len({record.id for record in stored}) == 50
