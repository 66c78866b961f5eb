"""The OpenAPI 3.1 document: built from the route table, every /api/ route in it with its
access rule, and schemathesis (signed in) finding no server error anywhere and answers that
match the documented schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    CheckFunction,
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from commserver.app import Server
from monitor.accounts import Role
from monitor.apidoc import Components
from monitor.auth import ACCESS
from monitor.floor import AgentView
from monitor.openapi import documented_path
from tests.monitor.conftest import ServerFactory, WebClient, add_user

MakeClient = Callable[[Server], WebClient]
#: Endless streams, and sign-out (it would end the session the fuzzing runs in).
NOT_FUZZED = {
    ("GET", "/api/monitor/events"), ("GET", "/api/desktop/events"), ("GET", "/api/events"),
    ("POST", "/api/logout"),
}
#: Routes that hash a password (64 MiB, tens of ms each) get few examples.
SLOW = {("POST", "/api/login"), ("POST", "/api/users")}
EXAMPLES = 10


async def test_every_api_route_is_in_the_document_with_its_access_rule(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as anonymous:
        status, doc = await anonymous.call("GET", "/api/openapi.json")
        routes = {
            (route.method, route.resource.canonical)
            for route in server.web.app.router.routes()
            if route.resource is not None and route.method != "HEAD"
            and documented_path(route.resource.canonical)
        }
        access = server.web.app[ACCESS]
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path) for path, item in doc["paths"].items() for method in item
    }
    assert documented == routes
    undocumented = sorted(
        f"{method.upper()} {path}" for path, item in doc["paths"].items()
        for method, op in item.items() if op.get("x-undocumented")
    )
    assert undocumented == []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["x-caruso-access"] == access[(method.upper(), path)].value
            assert op["summary"]
            assert op["responses"]
    assert len(routes) >= 40
    reports = doc["paths"]["/api/reports/queues"]["get"]
    assert reports["security"] == [{"session": []}]
    assert {p["name"] for p in reports["parameters"]} >= {"from", "to", "interval", "queue"}
    assert "text/csv" in reports["responses"]["200"]["content"]
    events = doc["paths"]["/api/events"]["get"]
    assert events["security"] == [{"apiToken": []}, {"session": []}]


def test_schemas_are_generated_from_the_dataclasses_the_handlers_serialize() -> None:
    components = Components()
    ref = components.schema_of(AgentView)
    agent = components.schemas["AgentView"]
    assert ref == {"$ref": "#/components/schemas/AgentView"}
    assert agent["required"] == list(agent["properties"])
    assert agent["properties"]["state"]["enum"] == [
        "logged-out", "ready", "reserved", "busy", "wrap-up", "paused"
    ]
    assert agent["properties"]["since"] == {"type": "string", "format": "date-time"}
    assert agent["properties"]["contact_id"] == {"type": ["string", "null"]}
    assert agent["properties"]["skills"] == {
        "type": "object", "additionalProperties": {"type": "integer"}
    }


def fuzz(document: dict[str, Any], base: str, cookies: dict[str, str], csrf: str) -> list[str]:
    """Run schemathesis over every operation; returns what failed (blocking: in a thread)."""
    schema = schemathesis.openapi.from_dict(document)
    http = requests.Session()
    # The cookie travels as a header: a case's own cookies would replace a session's jar.
    headers = {
        "X-CSRF-Token": csrf,
        "Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items()),
    }
    failures: list[str] = []
    statuses: dict[int, int] = {}
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails here
        key = (operation.method.upper(), operation.path)
        if key in NOT_FUZZED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks: list[CheckFunction] = [not_a_server_error]
            if mode is GenerationMode.POSITIVE:
                checks += [status_code_conformance, content_type_conformance,
                           response_schema_conformance]

            @settings(
                max_examples=3 if key in SLOW else EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case[Any]) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=base, session=http, headers=headers, timeout=10)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                case.validate_response(response, checks=checks, headers=headers)  # noqa: B023

            try:
                call()
            except Unsatisfiable:
                pass  # nothing in this operation can be made invalid (no parameters, no body)
            except Exception as failure:  # one operation's failure must not hide the others'
                failures.append(f"{key[0]} {key[1]} ({mode.value}): {failure}"[:2000])
    assert calls > 300, (calls, failures[:3])
    # Signed in, most answers are real answers: not a wall of 401s.
    assert statuses.get(200, 0) > calls // 4, statuses
    assert statuses.get(401, 0) < calls // 20, statuses
    return failures


async def test_schemathesis_finds_no_server_error_and_answers_match_the_document(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server:
        # An admin who is also an agent reaches every route: the desktop's and the admin's.
        await add_user(server, "root", Role.ADMIN, "sb")
        async with web_client(server) as root:
            await root.login("root")
            _, document = await root.call("GET", "/api/openapi.json")
            cookies = {
                cookie.key: cookie.value for cookie in root.http.cookie_jar
            }
            failures = await asyncio.to_thread(fuzz, document, server.web.url, cookies, root.csrf)
            # The session survived the whole run: nothing signed us out.
            status, _ = await root.call("GET", "/api/monitor")
    assert failures == []
    assert status == 200
