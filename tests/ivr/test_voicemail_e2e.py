"""Voicemail through a whole server on the `sim` backend: the call, the stored message, the
e-mail (a real aiosmtpd server), and unheard messages becoming callbacks the ACD routes to an
agent — withdrawn when someone hears the message, routed again after a restart."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from commserver.agents import AgentState
from commserver.app import Server, build_server
from commserver.config import config_from_mapping
from commserver.contacts import CallRecord, ContactState
from commserver.contacts.events import CallRecordStored, ContactStateChanged
from commserver.events import Subscription
from commserver.keys import VOICEMAIL
from commserver.telephony.sim import SimBackend, SimCaller
from ivr.voicemail import VoicemailMessage, VoicemailService
from tests.commserver.conftest import site
from tests.ivr.test_voicemail import Inbox, smtp_server, until

ServerFactory = Callable[..., Any]

SUPPORT_TO_VOICEMAIL: list[dict[str, Any]] = [
    {
        "name": "support",
        "skills": {"support": 1},
        "wrap_up": 0.05,
        "on_no_agents": {"action": "voicemail", "target": "support"},
    },
    {"name": "billing", "skills": {"billing": 1}, "wrap_up": 0.05},
]
# Nobody who serves support is logged in at the start: callers to support get voicemail.
AGENTS: list[dict[str, Any]] = [
    {"id": "s1", "skills": {"support": 50}, "extension": "2001"},
    {"id": "b1", "skills": {"billing": 50}, "logged_in": True, "extension": "2002"},
]


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    """A running mail server and what it received."""
    async with smtp_server(Inbox()) as box:
        yield box


@pytest.fixture
def make_server(tmp_path: Path, inbox: Inbox) -> ServerFactory:
    """A server whose support voicemail box is e-mailed to team@example.test via `inbox`."""

    @asynccontextmanager
    async def factory(
        voicemail: dict[str, Any] | None = None,
        agents: list[dict[str, Any]] = AGENTS,
        ivr: dict[str, Any] | None = None,
        queues: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[Server]:
        raw = site(
            tmp_path,
            queues=(queues or SUPPORT_TO_VOICEMAIL[:1]) + SUPPORT_TO_VOICEMAIL[1:],
            agents=agents,
            smtp={"host": "127.0.0.1", "port": inbox.port, "mail_from": "pbx@example.test"},
            voicemail={
                "email_retry": 0.2,
                "boxes": {"support": {"email": ["team@example.test"]}},
                **(voicemail or {}),
            },
        )
        if ivr is not None:
            raw["ivr"] = {**raw["ivr"], "hours": ivr}
        async with build_server(config_from_mapping(raw)) as server:
            yield server

    return factory


def sim(server: Server) -> SimBackend:
    assert isinstance(server.backend, SimBackend)
    return server.backend


def voicemail_of(server: Server) -> VoicemailService:
    return server.services.get(VOICEMAIL)


async def leave_message(server: Server, talk_time: float, caller: str) -> CallRecord:
    """A caller keys 1 for support, nobody is there, they talk into voicemail and hang up."""
    stored = server.bus.subscribe(CallRecordStored)
    sim(server).place_call(SimCaller(caller=caller, digits="1", talk_time=talk_time))
    event = await asyncio.wait_for(stored.get(), 10)
    stored.close()
    [record] = await server.storage.query(CallRecord, where={"contact_id": event.contact_id})
    return record


async def only_message(server: Server) -> VoicemailMessage:
    [message] = await voicemail_of(server).list("support")
    return message


async def next_state(
    states: Subscription[ContactStateChanged], contact_id: str, state: ContactState
) -> ContactStateChanged:
    async with asyncio.timeout(10):
        while True:
            event = await states.get()
            if event.contact_id == contact_id and event.new is state:
                return event


async def callback_queued(server: Server) -> str:
    async def queued() -> bool:
        return (await only_message(server)).callback_contact_id is not None

    await until(queued)
    contact_id = (await only_message(server)).callback_contact_id
    assert contact_id is not None
    return contact_id


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def test_a_caller_nobody_can_take_leaves_a_message_that_is_stored_and_mailed(
    make_server: ServerFactory, inbox: Inbox
) -> None:
    async with make_server() as server:
        record = await leave_message(server, talk_time=1.5, caller="+4930555001")
        message = await only_message(server)
        await inbox.wait_for(1)
        wav_path = voicemail_of(server).wav_path(message)
    assert record.outcome == "voicemail"
    assert message.contact_id == record.contact_id
    assert message.caller == "+4930555001"
    assert message.queue == "support"
    assert message.seconds == pytest.approx(1.5)
    assert wav_path.parent.name == "support"
    mail = inbox.message()
    assert inbox.envelopes[0].rcpt_tos == ["team@example.test"]
    assert mail["From"] == "pbx@example.test"
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert wav_seconds(attachment.get_content()) == pytest.approx(1.5, abs=0.01)


async def test_the_configured_maximum_length_cuts_a_long_message(
    make_server: ServerFactory,
) -> None:
    async with make_server({"max_seconds": 0.5}) as server:
        await leave_message(server, talk_time=3.0, caller="+4930555002")
        message = await only_message(server)
        wav = voicemail_of(server).wav_path(message).read_bytes()
    assert message.seconds == pytest.approx(0.5)
    assert wav_seconds(wav) == pytest.approx(0.5, abs=0.01)


async def test_an_unheard_message_becomes_a_callback_that_the_next_free_agent_takes(
    make_server: ServerFactory,
) -> None:
    async with make_server({"callback_after": 0.2, "callback_work_limit": 30.0}) as server:
        states = server.bus.subscribe(ContactStateChanged)
        stored = server.bus.subscribe(CallRecordStored)
        await leave_message(server, talk_time=0.3, caller="+4930555003")
        callback_id = await callback_queued(server)
        message = await only_message(server)
        # Queued with nobody to take it; an agent of the box's queue logs in and gets it.
        assert server.calls.contact(callback_id).state is ContactState.QUEUED
        server.calls.set_agent_state("s1", AgentState.READY)
        connected = await next_state(states, callback_id, ContactState.CONNECTED)
        contact = server.calls.contact(callback_id)
        busy = server.calls.agents["s1"].state
        assert server.calls.end_callback(callback_id)
        await next_state(states, callback_id, ContactState.ENDED)
        async with asyncio.timeout(10):
            while (await stored.get()).contact_id != callback_id:
                pass

        async def called_back() -> bool:
            return (await only_message(server)).called_back_at is not None

        await until(called_back)
        done = await only_message(server)
        [record] = await server.storage.query(CallRecord, where={"contact_id": callback_id})
    assert connected.agent_id == "s1"
    assert busy is AgentState.BUSY
    assert contact.caller == "+4930555003"
    assert contact.dialed == f"voicemail:{message.id}"
    assert contact.queue == "support"
    assert done.called_back_by == "s1"
    assert not done.heard  # calling back is not listening: the mark stays the listener's
    assert record.agent_id == "s1"
    assert record.outcome == "answered"
    assert record.queue == "support"


async def test_hearing_a_message_withdraws_its_callback_before_an_agent_has_it(
    make_server: ServerFactory,
) -> None:
    async with make_server({"callback_after": 0.2}) as server:
        states = server.bus.subscribe(ContactStateChanged)
        await leave_message(server, talk_time=0.3, caller="+4930555004")
        callback_id = await callback_queued(server)
        message = await only_message(server)
        await voicemail_of(server).mark_heard(message.id or 0, "b1")
        ended = await next_state(states, callback_id, ContactState.ENDED)

        async def released() -> bool:
            return (await only_message(server)).callback_contact_id is None

        await until(released)
        server.calls.set_agent_state("s1", AgentState.READY)
        await asyncio.sleep(0.5)  # the scan runs every 0.1 s: a heard message is never routed
        after = await only_message(server)
        s1 = server.calls.agents["s1"]
        [record] = await server.storage.query(CallRecord, where={"contact_id": callback_id})
    assert ended.agent_id is None
    assert after.heard_by == "b1"
    assert after.callback_contact_id is None
    assert after.called_back_at is None
    assert s1.state is AgentState.READY
    assert s1.contact_id is None
    assert record.outcome == "overflowed"
    assert record.agent_id is None


async def test_a_callback_waiting_at_shutdown_is_routed_again_after_a_restart(
    make_server: ServerFactory,
) -> None:
    policy = {"callback_after": 0.2, "callback_work_limit": 0.3}
    async with make_server(policy) as server:
        await leave_message(server, talk_time=0.3, caller="+4930555005")
        first = await callback_queued(server)
    agents = [{**AGENTS[0], "logged_in": True}, AGENTS[1]]
    async with make_server(policy, agents=agents) as server:
        states = server.bus.subscribe(ContactStateChanged)

        async def routed_again() -> bool:
            message = await only_message(server)
            return message.callback_contact_id not in (None, first)

        await until(routed_again)
        second = (await only_message(server)).callback_contact_id
        assert second is not None
        await next_state(states, second, ContactState.CONNECTED)

        # Nobody ends it: after the work limit the agent is released and it counts as done.
        async def called_back() -> bool:
            return (await only_message(server)).called_back_at is not None

        await until(called_back)
        done = await only_message(server)
    assert done.called_back_by == "s1"


async def test_no_callback_is_queued_while_the_queue_is_closed(
    make_server: ServerFactory,
) -> None:
    today = datetime.now(UTC).date()
    closed = {"holidays": [str(today), str(today + timedelta(days=1))]}
    queues = [{**SUPPORT_TO_VOICEMAIL[0], "on_closed": {"action": "voicemail"}}]
    async with make_server({"callback_after": 0.1}, ivr=closed, queues=queues) as server:
        await leave_message(server, talk_time=0.3, caller="+4930555006")
        await asyncio.sleep(0.6)  # several scans: each is refused while the queue is closed
        message = await only_message(server)
        records = await server.storage.query(CallRecord)
    assert message.callback_contact_id is None
    assert [r.outcome for r in records] == ["voicemail"]  # no callback contact came and went


async def test_voicemail_settings_are_checked_when_the_configuration_loads(
    tmp_path: Path,
) -> None:
    from commserver.errors import ConfigError

    cases: list[tuple[dict[str, Any], str]] = [
        ({"voicemail": {"boxes": {"../etc": {}}}}, "voicemail.boxes.../etc"),
        ({"voicemail": {"boxes": {"support": {"email": ["a@b.example"]}}}}, "email"),
        (
            {
                "smtp": {"host": "127.0.0.1"},
                "voicemail": {"boxes": {"support": {"email": ["a@b.example\r\nBcc: x@y.z"]}}},
            },
            "not a single valid e-mail address",
        ),
        ({"voicemail": {"boxes": {"x": {"agent": "nobody"}}}}, "voicemail.boxes.x.agent"),
        ({"voicemail": {"boxes": {"x": {"callback_queue": "sales"}}}}, "callback_queue"),
        ({"voicemail": {"max_seconds": 0}}, "voicemail.max_seconds"),
        ({"smtp": {"password": "secret"}}, "smtp.password"),
        (
            {
                "queues": [
                    {**SUPPORT_TO_VOICEMAIL[0], "on_no_agents": {"action": "voicemail",
                                                                  "target": "../../tmp"}},
                    SUPPORT_TO_VOICEMAIL[1],
                ]
            },
            "on_no_agents.target",
        ),
    ]
    for overrides, key in cases:
        with pytest.raises(ConfigError) as refused:
            config_from_mapping(site(tmp_path, **overrides))
        assert key in str(refused.value), overrides
        assert "secret" not in str(refused.value)
    config = config_from_mapping(
        site(tmp_path, smtp={"host": "mx", "username": "u", "password": "secret"})
    )
    assert "secret" not in repr(config)


