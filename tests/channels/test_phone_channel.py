"""The phone channel: steps read out through the backend, answers keyed as DTMF, retries on bad
keys, a transfer routed through the normal queueing path, hang-ups stored as abandoned."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path

import pytest

from commserver.agents import AgentState
from commserver.contacts import CallRecord
from commserver.telephony.sim import SimBackend, SimCaller
from ivr.script_channel import (
    DATE_DIGITS,
    MAX_NUMBER_DIGITS,
    KeyRequest,
    PhoneCall,
    PhoneScriptChannel,
    PhoneScriptSettings,
    key_request,
)
from scripts_engine import (
    RunEvent,
    RunState,
    ScriptCatalog,
    ScriptRunner,
    StepStats,
    load_script,
)
from tests.channels.conftest import METER_NUMBER, OUTAGE_NUMBER, ChannelServer, eventually
from tests.channels.test_three_channels import KEYS

Factory = Callable[..., AbstractAsyncContextManager[ChannelServer]]
SHIPPED = Path(__file__).resolve().parents[2] / "dialog_scripts"


def sim(server: ChannelServer) -> SimBackend:
    backend = server.server.backend
    assert isinstance(backend, SimBackend)
    return backend


async def the_run(server: ChannelServer, status: str) -> str:
    """Wait for the one phone run to reach `status`; its id."""
    found: list[str] = []

    async def reached() -> bool:
        found[:] = [r.id for r in await server.runs(channel="phone", status=status)]
        return bool(found)

    await eventually(reached)
    return found[0]


async def test_a_gas_smell_keyed_after_a_wrong_key_goes_to_the_gas_emergency_queue(
    channel_server: Factory,
) -> None:
    async with channel_server() as server:
        # "9" is no choice: the caller hears the apology and the question again, then keys 2.
        call_id = sim(server).place_call(
            SimCaller(caller="+4930123", dialed=OUTAGE_NUMBER, digits="92", talk_time=5.0)
        )
        run_id = await the_run(server, "completed")
        stored = await server.stored(run_id)
        assert stored["path"] == ["kind", "gas_emergency", "emergency_transferred"]
        assert stored["disposition"] == "gas-emergency"
        assert [(a[0], a[2]) for a in stored["actions"]] == [("transfer gas-emergency", "ok")]
        # The call went on through the ACD to the gas agent.
        calls = server.server.calls
        await eventually_sync(lambda: calls.agents["g1"].state is AgentState.BUSY)
        contact = calls.contact(calls.agents["g1"].contact_id or "")
        assert (contact.queue, contact.dialed) == ("gas-emergency", OUTAGE_NUMBER)
        record = await server.store.record(run_id)
        assert record is not None
        assert record.contact == contact.id
        said = " ".join(spoken(server, call_id))
        assert "If you smell gas, press 2 now." in said
        assert "Sorry, that is not a valid answer." in said
        assert "Please leave the building now." in said  # the information step, read out
        assert "you are being put through" in said


def spoken(server: ChannelServer, call_id: str) -> list[str]:
    """What the simulated backend said on a call, in order."""
    return [text for said_on, text in sim(server).prompts if said_on == call_id]


async def eventually_sync(check: Callable[[], bool]) -> None:
    async def wrapped() -> bool:
        return check()

    await eventually(wrapped)


async def test_a_caller_who_hangs_up_mid_script_leaves_an_abandoned_run(
    channel_server: Factory,
) -> None:
    async with channel_server() as server:
        # Keys the account number, then waits in silence and hangs up.
        sim(server).place_call(
            SimCaller(caller="+4930456", dialed=METER_NUMBER, digits="4711001#", patience=0.2)
        )
        run_id = await the_run(server, "abandoned")
        record = await server.store.record(run_id)
        assert record is not None
        assert record.current_step == "meter_kind"
        stored = await server.stored(run_id)
        assert stored["answered"] == [("ask_account", 4711001)]

        async def recorded() -> bool:
            rows = await server.server.storage.query(CallRecord, where={"dialed": METER_NUMBER})
            return bool(rows) and rows[0].outcome == "abandoned"

        await eventually(recorded)


async def test_no_valid_answer_after_every_retry_ends_the_call(channel_server: Factory) -> None:
    async with channel_server() as server:
        # phone_retries = 1: two wrong choices, then the script gives up.
        sim(server).place_call(SimCaller(caller="+4930789", dialed=OUTAGE_NUMBER, digits="77"))
        run_id = await the_run(server, "abandoned")
        record = await server.store.record(run_id)
        assert record is not None
        assert record.current_step == "kind"

        async def hung_up() -> bool:
            return bool(
                await server.server.storage.query(CallRecord, where={"dialed": OUTAGE_NUMBER})
            )

        await eventually(hung_up)
        assert sim(server).live_calls == 0


async def test_the_whole_meter_reading_by_phone_ends_with_goodbye(
    channel_server: Factory,
) -> None:
    async with channel_server() as server:
        call_id = sim(server).place_call(
            SimCaller(caller="+4930999", dialed=METER_NUMBER, digits=KEYS)
        )
        run_id = await the_run(server, "completed")
        record = await server.store.record(run_id)
        assert record is not None
        assert record.disposition == "reading-recorded"

        async def recorded() -> bool:
            return bool(
                await server.server.storage.query(CallRecord, where={"dialed": METER_NUMBER})
            )

        await eventually(recorded)
        (call,) = await server.server.storage.query(CallRecord, where={"dialed": METER_NUMBER})
        said = spoken(server, call_id)
        assert said[-1] == "Thank you for calling. Goodbye."
        assert any("recorded under reference MR-4711001-gas-1500" in text for text in said)
        assert call.queue is None  # never queued: the script served the caller alone
        assert call.outcome == "self-served"


@pytest.mark.parametrize(
    ("step_id", "expected"),
    [
        ("ask_account", KeyRequest(MAX_NUMBER_DIGITS + 1, "#")),
        ("meter_kind", KeyRequest(1, "")),
        ("confirm", KeyRequest(1, "")),
        ("reading_date", KeyRequest(DATE_DIGITS, "#")),
    ],
)
def test_each_answer_type_collects_the_keys_it_needs(step_id: str, expected: KeyRequest) -> None:
    script = load_script(SHIPPED / "meter-reading.xml")
    assert key_request(script.step(step_id)) == expected


class LineGone(Exception):
    """What a backend raises when the call has ended."""


class FakeLine:
    """A phone line: records what is said, hands out keyed entries, may fail on a prompt."""

    def __init__(self, entries: list[str], *, fail_on_prompt: int | None = None) -> None:
        self.entries = entries
        self.said: list[str] = []
        self.fail_on_prompt = fail_on_prompt

    async def play(self, call_id: str, prompt: str) -> None:
        if self.fail_on_prompt is not None and len(self.said) >= self.fail_on_prompt:
            raise LineGone(call_id)
        self.said.append(prompt)

    async def collect_digits(
        self, call_id: str, *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str:
        return self.entries.pop(0) if self.entries else ""


class FlakyStore:
    """A run store whose database goes away after the run was created."""

    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.down = False

    async def create(
        self, run_id: str, state: RunState, events: Sequence[RunEvent], now: datetime
    ) -> None:
        self.statuses.append(state.status.value)

    async def save(
        self, run_id: str, state: RunState, events: Sequence[RunEvent], now: datetime
    ) -> None:
        if self.down:
            raise RuntimeError("the database went away")
        self.statuses.append(state.status.value)

    async def load(self, run_id: str) -> RunState | None:
        return None

    async def step_stats(
        self,
        script_id: str,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StepStats]:
        return []

    async def find_by_contact(self, contact_id: str, script_id: str | None = None) -> str | None:
        return None


def phone_channel(line: FakeLine, store: FlakyStore) -> PhoneScriptChannel[str]:
    catalog = ScriptCatalog()
    assert catalog.load_directory(SHIPPED) == []
    runner = ScriptRunner(catalog, store=store)
    return PhoneScriptChannel(
        runner, line, str, numbers={"201": "outage-report"}, queues=["gas-emergency"],
        settings=PhoneScriptSettings(key_timeout=0.01, retries=1),
    )


CALL = PhoneCall("call-1", "+4930", "201", "c1")


async def test_a_failing_store_gets_the_caller_an_apology_and_a_hang_up() -> None:
    store = FlakyStore()
    line = FakeLine(["1"])
    channel = phone_channel(line, store)
    store.down = True
    result = await channel.run(CALL)
    assert result.queue is None
    assert result.run_id is not None
    assert line.said[-1] == (
        "Sorry, we cannot go on with your request on the phone right now. "
        "Thank you for calling. Goodbye."
    )


async def test_a_line_that_fails_ends_the_run_and_the_backend_error_goes_on() -> None:
    store = FlakyStore()
    line = FakeLine(["1"], fail_on_prompt=1)  # answered the first question, then gone
    channel = phone_channel(line, store)
    with pytest.raises(LineGone):
        await channel.run(CALL)
    # Started, answered (now at the postcode), then stored as abandoned.
    assert store.statuses == ["waiting", "waiting", "abandoned"]


async def test_the_channel_serves_only_the_numbers_placed_on_scripts() -> None:
    channel = phone_channel(FakeLine([]), FlakyStore())
    assert channel.serves("201")
    assert not channel.serves("100")
    # Gas smell keyed: the information step is read, then the call goes to the emergency queue.
    line = FakeLine(["2"])
    assert await phone_channel(line, FlakyStore()).route(CALL) == "gas-emergency"
    assert any("Please leave the building now." in text for text in line.said)
