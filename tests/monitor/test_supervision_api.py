"""Listen / whisper / barge over HTTP: supervisor-only, CSRF-checked, the monitor snapshot shows
who is listened to, and every refusal has its status and code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from commserver.app import Server
from commserver.telephony.base import BackendCapability, SpyMode
from monitor.accounts import Role
from tests.commserver.test_supervision import QUICK, sim, talking
from tests.monitor.conftest import ServerFactory, WebClient, add_user

MakeClient = Callable[[Server], WebClient]


def agent_in(snapshot: dict[str, Any], agent_id: str) -> dict[str, Any]:
    agents: list[dict[str, Any]] = snapshot["agents"]
    [agent] = [a for a in agents if a["id"] == agent_id]
    return agent


async def test_a_supervisor_listens_with_their_agents_phone_and_the_monitor_shows_it(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**QUICK) as server, web_client(server) as sue:
        await add_user(server, "sue", Role.SUPERVISOR, agent_id="sb")
        await sue.login("sue")
        status, info = await sue.call("GET", "/api/supervision")
        assert status == 200
        assert info == {
            "modes": ["listen", "whisper", "barge"],
            "phone": {"extension": "2003", "external_number": None},
            "sessions": [],
        }
        await talking(server)

        status, body = await sue.call("POST", "/api/agents/b1/spy", {"mode": "listen"})
        assert status == 201, body
        session = body["session"]
        assert (session["agent_id"], session["supervisor"], session["mode"]) == (
            "b1", "sue", "listen"
        )
        [command] = sim(server).spies
        assert command.supervisor.extension == "2003"
        assert command.mode is SpyMode.LISTEN
        _, snapshot = await sue.call("GET", "/api/monitor")
        assert agent_in(snapshot, "b1")["spies"] == [session]
        assert agent_in(snapshot, "s1")["spies"] == []
        _, info = await sue.call("GET", "/api/supervision")
        assert info["sessions"] == [session]

        status, body = await sue.call("DELETE", f"/api/supervision/sessions/{session['id']}")
        assert (status, body["session"]["id"]) == (200, session["id"])
        _, snapshot = await sue.call("GET", "/api/monitor")
        assert agent_in(snapshot, "b1")["spies"] == []
        assert agent_in(snapshot, "b1")["state"] == "busy"  # the call goes on
        status, body = await sue.call("DELETE", f"/api/supervision/sessions/{session['id']}")
        assert (status, body["error"]) == (404, "no-such-spy-session")


async def test_a_supervisor_names_the_phone_to_ring(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**QUICK) as server, web_client(server) as sue:
        await add_user(server, "sue", Role.SUPERVISOR)
        await sue.login("sue")
        await talking(server)
        status, body = await sue.call(
            "POST", "/api/agents/b1/spy", {"mode": "whisper", "extension": "2009"}
        )
        assert status == 201, body
        status, body = await sue.call(
            "POST", "/api/agents/b1/spy", {"mode": "barge", "external_number": "+49 30 123456"}
        )
        assert status == 201, body
        assert [(s.supervisor.extension, s.supervisor.external_number, s.mode)
                for s in sim(server).spies] == [
            ("2009", None, SpyMode.WHISPER), (None, "+4930123456", SpyMode.BARGE)
        ]


async def test_a_supervisor_without_a_phone_gets_409_saying_what_to_do(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**QUICK) as server, web_client(server) as sue:
        await add_user(server, "sue", Role.SUPERVISOR)
        await sue.login("sue")
        _, info = await sue.call("GET", "/api/supervision")
        assert info["phone"] is None
        await talking(server)
        status, body = await sue.call("POST", "/api/agents/b1/spy", {"mode": "listen"})
        assert (status, body["error"]) == (409, "no-supervisor-phone")
        assert "enter your extension" in body["message"]
        assert "link your account" in body["message"]
        assert not sim(server).spies


async def test_spy_refusals_have_their_status_and_code(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**QUICK) as server, web_client(server) as sue:
        await add_user(server, "sue", Role.SUPERVISOR, agent_id="sb")
        await sue.login("sue")
        status, body = await sue.call("POST", "/api/agents/nobody/spy", {"mode": "listen"})
        assert (status, body["error"]) == (404, "no-such-agent")
        status, body = await sue.call("POST", "/api/agents/s1/spy", {"mode": "listen"})
        assert (status, body["error"]) == (409, "agent-not-on-call")
        await talking(server)
        sim(server).unanswering.add("sb")
        status, body = await sue.call("POST", "/api/agents/b1/spy", {"mode": "listen"})
        assert (status, body["error"]) == (409, "spy-failed")
        status, body = await sue.call(
            "POST", "/api/agents/b1/spy", {"mode": "listen", "external_number": "+1900x"}
        )
        assert (status, body["error"]) == (400, "invalid-phone-number")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "mode"),
        ({"mode": "eavesdrop"}, "mode"),
        ({"mode": 1}, "mode"),
        ({"mode": "listen", "extension": "2009", "external_number": "+4930123"}, "extension"),
        ({"mode": "listen", "extension": "<b>20</b>"}, "extension"),
        ({"mode": "listen", "extension": 2009}, "extension"),
        ({"mode": "listen", "external_number": "1" * 41}, "external_number"),
    ],
)
async def test_a_malformed_spy_request_is_a_400_naming_the_field(
    make_server: ServerFactory, web_client: MakeClient, body: dict[str, Any], field: str
) -> None:
    async with make_server(**QUICK) as server, web_client(server) as sue:
        await add_user(server, "sue", Role.SUPERVISOR, agent_id="sb")
        await sue.login("sue")
        status, answer = await sue.call("POST", "/api/agents/b1/spy", body)
    assert (status, answer["error"], answer["details"].get("field")) == (
        400, "invalid-request", field
    )


async def test_a_backend_without_listen_answers_409_and_offers_no_modes(
    make_server: ServerFactory, web_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_server(**QUICK) as server, web_client(server) as sue:
        monkeypatch.setattr(sim(server), "capabilities", frozenset({BackendCapability.RECORD}))
        await add_user(server, "sue", Role.SUPERVISOR, agent_id="sb")
        await sue.login("sue")
        _, info = await sue.call("GET", "/api/supervision")
        assert info["modes"] == []
        await talking(server)
        status, body = await sue.call("POST", "/api/agents/b1/spy", {"mode": "listen"})
        assert (status, body["error"]) == (409, "not-supported-by-backend")
        assert not sim(server).spies


async def test_an_agent_may_not_listen_and_nobody_without_the_csrf_token(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with (
        make_server(**QUICK) as server, web_client(server) as ann, web_client(server) as sue
    ):
        await add_user(server, "ann", Role.AGENT, agent_id="s1")
        await add_user(server, "sue", Role.SUPERVISOR, agent_id="sb")
        await ann.login("ann")
        await sue.login("sue")
        await talking(server)
        assert (await ann.call("GET", "/api/supervision"))[0] == 403
        assert (await ann.call("POST", "/api/agents/b1/spy", {"mode": "listen"}))[0] == 403
        status, body = await sue.call(
            "POST", "/api/agents/b1/spy", {"mode": "listen"}, csrf=False
        )
        assert (status, body["error"]) == (403, "csrf-check-failed")
        status, body = await sue.call("POST", "/api/agents/b1/spy", {"mode": "listen"})
        assert status == 201
        session_id = body["session"]["id"]
        assert (await ann.call("DELETE", f"/api/supervision/sessions/{session_id}"))[0] == 403
        assert [s.id for s in server.calls.supervision.sessions] == [session_id]
