"""The REST edge: POST/GET/DELETE /api/services over a real aiohttp server."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.services_api import setup_service_routes
from service_manager import InterfaceRegistry, ServiceKind, ServiceManager
from service_manager.remote_server import service_app
from tests.service_manager.conftest import (
    LEDGER,
    LEDGER_V1,
    TOKEN,
    InMemoryLedger,
    RunningServer,
    ServeApp,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def caruso_api(
    serve_app: ServeApp, manager: ServiceManager, token: str | None = TOKEN
) -> RunningServer:
    app = web.Application()
    setup_service_routes(app, manager, registration_token=token)
    return await serve_app(app)


async def request(
    method: str, url: str, *, json: object = None, data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
        method, url, json=json, data=data, headers=headers
    ) as response:
        return response.status, await response.json()


@pytest.fixture
async def ledger_url(serve_app: ServeApp) -> str:
    return (await serve_app(service_app(LEDGER_V1, InMemoryLedger()))).url


async def test_register_list_call_and_delete_over_http(
    interfaces: InterfaceRegistry, serve_app: ServeApp, ledger_url: str
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        api = await caruso_api(serve_app, manager)
        body = {"name": "ledger", "interface": "ledger/1", "base_url": ledger_url + "/",
                "version": "2024.2"}
        status, answer = await request("POST", f"{api.url}/api/services", json=body,
                                       headers=AUTH)
        assert status == 201, answer
        assert answer["created"] is True
        assert answer["service"] | {"detail": ""} == {
            "name": "ledger", "interface": "ledger/1", "version": "2024.2", "kind": "remote",
            "status": "up", "in_flight": 0, "detail": "", "base_url": ledger_url,
        }
        assert await manager.get(LEDGER).balance("acme") == 100.0
        status, again = await request("POST", f"{api.url}/api/services", json=body,
                                      headers=AUTH)
        assert (status, again["created"]) == (200, False)

        status, listed = await request("GET", f"{api.url}/api/services?check=1")
        assert status == 200
        assert [(s["name"], s["status"]) for s in listed["services"]] == [("ledger", "up")]

        status, removed = await request("DELETE", f"{api.url}/api/services/ledger",
                                        headers=AUTH)
        assert (status, removed["removed"], removed["drained"]) == (200, "ledger", True)
        assert manager.list() == []
        status, missing = await request("DELETE", f"{api.url}/api/services/ledger",
                                        headers=AUTH)
        assert (status, missing["error"]) == (404, "no-such-service")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"interface": "ledger/1", "base_url": "http://127.0.0.1:9", "version": "1"},
         "name", "missing"),
        ({"name": "Ledger!", "interface": "ledger/1", "base_url": "http://127.0.0.1:9"},
         "name", "lowercase"),
        ({"name": "ledger", "interface": "ledger/1", "base_url": "ftp://127.0.0.1/x"},
         "base_url", "http:// or https://"),
        ({"name": "ledger", "interface": "ledger/1", "base_url": "http://u:pw@127.0.0.1:9"},
         "base_url", "credentials"),
        ({"name": "ledger", "interface": "ledger/1", "base_url": "http://127.0.0.1:9?x=1"},
         "base_url", "query"),
        ({"name": "ledger", "interface": "ledger/1", "base_url": "http://:80/"},
         "base_url", "host"),
        ({"name": "ledger", "interface": 1, "base_url": "http://127.0.0.1:9"},
         "interface", "string"),
        ({"name": "ledger", "interface": "ledger/1", "base_url": "http://127.0.0.1:9",
          "secret": "x"}, "secret", "unknown field"),
        ([1, 2], "body", "JSON object"),
    ],
)
async def test_bad_descriptors_get_400_naming_the_field(
    interfaces: InterfaceRegistry, serve_app: ServeApp, body: object, field: str, reason: str
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        api = await caruso_api(serve_app, manager)
        status, answer = await request("POST", f"{api.url}/api/services", json=body,
                                       headers=AUTH)
        assert status == 400
        assert answer["error"] == "invalid-service-descriptor"
        assert reason in answer["details"]["errors"][field]
        assert field in answer["message"]
        assert manager.list() == []


async def test_unknown_interface_malformed_json_and_oversize_bodies_get_4xx(
    interfaces: InterfaceRegistry, serve_app: ServeApp
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        api = await caruso_api(serve_app, manager)
        status, answer = await request(
            "POST", f"{api.url}/api/services", headers=AUTH,
            json={"name": "erp", "interface": "erp/3", "base_url": "http://127.0.0.1:9"},
        )
        assert (status, answer["error"]) == (400, "unknown-interface")
        assert "customer-directory/1" in answer["message"]
        status, answer = await request("POST", f"{api.url}/api/services", headers=AUTH,
                                       data=b"{not json")
        assert (status, answer["error"]) == (400, "invalid-json")
        status, answer = await request("POST", f"{api.url}/api/services", headers=AUTH,
                                       data=b"[" + b"1," * 20_000 + b"1]")
        assert (status, answer["error"]) == (413, "request-too-large")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
     {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong", "no-scheme", "basic"],
)
async def test_missing_or_wrong_token_gets_403(
    interfaces: InterfaceRegistry, serve_app: ServeApp, ledger_url: str,
    headers: dict[str, str],
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        api = await caruso_api(serve_app, manager)
        body = {"name": "ledger", "interface": "ledger/1", "base_url": ledger_url}
        status, answer = await request("POST", f"{api.url}/api/services", json=body,
                                       headers=headers)
        assert (status, answer["error"]) == (403, "forbidden")
        assert "Authorization: Bearer" in answer["message"]
        status, _ = await request("DELETE", f"{api.url}/api/services/ledger", headers=headers)
        assert status == 403
        assert manager.list() == []


async def test_without_a_configured_token_registration_is_refused_naming_the_key(
    interfaces: InterfaceRegistry, serve_app: ServeApp, ledger_url: str
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        api = await caruso_api(serve_app, manager, token=None)
        body = {"name": "ledger", "interface": "ledger/1", "base_url": ledger_url}
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            status, answer = await request("POST", f"{api.url}/api/services", json=body,
                                           headers=headers)
            assert (status, answer["error"]) == (403, "remote-registration-disabled")
            assert "services.registration_token" in answer["message"]
        assert manager.list() == []


async def test_local_services_cannot_be_shadowed_or_removed_over_http(
    interfaces: InterfaceRegistry, serve_app: ServeApp, ledger_url: str
) -> None:
    async with ServiceManager(interfaces=interfaces) as manager:
        manager.register(LEDGER, InMemoryLedger())
        api = await caruso_api(serve_app, manager)
        body = {"name": "ledger", "interface": "ledger/1", "base_url": ledger_url}
        status, answer = await request("POST", f"{api.url}/api/services", json=body,
                                       headers=AUTH)
        assert (status, answer["error"]) == (409, "duplicate-service")
        status, answer = await request("DELETE", f"{api.url}/api/services/ledger",
                                       headers=AUTH)
        assert (status, answer["error"]) == (409, "service-not-removable")
        assert manager.kind_of("ledger") is ServiceKind.LOCAL
