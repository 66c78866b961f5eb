"""The agent desktop's script API: own runs only, bad input refused with a clear answer,
stepping back, and per-step analytics for supervisors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from commserver.telephony.sim import SimBackend, SimCaller
from monitor.accounts import Role
from tests.channels.conftest import OUTAGE_NUMBER, SCRIPT, ChannelServer, eventually
from tests.channels.test_three_channels import ANSWERS, desktop_contact
from tests.monitor.conftest import WebClient, add_user

Factory = Callable[..., AbstractAsyncContextManager[ChannelServer]]


def sim(server: ChannelServer) -> SimBackend:
    backend = server.server.backend
    assert isinstance(backend, SimBackend)
    return backend


async def started_run(server: ChannelServer, client: WebClient) -> tuple[str, dict[str, Any]]:
    """Sign in as agent m1, take a metering call, open its script: (run id, contact)."""
    await add_user(server.server, "mia", Role.AGENT, "m1")
    assert (await client.login("mia"))[0] == 200
    sim(server).place_call(SimCaller(caller="+4930555666", digits="1", talk_time=5.0))
    contact = await desktop_contact(client)
    status, body = await client.call("POST", f"/api/scripts/contacts/{contact['id']}")
    assert status == 200, body
    return str(body["run"]["id"]), contact


async def test_a_wrong_answer_type_is_a_400_with_a_message_and_the_run_stays(
    channel_server: Factory,
) -> None:
    async with channel_server() as server, WebClient(server.url) as client:
        run_id, _ = await started_run(server, client)
        status, body = await client.call(
            "POST", f"/api/scripts/runs/{run_id}/answer", {"step": "ask_account", "value": "abc"}
        )
        assert status == 400
        assert body["error"] == "invalid-answer"
        assert "'abc' is not a number" in body["message"]
        status, body = await client.call(
            "POST", f"/api/scripts/runs/{run_id}/answer", {"step": "ask_account", "value": [1]}
        )
        assert (status, body["error"]) == (400, "invalid-request")
        status, body = await client.call(
            "POST", f"/api/scripts/runs/{run_id}/answer", {"step": "ask_account", "value": "12"}
        )
        assert (status, body["error"]) == (400, "invalid-answer")
        assert "at least 100000" in body["message"]
        # A stale step (a double submit) is a conflict, not a bad request.
        status, body = await client.call(
            "POST", f"/api/scripts/runs/{run_id}/answer", {"step": "reading", "value": "1"}
        )
        assert (status, body["error"]) == (409, "not-current-step")
        status, body = await client.call("GET", f"/api/scripts/runs/{run_id}")
        assert (status, body["view"]["step"]) == (200, "ask_account")


async def test_an_unknown_run_is_a_404_and_others_runs_do_not_exist_for_an_agent(
    channel_server: Factory,
) -> None:
    async with channel_server() as server, WebClient(server.url) as client:
        run_id, contact = await started_run(server, client)
        status, body = await client.call("GET", "/api/scripts/runs/0123456789abcdef")
        assert (status, body["error"]) == (404, "no-such-script-run")

        await add_user(server.server, "max", Role.AGENT, "m2")
        await add_user(server.server, "sue", Role.SUPERVISOR)
        async with WebClient(server.url) as other, WebClient(server.url) as boss:
            assert (await other.login("max"))[0] == 200
            status, body = await other.call("GET", f"/api/scripts/runs/{run_id}")
            assert (status, body["error"]) == (404, "no-such-script-run")
            status, body = await other.call(
                "POST", f"/api/scripts/runs/{run_id}/answer",
                {"step": "ask_account", "value": "4711001"},
            )
            assert status == 404
            status, body = await other.call("POST", f"/api/scripts/contacts/{contact['id']}")
            assert (status, body["error"]) == (403, "not-your-contact")
            # A supervisor reads any run, but answers only their own.
            assert (await boss.login("sue"))[0] == 200
            status, body = await boss.call("GET", f"/api/scripts/runs/{run_id}")
            assert (status, body["run"]["agent"]) == (200, "m1")
            status, body = await boss.call("POST", f"/api/scripts/runs/{run_id}/back")
            assert status == 404
        async with WebClient(server.url) as anonymous:
            status, body = await anonymous.call("GET", f"/api/scripts/runs/{run_id}")
            assert (status, body["error"]) == (401, "not-signed-in")
        # State changes need the session's CSRF token.
        status, body = await client.call(
            "POST", f"/api/scripts/runs/{run_id}/answer",
            {"step": "ask_account", "value": "4711001"}, csrf=False,
        )
        assert (status, body["error"]) == (403, "csrf-check-failed")


async def test_the_agent_steps_back_and_the_previous_answer_is_offered_again(
    channel_server: Factory,
) -> None:
    async with channel_server() as server, WebClient(server.url) as client:
        run_id, _ = await started_run(server, client)
        status, body = await client.call("POST", f"/api/scripts/runs/{run_id}/back")
        assert (status, body["error"]) == (409, "cannot-go-back")
        for step, value in ANSWERS[:2]:
            status, body = await client.call(
                "POST", f"/api/scripts/runs/{run_id}/answer", {"step": step, "value": value}
            )
            assert status == 200, body
        assert body["view"]["step"] == "reading"
        assert body["view"]["hint"] == "The last reading was 1000."  # agents see hints
        status, body = await client.call("POST", f"/api/scripts/runs/{run_id}/back")
        assert status == 200, body
        assert (body["view"]["step"], body["view"]["prefill"]) == ("meter_kind", "gas")


async def test_a_contact_of_a_queue_without_a_script_gets_a_404(channel_server: Factory) -> None:
    async with channel_server() as server, WebClient(server.url) as client:
        await add_user(server.server, "gus", Role.AGENT, "g1")
        assert (await client.login("gus"))[0] == 200
        # The outage script on the phone sends a gas smell to the gas-emergency queue.
        sim(server).place_call(SimCaller(caller="+4930777", dialed=OUTAGE_NUMBER, digits="2",
                                         talk_time=5.0))
        contact = await desktop_contact(client)
        assert contact["queue"] == "gas-emergency"
        status, body = await client.call("POST", f"/api/scripts/contacts/{contact['id']}")
        assert (status, body["error"]) == (404, "no-script-for-queue")


async def test_supervisors_read_per_step_analytics(channel_server: Factory) -> None:
    async with channel_server() as server, WebClient(server.url) as client:
        run_id, _ = await started_run(server, client)
        for step, value in ANSWERS[:3]:
            status, body = await client.call(
                "POST", f"/api/scripts/runs/{run_id}/answer", {"step": step, "value": value}
            )
            assert status == 200, body
        status, body = await client.call("GET", f"/api/scripts/{SCRIPT}/stats")
        assert (status, body["error"]) == (403, "forbidden")

        await add_user(server.server, "sue", Role.SUPERVISOR)
        async with WebClient(server.url) as boss:
            assert (await boss.login("sue"))[0] == 200
            status, body = await boss.call("GET", f"/api/scripts/{SCRIPT}/stats")
            assert status == 200, body
            steps = {s["step_id"]: s for s in body["steps"]}
            assert steps["ask_account"]["reached"] == 1
            assert steps["ask_account"]["answered"] == 1
            assert steps["ask_account"]["title"] == "Account number"
            assert steps["reading_date"]["waiting"] == 1  # the run is open there
            assert steps["reading_date"]["answered"] == 0
            assert "recorded" not in steps
            status, body = await boss.call("GET", "/api/scripts/no-such-script/stats")
            assert (status, body["error"]) == (404, "no-such-dialog-script")
            status, body = await boss.call("GET", f"/api/scripts/{SCRIPT}/stats?since=yesterday")
            assert (status, body["error"]) == (400, "invalid-request")
            status, body = await boss.call("GET", "/api/scripts")
            listed = {s["id"]: s for s in body["scripts"]}
            assert listed[SCRIPT]["queues"] == ["metering"]
            assert listed[SCRIPT]["public"] is True
            assert listed["billing-complaint"]["public"] is False


async def test_asking_twice_at_once_starts_one_run_for_a_contact(channel_server: Factory) -> None:
    async with channel_server() as server, WebClient(server.url) as client:
        await add_user(server.server, "mia", Role.AGENT, "m1")
        assert (await client.login("mia"))[0] == 200
        sim(server).place_call(SimCaller(caller="+4930999", digits="1", talk_time=5.0))
        contact = await desktop_contact(client)
        path = f"/api/scripts/contacts/{contact['id']}"
        answers = await asyncio.gather(*(client.call("POST", path) for _ in range(4)))
        assert {status for status, _ in answers} == {200}
        assert len({body["run"]["id"] for _, body in answers}) == 1

        async def one_stored() -> bool:
            return len(await server.runs(contact=contact["id"])) == 1

        await eventually(one_stored)
