"""Outside business hours callers are told so (or served by their queue's on_closed action)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from commserver.app import Server
from commserver.contacts import CallRecord
from commserver.contacts.events import CallRecordStored
from commserver.telephony.sim import SimBackend, SimCaller
from tests.commserver.conftest import ServerFactory

TODAY = datetime.now(UTC).date()
CLOSED_TODAY = {"hours": {"holidays": [TODAY.isoformat(), (TODAY + timedelta(1)).isoformat()]}}


async def one_call(server: Server) -> tuple[CallRecord, list[str]]:
    assert isinstance(server.backend, SimBackend)
    stored = server.bus.subscribe(CallRecordStored)
    server.backend.place_call(SimCaller(digits="1", talk_time=0.05))
    await asyncio.wait_for(stored.get(), 10)
    [record] = await server.storage.query(CallRecord)
    return record, [text for _, text in server.backend.prompts]


async def test_on_a_holiday_callers_hear_the_closed_prompt(make_server: ServerFactory) -> None:
    async with make_server(ivr=CLOSED_TODAY) as server:
        record, said = await one_call(server)
    assert record.outcome == "overflowed"
    assert record.agent_id is None
    assert said[-1].startswith("We are closed right now")


async def test_a_queue_with_on_closed_voicemail_takes_messages_out_of_hours(
    make_server: ServerFactory,
) -> None:
    queues: list[dict[str, Any]] = [
        {"name": "support", "skills": {"support": 1}, "on_closed": "voicemail"},
        {"name": "billing", "skills": {"billing": 1}},
    ]
    async with make_server(ivr=CLOSED_TODAY, queues=queues) as server:
        record, _ = await one_call(server)
    assert record.outcome == "voicemail"


async def test_during_opening_hours_calls_are_answered(make_server: ServerFactory) -> None:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    every_day = {day: ["00:00-24:00"] for day in days}
    async with make_server(ivr={"hours": {"weekly": every_day}}) as server:
        record, _ = await one_call(server)
    assert record.outcome == "answered"


async def test_malformed_hours_are_refused_at_start(make_server: ServerFactory) -> None:
    from commserver.config import config_from_mapping
    from commserver.errors import ConfigError

    try:
        config_from_mapping({"ivr": {"hours": {"weekly": {"mon": ["8-18"]}}}})
    except ConfigError as exc:
        message = str(exc)
    else:
        message = ""
    assert "ivr.hours.weekly.mon" in message
    assert "not a span" in message
