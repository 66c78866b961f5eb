"""Stored runs on real databases: every answer and action stored, resume after a restart
(also in the middle of an action), step back, per-step analytics, customer fields in storage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dialog_scripts import PACKAGE_DIR
from scripts_engine import (
    ActionExecutor,
    Channel,
    DialogScript,
    NoSuchRun,
    NoSuchScript,
    ResultStatus,
    RunStatus,
    ScriptCatalog,
    ScriptRunner,
    StorageBusinessObjects,
    StorageRunStore,
    load_script,
    runs_model,
)
from scripts_engine.store import ScriptRunVisitRecord
from storage import StorageManager, load_model
from storage.examples import CUSTOMERS_MODEL, Customer, seed_legacy_customers
from tests.scripts_engine.helpers import NOW, FakeServices

CUSTOMER = {"name": "Ann Example", "account": "4711", "email": "ann@example.com"}
METER_RESULTS = {
    "metering.last_reading": {"value": 1000},
    "metering.submit_reading": {"reference": "R-9"},
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def meter() -> DialogScript:
    return load_script(PACKAGE_DIR / "meter-reading.xml", today=NOW.date())


def make_runner(
    storage: StorageManager,
    script: DialogScript,
    clock: Callable[[], datetime],
    services: FakeServices | None = None,
) -> ScriptRunner:
    catalog = ScriptCatalog()
    catalog.add(script)
    objects = StorageBusinessObjects(storage)
    executor = ActionExecutor(services=services or FakeServices(METER_RESULTS), objects=objects)
    return ScriptRunner(
        catalog, executor=executor, store=StorageRunStore(storage), objects=objects, clock=clock
    )


async def test_run_is_stored_and_resumes_after_a_restart(db_url: str, meter: DialogScript) -> None:
    clock = Clock()
    async with StorageManager.open(db_url, models=[runs_model()]) as storage:
        runner = make_runner(storage, meter, clock)
        run = await runner.start(meter, Channel.AGENT, "agent-7", "7", customer_data=CUSTOMER)
        clock.tick(5)
        await run.answer("greet_known", None)
        clock.tick(12)
        await run.answer("meter_kind", "gas")
        run_id, before = run.id, run.state
        assert before.step_id == "reading"
    # A new process: new storage manager, new runner, nothing in memory.
    async with StorageManager.open(db_url, models=[runs_model()]) as storage:
        runner = make_runner(storage, meter, clock)
        resumed = await runner.resume(run_id)
        assert resumed.state == before
        assert resumed.view().hint == "The last reading was 1000."
        clock.tick(30)
        await resumed.answer("reading", 1500)
        await resumed.answer("reading_date", NOW.date().isoformat())
        view = await resumed.answer("confirm", True)
        assert (view.status, view.disposition) == (RunStatus.COMPLETED, "reading-recorded")

        store = StorageRunStore(storage)
        record = await store.record(run_id)
        assert record is not None
        assert (record.script_id, record.script_version, record.channel) == (
            "meter-reading",
            "1",
            "agent",
        )
        assert (record.agent, record.customer, record.status) == ("agent-7", "7", "completed")
        assert record.disposition == "reading-recorded"
        assert record.ended_at is not None
        assert record.started_at == NOW
        visits = await store.visits(run_id)
        assert [v.step_id for v in visits] == [
            "welcome",
            "greet_known",
            "meter_kind",
            "reading",
            "reading_date",
            "confirm",
            "send_receipt",
            "recorded",
        ]
        answered = {v.step_id: (v.answer, v.seconds) for v in visits if v.answered_at is not None}
        assert answered == {
            "greet_known": (None, 5.0),
            "meter_kind": ("gas", 12.0),
            "reading": (1500, 30.0),
            "reading_date": ("2024-05-01", 0.0),
            "confirm": (True, 0.0),
        }
        assert all(v.entered_at.tzinfo is not None for v in visits)
        actions = await store.actions(run_id)
        assert [(a.seq, a.action, a.status) for a in actions] == [
            (1, "call-service metering.last_reading", "ok"),
            (2, "call-service metering.submit_reading", "ok"),
            (3, "send-email reading_receipt", "skipped"),
        ]
        assert actions[1].request["args"] == {
            "account": "4711",
            "meter": "gas",
            "reading": 1500,
            "date": "2024-05-01",
        }
        assert actions[1].result == {"status": "ok", "value": {"reference": "R-9"}}
        with pytest.raises(NoSuchRun):
            await runner.resume("no-such-run")


async def test_a_restart_in_the_middle_of_an_action_carries_it_out_on_resume(
    db_url: str, meter: DialogScript
) -> None:
    clock = Clock()
    async with StorageManager.open(db_url, models=[runs_model()]) as storage:
        hanging = FakeServices(METER_RESULTS, delay=60)
        runner = make_runner(storage, meter, clock, hanging)
        run = await runner.start(meter, Channel.AGENT, None, "7", customer_data=CUSTOMER)
        await run.answer("greet_known", None)
        task = asyncio.create_task(run.answer("meter_kind", "water"))
        async with asyncio.timeout(5):
            await hanging.called.wait()
        task.cancel()  # the process dies while the service call is under way
        with pytest.raises(asyncio.CancelledError):
            await task
        run_id = run.id
    async with StorageManager.open(db_url, models=[runs_model()]) as storage:
        services = FakeServices(METER_RESULTS)
        resumed = await make_runner(storage, meter, clock, services).resume(run_id)
        # Stored as "acting" with its request: carried out again, and the run moved on.
        assert services.calls == [
            ("metering", "last_reading", {"account": "4711", "meter": "water"}, 3.0)
        ]
        assert resumed.status is RunStatus.WAITING
        assert resumed.state.step_id == "reading"
        assert [(a.seq, a.status) for a in await StorageRunStore(storage).actions(run_id)] == [
            (1, "ok")
        ]


async def test_records_a_crash_left_beyond_the_stored_state_are_dropped(
    db_url: str, meter: DialogScript
) -> None:
    clock = Clock()
    async with StorageManager.open(db_url, models=[runs_model()]) as storage:
        runner = make_runner(storage, meter, clock)
        run = await runner.start(meter, Channel.WEB, customer_data=CUSTOMER)
        ghost = ScriptRunVisitRecord(
            id=f"{run.id}/v000099",
            run_id=run.id,
            script_id="meter-reading",
            script_version="1",
            visit=99,
            step_id="reading",
            kind="question",
            entered_at=NOW,
            answered_at=None,
            answer=None,
            seconds=None,
            undone=False,
        )
        await storage.insert(ghost)
        runner.forget(run.id)
        resumed = await runner.resume(run.id)
        assert resumed.state.visit == 2
        assert [v.visit for v in await StorageRunStore(storage).visits(run.id)] == [1, 2]


async def test_step_back_and_drop_off_feed_per_step_analytics(
    db_url: str, meter: DialogScript
) -> None:
    clock = Clock()
    async with StorageManager.open(db_url, models=[runs_model()]) as storage:
        runner = make_runner(storage, meter, clock)
        # Run 1: answers, steps back once, completes.
        first = await runner.start(meter, Channel.AGENT, customer="1", customer_data=CUSTOMER)
        clock.tick(4)
        await first.answer("greet_known", None)
        clock.tick(10)
        await first.answer("meter_kind", "gas")
        clock.tick(20)
        await first.answer("reading", 1100)
        await first.back()
        clock.tick(6)
        await first.answer("reading", 1200)
        await first.answer("reading_date", NOW.date().isoformat())
        await first.answer("confirm", True)
        # Run 2: the caller hangs up at the reading.
        second = await runner.start(meter, Channel.PHONE, customer="2", customer_data=CUSTOMER)
        clock.tick(8)
        await second.answer("greet_known", None)
        await second.answer("meter_kind", "water")
        await second.abandon()
        # Run 3: still open at the meter question.
        third = await runner.start(meter, Channel.WEB, customer="3", customer_data=CUSTOMER)
        visits = await StorageRunStore(storage).visits(first.id)
        undone = [(v.step_id, v.answer) for v in visits if v.undone]
        assert undone == [("reading_date", None)]
        stats = {s.step_id: s for s in await StorageRunStore(storage).step_stats("meter-reading")}
        assert third.status is RunStatus.WAITING
    assert stats["greet_known"].reached == 3
    assert stats["greet_known"].answered == 2
    assert stats["greet_known"].mean_seconds == 6.0
    assert stats["greet_known"].waiting == 1
    assert stats["reading"].reached == 2
    assert stats["reading"].visits == 3  # run 1 came back to it
    assert stats["reading"].dropped == 1
    assert stats["reading"].mean_seconds == 13.0  # (20 + 6) / 2
    assert stats["recorded"].reached == 1
    assert next(iter(stats)) == "welcome"
    assert stats["confirm"].to_json()["reached"] == 1


async def test_customer_comes_from_a_legacy_table_and_set_field_writes_it_back(
    db_url: str, tmp_path: Path
) -> None:
    script = load_script(PACKAGE_DIR / "move-in-out.xml", today=NOW.date())
    await seed_legacy_customers(db_url)
    models = [runs_model(), load_model(CUSTOMERS_MODEL)]
    async with StorageManager.open(db_url, models=models) as storage:
        services = FakeServices({"contracts.register_move_out": {"reference": "MV-1"}})
        runner = make_runner(storage, script, Clock(), services)
        run = await runner.start(script, Channel.WEB, None, "10002")
        assert run.state.customer["name"] == "Anna Schmidt"
        assert run.state.customer["account"] == "DE-10002"
        await run.answer("direction", "move_out")
        await run.answer("move_date", NOW.date().isoformat())
        await run.answer("final_reading", "")
        await run.answer("address", "Hauptstrasse 1, 10115 Berlin")
        await run.answer("email_ok", False)
        await run.answer("new_email", "anna.neu@example.org")
        view = await run.answer("summary", "yes")
        assert view.disposition == "move-registered"
        assert services.calls[0][2] == {
            "account": "DE-10002",
            "date": "2024-05-01",
            "reading": None,
            "billing_address": "Hauptstrasse 1, 10115 Berlin",
        }
        results = dict(run.actions)
        assert results["set-field customer.email"].status is ResultStatus.OK
        storage.bind(Customer, "Customer")
        stored = await storage.get(Customer, 10002)
        assert stored is not None
        assert stored.email == "anna.neu@example.org"
        assert stored.name == "Anna Schmidt"


async def test_resume_needs_the_scripts_version(
    tmp_path: Path, sqlite_url: str, meter: DialogScript
) -> None:
    async with StorageManager.open(sqlite_url, models=[runs_model()]) as storage:
        run = await make_runner(storage, meter, Clock()).start(meter, Channel.WEB)
        empty = ScriptRunner(ScriptCatalog(), store=StorageRunStore(storage))
        with pytest.raises(NoSuchScript, match="meter-reading version 1"):
            await empty.resume(run.id)


async def test_open_runs_beyond_the_memory_limit_are_dropped_but_resumable(
    sqlite_url: str, meter: DialogScript, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scripts_engine.session as session

    monkeypatch.setattr(session, "MAX_LIVE_RUNS", 2)
    async with StorageManager.open(sqlite_url, models=[runs_model()]) as storage:
        runner = make_runner(storage, meter, Clock())
        runs = [await runner.start(meter, Channel.WEB) for _ in range(3)]
        assert runner.live_runs == 2
        oldest = await runner.resume(runs[0].id)
        assert oldest is not runs[0]  # reloaded from storage
        assert oldest.state == runs[0].state
        assert (await runner.resume(runs[2].id)) is runs[2]  # still held
