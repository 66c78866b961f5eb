"""The public self-service page's HTTP side: only public web scripts, CSRF, rate limits, and
nothing of anyone else's run (or of what services answered) ever reaches a visitor."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from http.cookies import SimpleCookie

import aiohttp
from yarl import URL

from monitor.scripts_api import LIMITS, RateLimit
from tests.channels.conftest import SCRIPT, ChannelServer
from tests.channels.test_desktop_pane_api import started_run
from tests.channels.test_three_channels import ANSWERS
from tests.monitor.conftest import WebClient

Factory = Callable[..., AbstractAsyncContextManager[ChannelServer]]
API = f"/api/self-service/{SCRIPT}"


async def page_status(server: ChannelServer, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}{path}") as response:
        return response.status, await response.text()


async def test_only_public_web_scripts_have_a_page_and_an_api(channel_server: Factory) -> None:
    async with channel_server() as server, WebClient(server.url) as visitor:
        status, html = await page_status(server, f"/self-service/{SCRIPT}")
        assert status == 200
        assert "selfservice.js" in html
        # billing-complaint is loaded and runs on the web, but is not marked public.
        for script_id in ("billing-complaint", "sales-greenline", "no-such-script"):
            status, _ = await page_status(server, f"/self-service/{script_id}")
            assert status == 404, script_id
            await visitor.session()
            status, body = await visitor.call("GET", f"/api/self-service/{script_id}")
            assert (status, body["error"]) == (404, "no-such-dialog-script")
            status, body = await visitor.call("POST", f"/api/self-service/{script_id}/start")
            assert (status, body["error"]) == (404, "no-such-dialog-script")
        status, body = await visitor.call("GET", API)
        assert status == 200
        assert body["script"] == {"id": SCRIPT, "title": "Meter reading"}
        assert body["run"] is None


async def test_bad_input_on_the_public_page_gets_a_clear_answer(channel_server: Factory) -> None:
    async with channel_server() as server, WebClient(server.url) as visitor:
        await visitor.session()
        status, body = await visitor.call(
            "POST", f"{API}/answer", {"step": "ask_account", "value": "4711001"}
        )
        assert (status, body["error"]) == (404, "no-such-script-run")
        assert "start the script first" in body["message"]
        status, body = await visitor.call("POST", f"{API}/start", csrf=False)
        assert (status, body["error"]) == (403, "csrf-check-failed")
        status, body = await visitor.call("POST", f"{API}/start")
        assert status == 200
        status, body = await visitor.call(
            "POST", f"{API}/answer", {"step": "ask_account", "value": "a lot"}
        )
        assert (status, body["error"]) == (400, "invalid-answer")
        assert "is not a number" in body["message"]
        status, body = await visitor.call(
            "POST", f"{API}/answer", {"step": "ask_account", "value": {"x": 1}}
        )
        assert (status, body["error"]) == (400, "invalid-request")
        status, body = await visitor.call(
            "POST", f"{API}/answer", {"step": "meter_kind", "value": "gas"}
        )
        assert (status, body["error"]) == (409, "not-current-step")
        async with visitor.http.post(
            f"{server.url}{API}/answer", data=b"{not json",
            headers={"X-CSRF-Token": visitor.csrf, "Content-Type": "application/json"},
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "invalid-request"


async def test_a_visitor_sees_no_hints_no_service_answers_and_no_one_elses_run(
    channel_server: Factory,
) -> None:
    async with channel_server() as server, WebClient(server.url) as visitor:
        await visitor.session()
        assert (await visitor.call("POST", f"{API}/start"))[0] == 200
        for step, value in ANSWERS[:2]:
            status, body = await visitor.call(
                "POST", f"{API}/answer", {"step": step, "value": value}
            )
            assert status == 200, body
        # The reading step has a hint with the account's last reading: never on the web.
        assert body["view"]["step"] == "reading"
        assert "hint" not in body["view"]
        assert "1000" not in str(body)
        assert "actions" not in body
        assert "agent" not in body["run"]
        assert "customer_id" not in body["run"]

        # An agent's run id in the visitor's cookie reaches nothing.
        async with WebClient(server.url) as agent:
            agent_run, _ = await started_run(server, agent)
        for cookie in visitor.http.cookie_jar:
            if cookie.key == "caruso_run":
                assert cookie["path"] == API
                assert cookie["httponly"]
        forged: SimpleCookie = SimpleCookie()
        forged["caruso_run"] = agent_run
        forged["caruso_run"]["path"] = API  # replaces the visitor's own run cookie
        visitor.http.cookie_jar.update_cookies(forged, response_url=URL(server.url))
        status, body = await visitor.call("GET", API)
        assert (status, body["run"]) == (200, None)
        status, body = await visitor.call(
            "POST", f"{API}/answer", {"step": "ask_account", "value": "4711001"}
        )
        assert (status, body["error"]) == (404, "no-such-script-run")
        # Nor does the desktop API without signing in.
        status, body = await visitor.call("GET", f"/api/scripts/runs/{agent_run}")
        assert status == 401


async def test_starting_over_abandons_the_old_run(channel_server: Factory) -> None:
    async with channel_server() as server, WebClient(server.url) as visitor:
        await visitor.session()
        status, first = await visitor.call("POST", f"{API}/start")
        assert status == 200
        status, second = await visitor.call("POST", f"{API}/start")
        assert status == 200
        assert first["run"]["id"] != second["run"]["id"]
        old = await server.store.record(first["run"]["id"])
        assert old is not None
        assert old.status == "abandoned"
        status, body = await visitor.call("GET", API)
        assert body["run"]["id"] == second["run"]["id"]


async def test_each_address_is_rate_limited(channel_server: Factory) -> None:
    async with channel_server() as server, WebClient(server.url) as visitor:
        limits = server.server.web.app[LIMITS]
        limits.starts.limit = 2
        await visitor.session()
        for _ in range(2):
            assert (await visitor.call("POST", f"{API}/start"))[0] == 200
        async with visitor.http.post(
            f"{server.url}{API}/start", headers={"X-CSRF-Token": visitor.csrf}
        ) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) > 0
            assert (await response.json())["error"] == "too-many-requests"
        # Other requests still pass until their own (wider) limit.
        assert (await visitor.call("GET", API))[0] == 200
        limits.requests.limit = 0
        status, body = await visitor.call("GET", API)
        assert (status, body["error"]) == (429, "too-many-requests")


def test_a_rate_limit_counts_hits_in_a_sliding_window() -> None:
    now = [0.0]
    limit = RateLimit(2, 10.0, clock=lambda: now[0])
    assert limit.hit("a") == 0
    assert limit.hit("a") == 0
    assert limit.hit("a") == 10.0
    assert limit.hit("b") == 0  # per key
    now[0] = 4.0
    assert limit.hit("a") == 6.0
    now[0] = 10.0
    assert limit.hit("a") == 0  # the first hit left the window
