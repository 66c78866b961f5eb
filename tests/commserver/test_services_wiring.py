"""The composition root wires the customer directory: in-process over a legacy table, or a
remote process that registers itself over HTTP with the running server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from service_manager.examples.customer_directory import (
    CUSTOMER_DIRECTORY,
    CUSTOMER_DIRECTORY_V1,
    SAMPLE_CUSTOMERS,
    InMemoryCustomerDirectory,
)
from service_manager.remote_server import service_app
from storage.examples import CUSTOMERS_MODEL, seed_legacy_customers
from tests.commserver.conftest import ServerFactory


async def test_the_legacy_directory_serves_the_company_table(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'caruso.db'}"
    await seed_legacy_customers(url)
    async with make_server(
        storage={"url": url, "models": [str(CUSTOMERS_MODEL)]},
        services={"customer_directory": "legacy"},
    ) as server:
        directory = server.services.get(CUSTOMER_DIRECTORY)
        found = await directory.search("a", 100)
        health = {s.name: s for s in await server.services.health()}
    assert found, "the seeded legacy table has customers"
    assert health["customer-directory"].status.value == "up"


@pytest.fixture
async def remote_directory() -> AsyncIterator[str]:
    app = service_app(CUSTOMER_DIRECTORY_V1, InMemoryCustomerDirectory(list(SAMPLE_CUSTOMERS)))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_remote_directory_registers_over_http_and_answers_through_caruso(
    make_server: ServerFactory, remote_directory: str
) -> None:
    descriptor = {
        "name": "customer-directory",
        "interface": CUSTOMER_DIRECTORY_V1.id,
        "base_url": remote_directory,
        "version": "remote-1",
    }
    async with make_server(services={"registration_token": "s3cret"}) as server:
        async with aiohttp.ClientSession() as http:
            refused = await http.post(f"{server.web.url}/api/services", json=descriptor)
            accepted = await http.post(
                f"{server.web.url}/api/services",
                json=descriptor,
                headers={"Authorization": "Bearer s3cret"},
            )
            assert accepted.status in (200, 201), await accepted.text()
            async with http.get(f"{server.web.url}/api/health") as response:
                health = await response.json()
        first = SAMPLE_CUSTOMERS[0]
        found = await server.services.get(CUSTOMER_DIRECTORY).get(first.id)
    assert refused.status == 403
    assert found is not None
    assert found.name == first.name
    remote = next(s for s in health["services"] if s["name"] == "customer-directory")
    assert remote["kind"] == "remote"
    assert remote["status"] == "up"
