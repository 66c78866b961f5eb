"""Queries: equality, every filter operator, ordering, paging and counting, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import Condition, InvalidQuery, StorageManager
from tests.storage.conftest import CallRecord

START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
QUEUES = ["support", "sales", "billing"]


@pytest.fixture
async def filled(calls: StorageManager) -> StorageManager:
    """30 calls: queue cycles support/sales/billing, one minute apart, every 4th no agent."""
    await calls.insert_many(
        [
            CallRecord(
                id=None,
                contact_id=f"c-{i:02d}",
                queue=QUEUES[i % 3],
                agent=None if i % 4 == 0 else f"agent-{i % 5}",
                outcome="abandoned" if i % 7 == 0 else "answered",
                ended_at=START + timedelta(minutes=i),
                talk_seconds=float(i * 10),
                answered=i % 7 != 0,
            )
            for i in range(30)
        ]
    )
    return calls


def ids(rows: list[CallRecord]) -> list[str]:
    return [row.contact_id for row in rows]


def expected(predicate: object) -> list[str]:
    """Contact ids of the filled rows (in insertion order) matching a predicate on i."""
    return [f"c-{i:02d}" for i in range(30) if predicate(i)]  # type: ignore[operator]


async def test_where_matches_equality_and_none(filled: StorageManager) -> None:
    rows = await filled.query(CallRecord, where={"queue": "sales"})
    assert ids(rows) == expected(lambda i: i % 3 == 1)
    rows = await filled.query(CallRecord, where={"agent": None, "queue": "support"})
    assert ids(rows) == expected(lambda i: i % 4 == 0 and i % 3 == 0)


@pytest.mark.parametrize(
    ("condition", "predicate"),
    [
        (Condition("talk_seconds", "=", 50.0), lambda i: i == 5),
        (Condition("queue", "!=", "support"), lambda i: i % 3 != 0),
        (Condition("ended_at", "<", START + timedelta(minutes=3)), lambda i: i < 3),
        (Condition("ended_at", "<=", START + timedelta(minutes=3)), lambda i: i <= 3),
        (Condition("talk_seconds", ">", 250.0), lambda i: i > 25),
        (Condition("talk_seconds", ">=", 250), lambda i: i >= 25),
        (Condition("contact_id", "in", ["c-01", "c-17", "zz"]), lambda i: i in (1, 17)),
        (Condition("contact_id", "in", []), lambda i: False),
        (Condition("contact_id", "like", "c-1%"), lambda i: 10 <= i < 20),
        (Condition("agent", "!=", None), lambda i: i % 4 != 0),
        (Condition("answered", "=", False), lambda i: i % 7 == 0),
    ],
    ids=lambda value: getattr(value, "op", ""),
)
async def test_each_filter_operator(
    filled: StorageManager, condition: Condition, predicate: object
) -> None:
    assert ids(await filled.query(CallRecord, filters=[condition])) == expected(predicate)
    assert await filled.count(CallRecord, filters=[condition]) == len(expected(predicate))


async def test_datetime_filter_with_another_time_zone_compares_instants(
    filled: StorageManager,
) -> None:
    berlin = START.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    since = berlin + timedelta(minutes=27)
    rows = await filled.query(CallRecord, filters=[Condition("ended_at", ">=", since)])
    assert ids(rows) == expected(lambda i: i >= 27)


async def test_where_and_filters_combine(filled: StorageManager) -> None:
    rows = await filled.query(
        CallRecord,
        where={"queue": "support"},
        filters=[Condition("talk_seconds", ">=", 100.0), Condition("outcome", "=", "answered")],
    )
    assert ids(rows) == expected(lambda i: i % 3 == 0 and i >= 10 and i % 7 != 0)


async def test_order_by_descending_and_multiple_attributes(filled: StorageManager) -> None:
    rows = await filled.query(CallRecord, order_by=["-ended_at"], limit=3)
    assert ids(rows) == ["c-29", "c-28", "c-27"]
    rows = await filled.query(CallRecord, order_by=["queue", "-talk_seconds"], limit=4)
    assert ids(rows) == ["c-29", "c-26", "c-23", "c-20"]  # billing first, longest talk first


async def test_paging_visits_every_row_exactly_once(filled: StorageManager) -> None:
    seen: list[str] = []
    for offset in range(0, 40, 7):
        page = await filled.query(CallRecord, order_by="outcome", limit=7, offset=offset)
        seen.extend(ids(page))
    assert sorted(seen) == expected(lambda i: True)
    assert len(seen) == 30
    assert await filled.query(CallRecord, offset=30) == []
    assert len(await filled.query(CallRecord, offset=25)) == 5


async def test_count_with_where(filled: StorageManager) -> None:
    assert await filled.count(CallRecord) == 30
    assert await filled.count(CallRecord, where={"queue": "billing"}) == 10


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"where": {"colour": "red"}}, "CallRecord has no attribute 'colour'"),
        ({"order_by": ["-colour"]}, "no attribute 'colour'"),
        ({"order_by": ["extra"]}, "cannot order by json attribute"),
        ({"filters": [Condition("talk_seconds", "like", "1%")]}, "like needs a string"),
        ({"filters": [Condition("queue", "in", "support")]}, "must be a collection"),
        ({"filters": [Condition("queue", "<", None)]}, "not a valid condition"),
        ({"filters": [Condition("talk_seconds", ">", "ten")]}, "must be a float"),
        ({"limit": -1}, "limit must be a whole number"),
        ({"offset": -5}, "offset must be a whole number"),
    ],
)
async def test_invalid_queries_are_refused_before_reaching_the_database(
    filled: StorageManager, kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InvalidQuery, match=fragment):
        await filled.query(CallRecord, **kwargs)  # type: ignore[arg-type]


def test_unknown_operator_is_refused_when_the_condition_is_made() -> None:
    with pytest.raises(InvalidQuery, match="unknown operator '=='"):
        Condition("queue", "==", "x")
