"""Listen / whisper / barge end to end on the asterisk backend: a supervisor asks over HTTP, the
server Originates their phone into ChanSpy on the agent's channel with the options of the mode
(`q` quiet, `E` leave with the spied channel; `w` whisper, `B` barge), Stop hangs it up, and a
caller's hang-up ends the session."""

from __future__ import annotations

import asyncio

import pytest

from commserver.supervision import SpyEnded, SpyEndReason
from monitor.accounts import Role
from tests.asterisk.conftest import ServerFactory
from tests.asterisk.fake_asterisk import FakeAsterisk, FakeChannel
from tests.asterisk.test_server import keys_at_the_menu, talking
from tests.monitor.conftest import WebClient, add_user


async def connected_call(fake: FakeAsterisk) -> tuple[FakeChannel, FakeChannel]:
    """A caller who keys 2 (billing) and is bridged with b1 (2002): caller, agent channels."""
    caller = fake.incoming_call(caller="+4930111", dialed="100")
    await keys_at_the_menu(fake, caller, "2")
    return caller, await talking(fake, caller)


@pytest.mark.parametrize(("mode", "options"), [("listen", "qE"), ("whisper", "qEw"),
                                                ("barge", "qEB")])
async def test_the_supervisors_phone_is_originated_into_chanspy_with_the_modes_options(
    make_server: ServerFactory, fake: FakeAsterisk, mode: str, options: str
) -> None:
    fake.phone("2009")  # the supervisor's desk phone
    async with make_server() as server, WebClient(server.web.url) as sue:
        await add_user(server, "sue", Role.SUPERVISOR)
        await sue.login("sue")
        _, info = await sue.call("GET", "/api/supervision")
        assert info["modes"] == ["listen", "whisper", "barge"]
        _, agent = await connected_call(fake)
        assert agent.device == "PJSIP/2002"

        status, body = await sue.call(
            "POST", "/api/agents/b1/spy", {"mode": mode, "extension": "2009"}
        )
        assert status == 201, body
        session_id = body["session"]["id"]
        spy = fake.channels[session_id]
        assert spy.device == "PJSIP/2009"
        assert (spy.application, spy.spying_on, spy.spy_options) == (
            "ChanSpy", agent.name, options
        )

        status, _ = await sue.call("DELETE", f"/api/supervision/sessions/{session_id}")
        assert status == 200
        await fake.wait_for(lambda: session_id not in fake.channels)
        assert agent.uniqueid in fake.channels  # the call goes on
        assert server.calls.supervision.sessions == []


async def test_the_session_ends_when_the_caller_hangs_up(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    fake.phone("2009")
    async with make_server() as server, WebClient(server.web.url) as sue:
        ended = server.bus.subscribe(SpyEnded)
        await add_user(server, "sue", Role.SUPERVISOR)
        await sue.login("sue")
        caller, _ = await connected_call(fake)
        status, body = await sue.call(
            "POST", "/api/agents/b1/spy", {"mode": "listen", "extension": "2009"}
        )
        assert status == 201, body
        session_id = body["session"]["id"]
        fake.hangup(caller)
        event = await asyncio.wait_for(ended.get(), 5)
        assert (event.session_id, event.reason) == (session_id, SpyEndReason.CALL_ENDED)
        await fake.wait_for(lambda: session_id not in fake.channels)


async def test_a_supervisors_phone_that_does_not_answer_is_a_409(
    make_server: ServerFactory, fake: FakeAsterisk
) -> None:
    fake.phone("2009", answer_after=None)
    async with make_server() as server, WebClient(server.web.url) as sue:
        await add_user(server, "sue", Role.SUPERVISOR)
        await sue.login("sue")
        await connected_call(fake)
        status, body = await sue.call(
            "POST", "/api/agents/b1/spy", {"mode": "barge", "extension": "2009"}
        )
        assert (status, body["error"]) == (409, "spy-failed")
        assert "did not answer" in body["message"]
        assert server.calls.supervision.sessions == []
