"""The shipped example: the customer directory over a legacy table, and as a remote process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from monitor.services_api import setup_service_routes
from service_manager import (
    InterfaceRegistry,
    ServiceKind,
    ServiceManager,
    ServiceStatus,
    ServiceUnavailable,
)
from service_manager.examples.customer_directory import (
    CUSTOMER_DIRECTORY,
    LegacyCustomerDirectory,
    same_phone,
)
from storage import StorageManager
from tests.service_manager.conftest import TOKEN, ServeApp, open_storage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def legacy_storage(sqlite_url: str) -> AsyncIterator[StorageManager]:
    storage = await open_storage(sqlite_url)
    async with storage:
        yield storage


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("+49 30 123451", "030123451", True),
        ("0049-30-123451", "+4930123451", True),
        ("+4930123451", "+4930123450", False),
        ("123", "0123", True),
        ("4512", "30124512", False),  # short numbers never match a longer one's tail
        ("", "030", False),
    ],
)
def test_phone_numbers_match_whatever_their_formatting(a: str, b: str, same: bool) -> None:
    assert same_phone(a, b) is same


async def test_legacy_directory_reads_the_mapped_legacy_table(
    legacy_storage: StorageManager, interfaces: InterfaceRegistry
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(CUSTOMER_DIRECTORY, LegacyCustomerDirectory(legacy_storage),
                         version="legacy-1")
        directory = manager.get(CUSTOMER_DIRECTORY)
        anna = await directory.find_by_phone("+4930123451")
        assert anna is not None
        assert (anna.id, anna.name, anna.account) == (
            10002, "Anna Schmidt", "DE-10002")
        # The caller id of a national call, with spaces, still finds her; a neighbour does not.
        again = await directory.find_by_phone("030 123 451")
        assert again is not None
        assert again.id == 10002
        assert await directory.find_by_phone("+49 30 999999") is None
        bakery = await directory.get(10004)
        assert bakery is not None
        assert bakery.vip is True
        assert bakery.priority == 3
        assert await directory.get(1) is None
        hits = await directory.search("example.org", limit=3)
        assert [c.id for c in hits] == [10002, 10003, 10007]
        assert await directory.search("%") == []  # wildcards are not search text
        assert [c.id for c in await directory.search("DE-10009")] == [10009]
        (info,) = await manager.health()
        assert (info.status, info.detail) == (ServiceStatus.UP, "10 customers")
        found = await manager.call("customer-directory", "get", {"customer_id": 10006},
                                   timeout=2)
        assert isinstance(found, dict)
        assert found["name"] == "Hotel Seeblick"


async def _read_line(stream: asyncio.StreamReader, timeout: float) -> str:
    async with asyncio.timeout(timeout):
        return (await stream.readline()).decode().strip()


async def test_remote_directory_process_registers_serves_and_goes_down(
    interfaces: InterfaceRegistry, serve_app: ServeApp, sqlite_url: str
) -> None:
    storage = await open_storage(sqlite_url)
    async with storage, ServiceManager(
        interfaces=interfaces, storage=storage, health_timeout=0.5
    ) as manager:
        app = web.Application()
        setup_service_routes(app, manager, registration_token=TOKEN)
        caruso = await serve_app(app)
        env = {**os.environ, "CARUSO_SERVICE_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service_manager.examples.remote_directory",
            "--port", "0", "--caruso", caruso.url, "--version", "remote-7",
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            url = await _read_line(process.stdout, 20)
            assert url.startswith("http://127.0.0.1:")
            for _ in range(200):  # bounded wait for the registration to land
                if "customer-directory" in manager:
                    break
                await asyncio.sleep(0.05)
            (info,) = manager.list()
            assert (info.kind, info.base_url, info.version) == (
                ServiceKind.REMOTE, url, "remote-7")
            directory = manager.get(CUSTOMER_DIRECTORY)
            anna = await directory.find_by_phone("030 1234567")
            assert anna is not None
            assert anna.name == "Anna Schmidt"
            assert [c.id for c in await directory.search("example.org")] == [1001, 1002]
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            async with asyncio.timeout(10):
                returncode = await process.wait()
        assert returncode == 0
        with pytest.raises(ServiceUnavailable, match=url):
            await manager.call("customer-directory", "get", {"customer_id": 1001}, timeout=5)
        (down,) = await manager.health()
        assert down.status is ServiceStatus.DOWN


async def test_remote_directory_process_reports_a_refused_registration(
    interfaces: InterfaceRegistry, serve_app: ServeApp
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        app = web.Application()
        setup_service_routes(app, manager, registration_token=TOKEN)
        caruso = await serve_app(app)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service_manager.examples.remote_directory",
            "--caruso", caruso.url, "--token", "not-the-token",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(20):
            stdout, stderr = await process.communicate()
        assert process.returncode == 3
        assert b"refused the registration: HTTP 403" in stderr
        assert stdout.decode().startswith("http://127.0.0.1:")
        assert manager.list() == []
