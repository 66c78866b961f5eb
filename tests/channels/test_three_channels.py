"""One dialog script, three channels: the agent desktop over HTTP with a simulated call, the
public self-service API, and the phone with a simulated caller keying digits. The same
answers must store the same run (path, answers, actions) on every channel."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from commserver.contacts import CallRecord
from commserver.telephony.sim import SimBackend, SimCaller
from monitor.accounts import Role
from tests.channels.conftest import (
    METER_NUMBER,
    READING_DAY,
    SCRIPT,
    ChannelServer,
    eventually,
)
from tests.monitor.conftest import WebClient, add_user

Factory = Callable[..., AbstractAsyncContextManager[ChannelServer]]

#: The answers every channel gives, in the order the script asks (step id, web/desktop value).
ANSWERS: list[tuple[str, object]] = [
    ("ask_account", "4711001"),
    ("meter_kind", "gas"),
    ("reading", "1500"),
    ("reading_date", READING_DAY.isoformat()),
    ("confirm", True),
]
#: The same answers keyed on a phone: number#, choice key, number#, DDMMYYYY, 1 = yes.
KEYS = "4711001#" + "2" + "1500#" + READING_DAY.strftime("%d%m%Y") + "1"
PATH = [
    "welcome", "ask_account", "meter_kind", "reading", "reading_date", "confirm",
    "send_receipt", "recorded",
]


def sim(server: ChannelServer) -> SimBackend:
    backend = server.server.backend
    assert isinstance(backend, SimBackend)
    return backend


async def desktop_contact(client: WebClient) -> dict[str, Any]:
    """Wait until the signed-in agent is connected to a contact; that contact."""
    found: dict[str, Any] = {}

    async def connected() -> bool:
        status, body = await client.call("GET", "/api/desktop")
        assert status == 200, body
        contact = body["contact"]
        if contact is not None and contact["state"] == "connected":
            found.update(contact)
            return True
        return False

    await eventually(connected)
    return found


async def run_on_desktop(server: ChannelServer) -> str:
    """An agent takes a call and answers the queue's script in the pane's API."""
    await add_user(server.server, "mia", Role.AGENT, "m1")
    async with WebClient(server.url) as client:
        assert (await client.login("mia"))[0] == 200
        sim(server).place_call(SimCaller(caller="+4930111222", digits="1", talk_time=5.0))
        contact = await desktop_contact(client)
        status, body = await client.call("POST", f"/api/scripts/contacts/{contact['id']}")
        assert status == 200, body
        run_id = body["run"]["id"]
        assert body["run"]["contact_id"] == contact["id"]
        assert body["run"]["agent"] == "m1"
        assert body["view"]["step"] == "ask_account"
        # Asking again (a reload) resumes the same run.
        status, again = await client.call("POST", f"/api/scripts/contacts/{contact['id']}")
        assert (status, again["run"]["id"]) == (200, run_id)
        for step, value in ANSWERS:
            status, body = await client.call(
                "POST", f"/api/scripts/runs/{run_id}/answer", {"step": step, "value": value}
            )
            assert status == 200, body
        assert body["run"]["status"] == "completed"
        assert body["view"]["disposition"] == "reading-recorded"
        # The pane shows what the last answer's actions did: the reading was submitted.
        assert [a["name"] for a in body["actions"]] == ["call-service metering.submit_reading"]
        assert body["actions"][0]["result"]["status"] == "ok"
    return str(run_id)


async def run_on_the_web(server: ChannelServer) -> str:
    """A visitor answers the public page's API (no sign-in; double-submit CSRF)."""
    async with WebClient(server.url) as visitor:
        await visitor.session()
        status, body = await visitor.call("POST", f"/api/self-service/{SCRIPT}/start")
        assert status == 200, body
        run_id = body["run"]["id"]
        for step, value in ANSWERS:
            status, body = await visitor.call(
                "POST", f"/api/self-service/{SCRIPT}/answer", {"step": step, "value": value}
            )
            assert status == 200, body
        assert body["run"]["status"] == "completed"
        # A reload shows the finished run from the cookie.
        status, state = await visitor.call("GET", f"/api/self-service/{SCRIPT}")
        assert (status, state["run"]["id"], state["run"]["status"]) == (200, run_id, "completed")
    return str(run_id)


async def run_on_the_phone(server: ChannelServer) -> str:
    """A simulated caller dials the script's number and keys the answers."""
    sim(server).place_call(SimCaller(caller="+4930333444", dialed=METER_NUMBER, digits=KEYS))
    found: list[str] = []

    async def completed() -> bool:
        runs = await server.runs(channel="phone", status="completed")
        found[:] = [r.id for r in runs]
        return bool(found)

    await eventually(completed)

    async def recorded() -> bool:
        return bool(await server.server.storage.query(CallRecord, where={"dialed": METER_NUMBER}))

    await eventually(recorded)  # the script said goodbye and the server hung up
    return found[0]


async def test_the_same_answers_store_the_same_run_on_desktop_web_and_phone(
    channel_server: Factory,
) -> None:
    async with channel_server() as server:
        desktop = await run_on_desktop(server)
        web = await run_on_the_web(server)
        phone = await run_on_the_phone(server)

        stored = {name: await server.stored(run_id) for name, run_id in
                  (("desktop", desktop), ("web", web), ("phone", phone))}
        assert stored["desktop"]["path"] == PATH
        assert stored["desktop"]["answers"] == {
            "ask_account": 4711001, "meter_kind": "gas", "reading": 1500,
            "reading_date": READING_DAY.isoformat(), "confirm": True,
        }
        assert [a[0] for a in stored["desktop"]["actions"]] == [
            "call-service metering.last_reading", "call-service metering.submit_reading",
        ]
        assert stored["web"] == stored["desktop"]
        assert stored["phone"] == stored["desktop"]

        records = {r.id: r for r in await server.runs(script_id=SCRIPT)}
        assert {records[run_id].channel for run_id in (desktop, web, phone)} == {
            "agent", "web", "phone",
        }
        # Desktop and phone runs are linked to their contact; the public page has none.
        calls = await server.server.storage.query(CallRecord, order_by=["arrived_at"])
        by_dialed = {c.dialed: c.contact_id for c in calls}
        assert records[phone].contact == by_dialed[METER_NUMBER]
        assert records[web].contact is None
        assert records[desktop].contact is not None
        assert records[desktop].agent == "m1"
        # The service was really called: twice per channel.
        assert [name for name, _ in server.metering.calls].count("submit_reading") == 3
