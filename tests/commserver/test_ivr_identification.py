"""The IVR identifies callers through the customer directory (number, or a keyed customer
number) and tells queued callers their position and estimated wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from commserver.agents import AgentState
from commserver.app import Server
from commserver.contacts import CallRecord
from commserver.contacts.events import CallRecordStored
from commserver.telephony.sim import SimBackend, SimCaller
from storage.examples import CUSTOMERS_MODEL, seed_legacy_customers
from tests.commserver.conftest import ServerFactory

LegacySite = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture
def legacy_site(make_server: ServerFactory, tmp_path: Path) -> LegacySite:
    """A site whose customer directory is the seeded legacy table KUNDEN_STAMM."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Server]:
        url = f"sqlite+aiosqlite:///{tmp_path / 'caruso.db'}"
        await seed_legacy_customers(url)
        async with make_server(
            storage={"url": url, "models": [str(CUSTOMERS_MODEL)]},
            services={"customer_directory": "legacy"},
            **overrides,
        ) as server:
            yield server

    return factory


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


async def one_call(server: Server, caller: SimCaller) -> CallRecord:
    stored = server.bus.subscribe(CallRecordStored)
    sim(server).place_call(caller)
    await asyncio.wait_for(stored.get(), 10)
    [record] = await server.storage.query(CallRecord)
    return record


async def test_a_known_caller_number_identifies_the_customer(legacy_site: LegacySite) -> None:
    async with legacy_site() as server:
        record = await one_call(server, SimCaller(caller="+4930123451", digits="1"))
    assert record.customer_id == "10002"


async def test_an_unknown_caller_can_key_their_customer_number(legacy_site: LegacySite) -> None:
    async with legacy_site(ivr={"ask_customer_number": True}) as server:
        record = await one_call(server, SimCaller(caller="+1555000", digits="10009#1"))
        said = [text for _, text in sim(server).prompts]
    assert record.customer_id == "10009"
    assert record.queue == "support"
    assert any("customer number" in text for text in said)


async def test_a_wrong_customer_number_is_said_and_the_caller_goes_on_unknown(
    legacy_site: LegacySite,
) -> None:
    async with legacy_site(ivr={"ask_customer_number": True}) as server:
        record = await one_call(server, SimCaller(caller="+1555000", digits="42#42#1"))
        said = [text for _, text in sim(server).prompts]
    assert record.customer_id is None
    assert record.queue == "support"
    assert sum("could not find" in text for text in said) == 2


async def test_without_a_directory_callers_are_simply_unknown(make_server: ServerFactory) -> None:
    async with make_server() as server:
        record = await one_call(server, SimCaller(caller="+4930123451", digits="1"))
    assert record.customer_id is None
    assert record.outcome == "answered"


async def test_a_waiting_caller_hears_position_and_estimated_wait(
    make_server: ServerFactory,
) -> None:
    async with make_server(ivr={"announce_every": 0.05}) as server:
        server.calls.set_agent_state("s1", AgentState.PAUSED, "meeting")
        sim(server).place_call(SimCaller(digits="1", patience=0.4))
        stored = server.bus.subscribe(CallRecordStored)
        await asyncio.wait_for(stored.get(), 10)
        said = [text for _, text in sim(server).prompts]
    announcements = [text for text in said if text.startswith("You are number 1 in the queue")]
    assert len(announcements) >= 2
