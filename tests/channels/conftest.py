"""Factories for the three-channel tests: a whole server (sim backend, SQLite, real port) with
dialog scripts placed on a queue, on phone numbers and on the public page, a fake metering
service registered by name, and helpers to read stored runs back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from commserver.app import Server, build_server
from commserver.config import config_from_mapping
from scripts_engine.store import ScriptRunRecord, StorageRunStore
from service_manager import ServiceKey
from service_manager.interfaces import InterfaceSpec

ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]

SCRIPT = "meter-reading"
#: The number placed on the meter-reading script; 201 runs the outage report.
METER_NUMBER = "200"
OUTAGE_NUMBER = "201"
#: The day the meter was read, in every channel's test (inside the script's today-30..today).
READING_DAY = date.today() - timedelta(days=2)


class Metering(Protocol):
    """The metering system the meter-reading script calls."""

    async def last_reading(self, account: str, meter: str) -> dict[str, Any]:
        """The last reading of an account's meter."""
        ...

    async def submit_reading(
        self, account: str, meter: str, reading: int, date: str
    ) -> dict[str, Any]:
        """Record a reading; a receipt with a reference."""
        ...


METERING_V1 = InterfaceSpec.from_protocol("metering", 1, Metering, idempotent={"last_reading"})
METERING = ServiceKey("metering", Metering)


class FakeMetering:
    """Answers like a metering system: the last reading is 1000, receipts are deterministic."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    async def last_reading(self, account: str, meter: str) -> dict[str, Any]:
        """Always 1000 units."""
        self.calls.append(("last_reading", {"account": account, "meter": meter}))
        return {"value": 1000, "meter": meter}

    async def submit_reading(
        self, account: str, meter: str, reading: int, date: str
    ) -> dict[str, Any]:
        """A receipt naming what was submitted."""
        self.calls.append(
            ("submit_reading", {"account": account, "meter": meter, "reading": reading})
        )
        return {"reference": f"MR-{account}-{meter}-{reading}-{date}"}


def channel_site(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """Queues for metering and outages, one agent each, scripts placed on all three channels."""
    raw: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path), "drain_timeout": 2.0},
        "web": {"port": 0},
        "telephony": {"backend": "sim", "ring_timeout": 5.0, "sim": {"answer_delay": 0.01}},
        "queues": [
            {"name": "metering", "skills": {"metering": 1}},
            {"name": "outage", "skills": {"outage": 1}},
            {"name": "gas-emergency", "skills": {"gas": 1}},
        ],
        "agents": [
            {"id": "m1", "name": "Mia Meter", "skills": {"metering": 50}, "logged_in": True},
            {"id": "m2", "name": "Max Meter", "skills": {"metering": 50}},
            {"id": "g1", "name": "Gus Gas", "skills": {"gas": 50}, "logged_in": True},
        ],
        "ivr": {
            "numbers": ["100", METER_NUMBER, OUTAGE_NUMBER],
            "menu": {"choices": {"1": "metering"}, "timeout": 0.05, "retries": 1},
        },
        "scripts": {
            "queues": {"metering": SCRIPT},
            "phone": {METER_NUMBER: SCRIPT, OUTAGE_NUMBER: "outage-report"},
            "public": [SCRIPT, "outage-report"],
            "phone_key_timeout": 0.3,
            "phone_retries": 1,
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    return raw


@dataclass
class ChannelServer:
    """A running server with its fake metering system."""

    server: Server
    metering: FakeMetering

    @property
    def url(self) -> str:
        """The web front's base URL."""
        return self.server.web.url

    @property
    def store(self) -> StorageRunStore:
        """The stored runs."""
        store = self.server.scripts.store
        assert isinstance(store, StorageRunStore)
        return store

    async def runs(self, **where: object) -> list[ScriptRunRecord]:
        """Stored run records matching `where` (attribute == value), oldest first."""
        return await self.server.storage.query(
            ScriptRunRecord, where=where, order_by=["started_at"]
        )

    async def stored(self, run_id: str) -> dict[str, Any]:
        """What a run stored, as the three channels must agree on it."""
        record = await self.store.record(run_id)
        assert record is not None
        actions = await self.store.actions(run_id)
        visits = await self.store.visits(run_id)
        return {
            "status": record.status,
            "disposition": record.disposition,
            "path": record.state["path"],
            "answers": record.state["answers"],
            "answered": [(v.step_id, v.answer) for v in visits if v.answered_at is not None],
            "actions": [(a.action, a.request, a.status, a.result) for a in actions],
        }


@pytest.fixture
def channel_server(tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[ChannelServer]]:
    """Start a server with scripts on every channel and the metering service registered."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[ChannelServer]:
        config = config_from_mapping(channel_site(tmp_path, **overrides))
        async with build_server(config) as server:
            metering = FakeMetering()
            server.services.interfaces.add(METERING_V1)
            server.services.register(METERING, metering)
            yield ChannelServer(server, metering)

    return factory


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until the async `check()` holds (polled every 20 ms), or fail."""
    for _ in range(int(timeout / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")
