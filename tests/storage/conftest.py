"""Models, bound classes and factories shared by the storage tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage import BusinessObjectModel, StorageManager, parse_model
from storage.engine import Backend, create_engine, parse_database_url

CALLS_XML = """<?xml version="1.0"?>
<!DOCTYPE model SYSTEM "business-objects.dtd">
<model name="test-calls">
  <object name="CallRecord" table="call_record">
    <attribute name="id" type="integer" key="true" generated="true"/>
    <attribute name="contact_id" type="string" length="64" nullable="false"/>
    <attribute name="queue" type="string" length="40"/>
    <attribute name="agent" type="string" length="40"/>
    <attribute name="outcome" type="string" length="20" nullable="false"/>
    <attribute name="ended_at" type="datetime" nullable="false"/>
    <attribute name="talk_seconds" type="float"/>
    <attribute name="answered" type="boolean"/>
    <attribute name="extra" type="json"/>
    <index attributes="contact_id" unique="true"/>
    <index attributes="queue ended_at"/>
  </object>
  <object name="Note">
    <attribute name="code" type="string" length="20" key="true"/>
    <attribute name="body" type="text"/>
    <attribute name="day" type="date"/>
  </object>
</model>
"""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The test's call record (bound to CallRecord)."""

    id: int | None
    contact_id: str
    queue: str | None
    agent: str | None
    outcome: str
    ended_at: datetime
    talk_seconds: float | None = None
    answered: bool | None = None
    extra: Any = None


@dataclass
class Note:
    """A mutable dataclass with a string key (bound to Note)."""

    code: str
    body: str | None
    day: date | None


def calls_model() -> BusinessObjectModel:
    """The test model with CallRecord and Note."""
    return parse_model(CALLS_XML, source="calls.xml")


Opener = Callable[..., Awaitable[StorageManager]]


async def _opener(default_url: str) -> AsyncIterator[Opener]:
    opened: list[StorageManager] = []

    async def factory(*models: BusinessObjectModel, url: str | None = None) -> StorageManager:
        manager = await StorageManager.open(url or default_url, models=list(models))
        opened.append(manager)
        return manager

    yield factory
    for manager in opened:
        await manager.close()


@pytest.fixture
async def open_storage(db_url: str) -> AsyncIterator[Opener]:
    """Open managers on `db_url` (or another url=...); all are closed after the test."""
    async for factory in _opener(db_url):
        yield factory


@pytest.fixture
async def open_sqlite(sqlite_url: str) -> AsyncIterator[Opener]:
    """Like open_storage, on this test's SQLite file only."""
    async for factory in _opener(sqlite_url):
        yield factory


@pytest.fixture
async def calls(open_storage: Opener) -> StorageManager:
    """A manager with the calls model open and both classes bound."""
    manager = await open_storage(calls_model())
    manager.bind(CallRecord, "CallRecord")
    manager.bind(Note, "Note")
    return manager


async def run_sql(url: str, *statements: str) -> None:
    """Run raw statements on the database at `url` (legacy tables made by hand)."""
    target = parse_database_url(url)
    engine = create_engine(target)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def _snapshot(connection: Connection, table: str) -> dict[str, Any]:
    inspector = inspect(connection)
    names = [name for name in inspector.get_table_names() if name.lower() == table.lower()]
    if not names:
        return {"exists": False}
    (name,) = names
    columns = [
        {
            "name": column["name"],
            "type": str(column["type"]),
            "nullable": column["nullable"],
            "default": str(column.get("default")),
        }
        for column in inspector.get_columns(name)
    ]
    indexes = sorted(
        (str(index["name"]), tuple(str(c) for c in index["column_names"]))
        for index in inspector.get_indexes(name)
    )
    return {
        "exists": True,
        "name": name,
        "columns": columns,
        "pk": inspector.get_pk_constraint(name),
        "indexes": indexes,
        "unique": inspector.get_unique_constraints(name),
    }


async def table_ddl(url: str, table: str) -> dict[str, Any]:
    """Everything the database says about a table: reflected shape plus native DDL text."""
    target = parse_database_url(url)
    engine = create_engine(target)
    try:
        async with engine.connect() as connection:
            snapshot = await connection.run_sync(_snapshot, table)
            if not snapshot["exists"]:
                return snapshot
            name = snapshot["name"]
            if target.backend is Backend.SQLITE:
                result = await connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (name,)
                )
                snapshot["native"] = result.scalar_one()
            elif target.backend is Backend.MARIADB:
                result = await connection.exec_driver_sql(f"SHOW CREATE TABLE `{name}`")
                create = str(result.one()._mapping["Create Table"])
                # The AUTO_INCREMENT counter moves with the data, not with the table's shape.
                snapshot["native"] = re.sub(r" AUTO_INCREMENT=\d+", "", create)
            else:
                result = await connection.exec_driver_sql(
                    "SELECT column_name, data_type, character_maximum_length, is_nullable, "
                    "column_default FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = $1 "
                    "ORDER BY ordinal_position",
                    (name,),
                )
                snapshot["native"] = [tuple(row) for row in result.all()]
            return snapshot
    finally:
        await engine.dispose()


async def table_names(url: str) -> set[str]:
    """Lower-cased names of the tables in the database at `url`."""
    target = parse_database_url(url)
    engine = create_engine(target)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        return {name.lower() for name in names}
    finally:
        await engine.dispose()
