"""The agent's work beyond taking calls, over HTTP on a running server: wrap-up with a
disposition stored on the call record, voicemail (the voicemail service's messages) with
playback and role checks, a voicemail callback ended with "Done", and a supervisor editing
an agent's skills live."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from commserver.agents import AgentState
from commserver.app import Server
from commserver.contacts import CallRecord
from commserver.keys import VOICEMAIL
from commserver.telephony.sim import SimBackend, SimCaller
from ivr.voicemail import VoicemailMessage
from monitor.accounts import Role
from tests.monitor.conftest import ServerFactory, WebClient, add_user, eventually

MakeClient = Callable[[Server], WebClient]
SITE: dict[str, Any] = {
    "queues": [
        {"name": "support", "skills": {"support": 1}, "wrap_up": 30.0},
        {"name": "billing", "skills": {"billing": 1}, "wrap_up": 0.05},
        {"name": "sales", "skills": {"sales": 1}, "on_no_agents": "voicemail"},
    ],
    "agents": [
        {"id": "s1", "skills": {"support": 50}, "logged_in": True},
        {"id": "s2", "skills": {"support": 50}},
        {"id": "v1", "skills": {"sales": 50}},
    ],
    "ivr": {"menu": {"choices": {"1": "support", "2": "billing", "3": "sales"},
                     "timeout": 0.05, "retries": 1}},
}


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


async def signed_in(server: Server, make: MakeClient, name: str, role: Role,
                    agent_id: str | None = None) -> WebClient:
    await add_user(server, name, role, agent_id)
    client = make(server)
    status, _ = await client.login(name)
    assert status == 200
    return client


async def record_with_disposition(server: Server, contact_id: str) -> CallRecord:
    """The contact's record once it is stored with a disposition (within 5 s)."""
    for _ in range(500):
        rows = await server.storage.query(CallRecord, where={"contact_id": contact_id})
        if rows and rows[0].disposition is not None:
            return rows[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no record with a disposition for {contact_id}")


async def stored_record(server: Server, contact_id: str) -> CallRecord:
    rows = await server.storage.query(CallRecord, where={"contact_id": contact_id})
    assert len(rows) == 1
    return rows[0]


async def test_a_disposition_picked_during_the_call_lands_on_its_record_and_done_ends_wrap_up(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**SITE) as server, await signed_in(
        server, web_client, "sam", Role.AGENT, "s1"
    ) as sam:
        sim(server).place_call(SimCaller(caller="+4930111", digits="1", talk_time=0.5))
        await eventually(lambda: server.calls.agents["s1"].state is AgentState.BUSY)
        contact_id = server.calls.agents["s1"].contact_id
        assert contact_id is not None
        during = await sam.call("POST", "/api/desktop/wrap-up",
                                {"contact_id": contact_id, "disposition": "  Follow-up   needed "})
        await eventually(lambda: server.calls.agents["s1"].state is AgentState.WRAP_UP)
        pending_applied = await record_with_disposition(server, contact_id)
        after = await sam.call("POST", "/api/desktop/wrap-up",
                               {"contact_id": contact_id, "disposition": "Resolved",
                                "done": True})
        record = await stored_record(server, contact_id)
    assert during[0] == 200
    assert during[1]["stored"] is False
    assert pending_applied.disposition == "Follow-up needed"
    assert after[0] == 200
    assert after[1]["stored"] is True
    assert after[1]["agent"]["state"] == "ready"  # done: the 30 s wrap-up ended at once
    assert record.disposition == "Resolved"


async def test_only_the_agent_who_had_the_contact_may_set_its_disposition(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**SITE) as server:
        sam = await signed_in(server, web_client, "sam", Role.AGENT, "s1")
        other = await signed_in(server, web_client, "tom", Role.AGENT, "s2")
        async with sam, other:
            sim(server).place_call(SimCaller(caller="+4930222", digits="1", talk_time=0.2))
            await eventually(lambda: server.calls.agents["s1"].state is AgentState.WRAP_UP)
            contact_id = server.calls.agents["s1"].contact_id
            stolen = await other.call("POST", "/api/desktop/wrap-up",
                                      {"contact_id": contact_id, "disposition": "Resolved"})
            unknown = await sam.call("POST", "/api/desktop/wrap-up",
                                     {"contact_id": "c999-nothing", "disposition": "Resolved"})
            bad = [
                await sam.call("POST", "/api/desktop/wrap-up", body)
                for body in ({"contact_id": contact_id, "disposition": ""},
                             {"contact_id": contact_id, "disposition": "x" * 65},
                             {"contact_id": contact_id, "disposition": 7},
                             {"contact_id": contact_id, "done": "yes"},
                             {"disposition": "Resolved"})
            ]
    assert stolen[0] == 404
    assert stolen[1]["error"] == "no-such-contact"
    assert unknown[0] == 404
    assert [status for status, _ in bad] == [400] * 5


@dataclass(frozen=True, slots=True)
class Caller:
    """What `VoicemailService.deposit` reads of the contact that left a message."""

    id: str
    caller: str
    customer_id: str | None = None
    queue: str | None = None


async def deposit(server: Server, box: str, contact_id: str, caller: str) -> VoicemailMessage:
    """A one-second message in `box`, stored by the voicemail service itself."""
    service = server.services.get(VOICEMAIL)
    folder = service.root / box
    folder.mkdir(parents=True, exist_ok=True)
    with wave.open(str(folder / f"{contact_id}.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 8000)
    await service.deposit(box, Caller(contact_id, caller), folder / f"{contact_id}.wav", 1.0)
    (message,) = [m for m in await service.list(box) if m.contact_id == contact_id]
    return message


async def test_voicemail_is_listed_played_and_marked_heard_within_ones_boxes(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    boxes = {"boxes": {"vic": {"agent": "v1"}, "s1": {}}}
    async with make_server(**SITE, voicemail=boxes) as server:
        service = server.services.get(VOICEMAIL)
        sim(server).place_call(SimCaller(caller="+4930333", digits="3", talk_time=0.3))
        await eventually(lambda: not server.calls.live_contacts and any(
            (service.root / "sales").glob("*.wav")))
        (sales,) = await service.list("sales")
        own = await deposit(server, "vic", "c9-own", "+4930999")
        # A box named like sam's agent id is not sam's: only `agent = ...` makes a box one's own.
        other = await deposit(server, "s1", "c9-other", "+4930888")
        sue = await signed_in(server, web_client, "sue", Role.SUPERVISOR)
        vic = await signed_in(server, web_client, "vic", Role.AGENT, "v1")  # has sales skills
        sam = await signed_in(server, web_client, "sam", Role.AGENT, "s1")  # does not
        async with sue, vic, sam:
            _, vics = await vic.call("GET", "/api/voicemail")
            _, second = await vic.call("GET", "/api/voicemail?limit=1&offset=1")
            _, sams = await sam.call("GET", "/api/voicemail")
            _, sues = await sue.call("GET", "/api/voicemail")
            async with vic.http.get(f"{vic.base}/api/voicemail/{sales.id}") as response:
                played = (response.status, response.content_type, await response.read())
            hidden = await sam.call("GET", f"/api/voicemail/{sales.id}")
            not_sams = await sam.call("GET", f"/api/voicemail/{other.id}")
            heard = await vic.call("POST", f"/api/voicemail/{sales.id}/heard")
            again = await sue.call("POST", f"/api/voicemail/{sales.id}/heard")
            stolen = await sam.call("POST", f"/api/voicemail/{own.id}/heard")
            _, unheard = await vic.call("GET", "/api/voicemail?unheard=true")
            _, report = await sue.call("GET", "/api/reports/voicemail")
            bad = [await vic.call("GET", f"/api/voicemail?{query}")
                   for query in ("limit=0", "limit=501", "offset=-1", "unheard=yes",
                                 "box=..%2Fetc")]
            # A row pointing outside the voicemail folder is refused like a missing message.
            await server.storage.update(replace(other, file="../caruso.db"))
            probes = [
                await sue.call("GET", path)
                for path in ("/api/voicemail/..%2F..%2Fcaruso.db", "/api/voicemail/0",
                             "/api/voicemail/1e3", "/api/voicemail/99999",
                             f"/api/voicemail/{other.id}", f"/api/voicemail/%20{own.id}")
            ]
        after = await service.get(sales.id or 0)
    assert [m["id"] for m in vics["messages"]] == [own.id, sales.id]  # newest first
    assert vics["boxes"] == ["sales", "vic"]
    assert (vics["total"], vics["unheard"]) == (2, 2)
    assert vics["messages"][1]["caller"] == "+4930333"
    assert vics["messages"][1]["seconds"] == 0.3
    assert [m["id"] for m in second["messages"]] == [sales.id]
    assert sams["messages"] == []
    assert sams["total"] == 0
    assert {m["box"] for m in sues["messages"]} == {"sales", "vic", "s1"}
    assert played[0] == 200
    assert played[1] == "audio/wav"
    assert played[2][:4] == b"RIFF"
    assert hidden[0] == 404
    assert hidden[1]["error"] == "no-such-voicemail-message"
    assert not_sams[0] == 404
    assert heard[0] == 200
    assert heard[1]["heard_by"] == "vic"
    assert again[1]["heard_by"] == "vic"  # the first listener is kept
    assert stolen[0] == 404
    assert after.heard_by == "vic"  # the service's own mark: one source of truth
    assert [m["id"] for m in unheard["messages"]] == [own.id]
    assert (unheard["total"], unheard["unheard"]) == (1, 1)
    assert {b["box"]: (b["messages"], b["unheard"]) for b in report["boxes"]} == {
        "sales": (1, 0), "vic": (1, 1), "s1": (1, 1)}
    assert [status for status, _ in bad] == [400] * 5
    assert [status for status, _ in probes] == [404] * 6


CALLBACKS: dict[str, Any] = {
    "callback_after": 0.2,
    "boxes": {"zed": {"callback_queue": "sales"}},
}


async def test_an_agent_on_a_voicemail_callback_hears_its_message_and_ends_it_with_done(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**SITE, voicemail=CALLBACKS) as server:
        service = server.services.get(VOICEMAIL)
        message = await deposit(server, "zed", "c9-zed", "+4930777")
        vic = await signed_in(server, web_client, "vic", Role.AGENT, "v1")
        sam = await signed_in(server, web_client, "sam", Role.AGENT, "s1")
        async with vic, sam:
            _, before = await vic.call("GET", "/api/desktop/callback")
            server.calls.set_agent_state("v1", AgentState.READY)
            await eventually(lambda: server.calls.agents["v1"].state is AgentState.BUSY)
            contact_id = server.calls.agents["v1"].contact_id
            _, on_it = await vic.call("GET", "/api/desktop/callback")
            _, listed = await vic.call("GET", "/api/voicemail")
            async with vic.http.get(f"{vic.base}/api/voicemail/{message.id}") as response:
                played = response.status
            _, sams = await sam.call("GET", "/api/desktop/callback")
            stolen = await sam.call("POST", "/api/desktop/callback/done",
                                    {"contact_id": contact_id})
            forged = await vic.call("POST", "/api/desktop/callback/done",
                                    {"contact_id": contact_id}, csrf=False)
            busy = server.calls.agents["v1"].state
            done = await vic.call("POST", "/api/desktop/callback/done",
                                  {"contact_id": contact_id})
            await eventually(lambda: server.calls.agents["v1"].state is not AgentState.BUSY)
            twice = await vic.call("POST", "/api/desktop/callback/done",
                                   {"contact_id": contact_id})
            for _ in range(500):
                if (await service.get(message.id or 0)).called_back_at is not None:
                    break
                await asyncio.sleep(0.01)
            stored = await service.get(message.id or 0)
    assert before == {"callback": None}
    assert on_it["callback"]["contact_id"] == contact_id
    assert on_it["callback"]["number"] == "+4930777"
    assert on_it["callback"]["message"]["id"] == message.id
    assert listed["messages"] == []  # box zed is not vic's...
    assert played == 200  # ...but the message they are calling back about is theirs to hear
    assert sams == {"callback": None}
    assert stolen[0] == 404
    assert forged[0] == 403
    assert busy is AgentState.BUSY  # neither the other agent nor a forged request ended it
    assert done == (200, {"contact_id": contact_id, "ended": True})
    assert twice[0] == 404
    assert stored.called_back_by == "v1"


async def test_a_supervisor_gives_an_agent_a_skill_and_a_waiting_caller_reaches_them(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**SITE) as server, await signed_in(
        server, web_client, "sue", Role.SUPERVISOR
    ) as sue:
        calls = server.calls
        sim(server).place_call(SimCaller(caller="+4930444", digits="2", patience=30.0,
                                         talk_time=0.2))
        await eventually(lambda: any(c.state.value == "queued" for c in calls.live_contacts))
        status, body = await sue.call("PUT", "/api/agents/s1/skills",
                                      {"skills": {"support": 50, "billing": 20}})
        await eventually(lambda: calls.agents["s1"].state in (AgentState.RESERVED,
                                                              AgentState.BUSY))
        bad = [
            await sue.call("PUT", "/api/agents/s1/skills", body)
            for body in ({"skills": {"billing": 0}}, {"skills": {"billing": 101}},
                         {"skills": {"bil ling": 5}}, {"skills": {"billing": "5"}},
                         {"skills": ["billing"]}, {})
        ]
        missing = await sue.call("PUT", "/api/agents/nobody/skills", {"skills": {}})
    assert status == 200
    assert body["agent"]["skills"] == {"support": 50, "billing": 20}
    assert calls.agents["s1"].skills == {"support": 50, "billing": 20}
    assert [s for s, _ in bad] == [400] * 6
    assert missing[0] == 404


async def test_agents_may_not_edit_skills(
    make_server: ServerFactory, web_client: MakeClient
) -> None:
    async with make_server(**SITE) as server, await signed_in(
        server, web_client, "sam", Role.AGENT, "s1"
    ) as sam:
        status, _body = await sam.call("PUT", "/api/agents/s1/skills", {"skills": {"x": 99}})
    assert status == 403
    assert server.calls.agents["s1"].skills == {"support": 50}
