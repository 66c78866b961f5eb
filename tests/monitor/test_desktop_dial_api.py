"""The desktop's phone choice and click-to-dial over HTTP on a running sim server: the
happy path with the disposition on the outbound record, and every refusal (bad number 400,
toll-fraud pattern 400, not ready 409, one call at a time 409, no session / no CSRF)."""

from __future__ import annotations

from collections.abc import Callable

from commserver.agents import AgentState
from commserver.app import Server
from commserver.contacts import CallRecord
from commserver.telephony.sim import SimBackend, SimCustomer
from monitor.accounts import Role
from tests.monitor.conftest import ServerFactory, WebClient, add_user, eventually
from tests.monitor.test_browser import eventually_async

MakeClient = Callable[[Server], WebClient]
NARROW = {"backend": "sim", "ring_timeout": 5.0, "sim": {"answer_delay": 0.01},
          "outbound_number_pattern": r"^\+49[0-9]{6,12}$"}


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


async def agent_client(server: Server, make: MakeClient, agent_id: str = "s1") -> WebClient:
    await add_user(server, f"user-{agent_id}", Role.AGENT, agent_id)
    client = make(server)
    status, _ = await client.login(f"user-{agent_id}")
    assert status == 200
    return client


async def test_an_agent_dials_a_customer_wraps_up_and_the_record_is_outbound(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(telephony=NARROW) as server:
        sim(server).default_customer = SimCustomer(ring_seconds=0.05, talk_time=0.2)
        async with await agent_client(server, web_client) as client:
            status, body = await client.call("POST", "/api/desktop/dial",
                                             {"number": "+49 30 1234567"})
            assert status == 202, body
            contact_id = body["contact_id"]
            assert body["number"] == "+49301234567"
            status, view = await client.call("GET", "/api/desktop")
            assert view["agent"]["state"] == "busy"
            assert view["contact"]["id"] == contact_id
            assert view["contact"]["caller"] == "+49301234567"
            status, body = await client.call(
                "POST", "/api/desktop/wrap-up", {"contact_id": contact_id,
                                                 "disposition": "Sale made"})
            assert status == 200, body

            async def stored() -> list[CallRecord]:
                return await server.storage.query(CallRecord, where={"contact_id": contact_id})

            await eventually_async(
                stored, lambda rows: bool(rows) and rows[0].disposition == "Sale made"
            )
            [record] = await stored()
    assert record.direction == "outbound"
    assert record.outcome == "answered"
    assert record.agent_id == "s1"
    assert record.disposition == "Sale made"


async def test_dial_refuses_bad_numbers_the_pattern_and_agents_who_are_not_free(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(telephony=NARROW) as server:
        sim(server).default_customer = SimCustomer(ring_seconds=30)
        async with await agent_client(server, web_client) as client:
            for bad in ({"number": "abc"}, {"number": ""}, {"number": 4930123456}, {},
                        {"number": "9" * 60}):
                status, body = await client.call("POST", "/api/desktop/dial", bad)
                assert status == 400, (bad, body)
            status, body = await client.call("POST", "/api/desktop/dial",
                                             {"number": "+19005550000"})
            assert (status, body["error"]) == (400, "invalid-phone-number")
            server.calls.set_agent_state("s1", AgentState.LOGGED_OUT)
            status, body = await client.call("POST", "/api/desktop/dial",
                                             {"number": "+4930123456"})
            assert (status, body["error"]) == (409, "invalid-transition")
            server.calls.set_agent_state("s1", AgentState.READY)
            status, _ = await client.call("POST", "/api/desktop/dial", {"number": "+4930123456"})
            assert status == 202
            status, body = await client.call("POST", "/api/desktop/dial",
                                             {"number": "+4930999999"})
            assert (status, body["error"]) == (409, "invalid-transition")
            status, body = await client.call("PUT", "/api/desktop/phone", {"kind": "configured"})
            assert status == 409
            status, body = await client.call("POST", "/api/desktop/hangup")
            assert status == 200
            await eventually(lambda: server.calls.agents["s1"].state is AgentState.READY)
            status, body = await client.call("POST", "/api/desktop/hangup")
            assert status == 409
            # CSRF as every POST: without the token, nothing is dialled.
            status, _ = await client.call("POST", "/api/desktop/dial",
                                          {"number": "+4930123456"}, csrf=False)
            assert status == 403
        # No session: no dial.
        async with web_client(server) as anonymous:
            await anonymous.session()
            status, _ = await anonymous.call("POST", "/api/desktop/dial",
                                             {"number": "+4930123456"})
            assert status in (401, 403)
        await eventually_async(lambda: server.storage.query(CallRecord), lambda rows: bool(rows))
        records = await server.storage.query(CallRecord)
    assert [(r.caller, r.direction, r.agent_id) for r in records] == [
        ("+4930123456", "outbound", "s1")
    ]


async def test_an_agent_chooses_an_external_number_then_goes_back_to_the_configured_phone(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server() as server:
        async with await agent_client(server, web_client, "b1") as client:
            status, body = await client.call("GET", "/api/desktop/phone")
            assert status == 200
            assert body["phone"] == {"kind": "configured", "extension": "2002",
                                     "external_number": None}
            assert body["external_allowed"] is True
            assert body["dial_out"] is True
            status, body = await client.call(
                "PUT", "/api/desktop/phone", {"kind": "external", "external_number": "+44 20 7946"})
            assert status == 200, body
            assert body["phone"] == {"kind": "external", "extension": None,
                                     "external_number": "+44207946"}
            assert server.calls.agents["b1"].endpoint.external_number == "+44207946"
            for bad, code in (({"kind": "external", "external_number": "ring me"},
                               "invalid-phone-number"),
                              ({"kind": "extension", "extension": "9999"}, "unknown-extension"),
                              ({"kind": "extension", "extension": "2001"}, "invalid-transition"),
                              ({"kind": "desk"}, "invalid-request"),
                              ({"kind": "extension"}, "invalid-request")):
                status, body = await client.call("PUT", "/api/desktop/phone", bad)
                assert body["error"] == code, bad
                assert status == (409 if code == "invalid-transition" else 400)
            status, body = await client.call("PUT", "/api/desktop/phone",
                                             {"kind": "extension", "extension": "2003"})
            assert body["phone"]["kind"] == "extension"
            status, body = await client.call("PUT", "/api/desktop/phone", {"kind": "configured"})
            assert body["phone"]["extension"] == "2002"
