"""Values come back as they went in, on every backend: datetimes in UTC, JSON as structures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from storage import Condition, StorageManager
from tests.storage.conftest import CallRecord, Note


def call(contact_id: str, ended_at: datetime, extra: object = None) -> CallRecord:
    return CallRecord(None, contact_id, "q", None, "answered", ended_at, 1.25, False, extra)


async def test_datetimes_come_back_tz_aware_in_utc_with_microseconds(
    calls: StorageManager,
) -> None:
    instants = [
        datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 3, 31, 3, 0, 0, 1, tzinfo=ZoneInfo("Europe/Berlin")),  # just after DST
        datetime(1999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2038, 1, 19, 3, 14, 8, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ]
    for number, instant in enumerate(instants):
        stored = await calls.insert(call(f"t-{number}", instant))
        fetched = await calls.get(CallRecord, stored.id)
        assert fetched is not None
        assert fetched.ended_at == instant  # the same instant
        assert fetched.ended_at.utcoffset() == timedelta(0)
        assert fetched.ended_at.tzinfo is UTC
        assert fetched.ended_at.microsecond == instant.astimezone(UTC).microsecond


async def test_datetime_ordering_follows_instants_not_wall_clocks(calls: StorageManager) -> None:
    earlier_in_new_york = datetime(2024, 6, 1, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    later_in_utc_but_earlier_wall = datetime(2024, 6, 1, 14, 0, tzinfo=UTC)
    await calls.insert(call("late", later_in_utc_but_earlier_wall))
    await calls.insert(call("early", earlier_in_new_york))  # 13:00 UTC
    rows = await calls.query(CallRecord, order_by="ended_at")
    assert [row.contact_id for row in rows] == ["early", "late"]
    since = datetime(2024, 6, 1, 13, 30, tzinfo=UTC)
    rows = await calls.query(CallRecord, filters=[Condition("ended_at", ">", since)])
    assert [row.contact_id for row in rows] == ["late"]


async def test_json_round_trips_nested_structures_unicode_and_null(calls: StorageManager) -> None:
    values: list[object] = [
        {"path": ["1", "3"], "vars": {"meter": 12345.5, "ok": True, "none": None}},
        [1, "zwei", {"drei": 3}],
        "Grüße — 你好 ☎",
        42,
        None,
    ]
    for number, value in enumerate(values):
        stored = await calls.insert(call(f"j-{number}", datetime.now(UTC), value))
        fetched = await calls.get(CallRecord, stored.id)
        assert fetched is not None
        assert fetched.extra == value
    # None is SQL NULL, so it can be found.
    assert await calls.count(CallRecord, where={"extra": None}) == 1


async def test_text_date_float_and_boolean_round_trip(calls: StorageManager) -> None:
    long_text = "Zählerstand ✓ " * 5000
    await calls.insert(Note("T-1", long_text, date(1970, 1, 1)))
    await calls.insert(Note("T-2", "", date(2100, 12, 31)))
    assert await calls.get(Note, "T-1") == Note("T-1", long_text, date(1970, 1, 1))
    assert await calls.get(Note, "T-2") == Note("T-2", "", date(2100, 12, 31))
    stored = await calls.insert(call("f", datetime.now(UTC)))
    fetched = await calls.get(CallRecord, stored.id)
    assert fetched is not None
    assert fetched.talk_seconds == 1.25
    assert type(fetched.talk_seconds) is float
    assert fetched.answered is False
