"""Sign-in, sessions, CSRF, throttling and role checks over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web

from commserver.agents import AgentState
from commserver.app import Server
from monitor.accounts import Role
from monitor.auth import ACCESS, Access, check_every_route_guarded
from tests.monitor.conftest import PASSWORD, ServerFactory, WebClient, add_user

MakeClient = Callable[[Server], WebClient]


async def test_signing_in_sets_an_httponly_samesite_strict_session_cookie(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        await browser.session()
        async with browser.http.post(
            f"{server.web.url}/api/login", json={"name": "Sue", "password": PASSWORD},
            headers={"X-CSRF-Token": browser.csrf},
        ) as response:
            assert response.status == 200
            body = await response.json()
            cookie = response.cookies["caruso_session"]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/"
        assert body["user"] == {"name": "sue", "role": "supervisor", "agent_id": None,
                                "home": "/monitor"}
        browser.csrf = body["csrf_token"]
        status, session = await browser.call("GET", "/api/session")
    assert status == 200
    assert session["authenticated"] is True
    assert session["csrf_token"] == body["csrf_token"]


async def test_a_wrong_password_or_unknown_user_is_one_401_that_says_nothing_more(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        wrong = await browser.login("sue", "not the password")
        unknown = await browser.login("nobody", PASSWORD)
        status, _ = await browser.call("GET", "/api/monitor")
    assert wrong == unknown == (401, {"error": "invalid-credentials",
                                      "message": "wrong user name or password", "details": {}})
    assert status == 401


async def test_a_name_is_throttled_after_five_failures_even_with_the_right_password(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        statuses = [(await browser.login("sue", f"guess {i}"))[0] for i in range(5)]
        await browser.session()
        async with browser.http.post(
            f"{server.web.url}/api/login", json={"name": "sue", "password": PASSWORD},
            headers={"X-CSRF-Token": browser.csrf},
        ) as response:
            status = response.status
            retry_after = int(response.headers["Retry-After"])
            body = await response.json()
        other_status, _ = await browser.login("nobody-else", "whatever it is")
    assert statuses == [401] * 5
    assert status == 429
    assert body["error"] == "login-throttled"
    assert 800 < retry_after <= 900
    assert other_status == 401  # other names from the same address are not locked yet


async def test_sign_in_without_the_csrf_token_is_refused(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        await browser.session()
        missing = await browser.call("POST", "/api/login", {"name": "sue", "password": PASSWORD},
                                     csrf=False)
        forged = await browser.call("POST", "/api/login", {"name": "sue", "password": PASSWORD},
                                    headers={"X-CSRF-Token": "forged"})
        status, _ = await browser.call("GET", "/api/monitor")
    assert missing[0] == forged[0] == 403
    assert missing[1]["error"] == "csrf-check-failed"
    assert status == 401


async def test_state_changes_without_the_sessions_csrf_token_or_from_another_site_are_refused(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        await browser.login("sue")
        body = {"state": "paused", "reason": "Break"}
        missing = await browser.call("POST", "/api/agents/s1/state", body, csrf=False)
        wrong = await browser.call("POST", "/api/agents/s1/state", body,
                                   headers={"X-CSRF-Token": "not-it"})
        cross = await browser.call("POST", "/api/agents/s1/state", body,
                                   headers={"Origin": "https://evil.example"})
        cross_fetch = await browser.call("POST", "/api/agents/s1/state", body,
                                         headers={"Sec-Fetch-Site": "cross-site"})
        state_after_refusals = server.calls.agents["s1"].state
        ok = await browser.call("POST", "/api/agents/s1/state", body,
                                headers={"Origin": server.web.url})
    assert [r[0] for r in (missing, wrong, cross, cross_fetch)] == [403] * 4
    assert {r[1]["error"] for r in (missing, wrong, cross, cross_fetch)} == {"csrf-check-failed"}
    assert state_after_refusals is AgentState.READY
    assert ok[0] == 200
    assert server.calls.agents["s1"].state is AgentState.PAUSED


#: Each guarded route and the roles that may call it (anonymous callers never may).
ROUTE_ROLES = [
    ("GET", "/api/monitor", {"supervisor", "admin"}),
    ("GET", "/api/monitor/events", {"supervisor", "admin"}),
    ("POST", "/api/agents/sb/state", {"supervisor", "admin"}),
    ("GET", "/api/calls", {"supervisor", "admin"}),
    ("GET", "/api/users", {"admin"}),
    ("POST", "/api/users", {"admin"}),
    ("GET", "/api/services", {"admin"}),
    ("GET", "/api/desktop", {"agent", "supervisor", "admin"}),
    ("GET", "/api/desktop/events", {"agent", "supervisor", "admin"}),
    ("POST", "/api/desktop/state", {"agent", "supervisor", "admin"}),
    ("POST", "/api/logout", {"agent", "supervisor", "admin"}),
]


async def test_every_role_reaches_exactly_the_routes_it_may(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    bodies = {
        "/api/agents/sb/state": {"state": "logged-out"},
        "/api/desktop/state": {"state": "paused", "reason": "Break"},
    }
    async with make_server() as server:
        await add_user(server, "ann", Role.AGENT, "sb")
        await add_user(server, "sue", Role.SUPERVISOR, "s1")
        await add_user(server, "adm", Role.ADMIN, "b1")
        browsers = {"anonymous": web_client(server), "agent": web_client(server),
                    "supervisor": web_client(server), "admin": web_client(server)}
        await browsers["anonymous"].session()
        for role, name in (("agent", "ann"), ("supervisor", "sue"), ("admin", "adm")):
            await browsers[role].login(name)
        seen: dict[tuple[str, str, str], int] = {}
        try:
            for method, path, _ in ROUTE_ROLES:
                if path == "/api/logout":
                    continue  # last, below
                for role, browser in browsers.items():
                    body = bodies.get(path)
                    if path == "/api/users":
                        body = {"name": f"new-{role}", "password": PASSWORD, "role": "admin"}
                    async with browser.http.request(
                        method, f"{server.web.url}{path}", json=body,
                        headers={"X-CSRF-Token": browser.csrf},
                    ) as response:
                        seen[(method, path, role)] = response.status
            for role, browser in browsers.items():
                seen[("POST", "/api/logout", role)] = (await browser.call(
                    "POST", "/api/logout"))[0]
        finally:
            for browser in browsers.values():
                await browser.http.close()
    for method, path, allowed in ROUTE_ROLES:
        assert seen[(method, path, "anonymous")] == 401, (method, path)
        for role in ("agent", "supervisor", "admin"):
            expected = {200, 201} if role in allowed else {403}
            assert seen[(method, path, role)] in expected, (method, path, role, seen)


async def test_pages_redirect_to_sign_in_and_refuse_the_wrong_role(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "ann", Role.AGENT, "sb")
        root = await browser.call("GET", "/")
        login_page = await browser.call("GET", "/login")
        await browser.login("ann")
        agent_monitor = await browser.call("GET", "/monitor")
        agent_desktop = await browser.call("GET", "/desktop")
        agent_root = await browser.call("GET", "/")
        async with browser.http.get(f"{server.web.url}/static/common.js") as script:
            assert script.status == 200
            assert "textContent" in await script.text()
    assert root[0] == 302
    assert login_page[0] == 200
    assert agent_monitor[0] == 403
    assert agent_desktop[0] == 200
    assert "desktop.js" in agent_desktop[1]
    assert agent_root[0] == 302


async def test_an_anonymous_page_request_is_sent_to_sign_in_and_back(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        async with browser.http.get(f"{server.web.url}/monitor", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/login?next=/monitor"


async def test_every_answer_carries_a_strict_content_security_policy(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        for path in ("/login", "/api/health", "/static/caruso.css", "/api/nothing"):
            async with browser.http.get(f"{server.web.url}{path}") as response:
                csp = response.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp
                assert "frame-ancestors 'none'" in csp
                assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_signing_out_ends_the_session_and_a_new_sign_in_gets_a_new_id(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        await add_user(server, "sue", Role.SUPERVISOR)
        await browser.login("sue")
        first = next(c.value for c in browser.http.cookie_jar if c.key == "caruso_session")
        assert (await browser.call("POST", "/api/logout"))[0] == 200
        after = await browser.call("GET", "/api/monitor")
        browser.http.cookie_jar.update_cookies({"caruso_session": first})
        replayed = await browser.call("GET", "/api/monitor")
        await browser.login("sue")
        second = next(c.value for c in browser.http.cookie_jar if c.key == "caruso_session")
    assert after[0] == replayed[0] == 401
    assert second != first


async def test_remote_service_registration_keeps_its_bearer_token_check(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server, web_client(server) as browser:
        status, body = await browser.call("POST", "/api/services", {"name": "x"}, csrf=False)
    assert status == 403
    assert body["error"] == "remote-registration-disabled"


def test_an_application_with_an_unguarded_route_is_refused() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app[ACCESS] = {("GET", "/ok"): Access.PUBLIC}
    app.router.add_get("/ok", handler)
    check_every_route_guarded(app)
    app.router.add_post("/forgotten", handler)
    with pytest.raises(RuntimeError, match="POST /forgotten"):
        check_every_route_guarded(app)
