"""Create, read, update, delete and binding, on every backend."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

import pytest

from storage import (
    Conflict,
    InvalidValue,
    ModelError,
    NotFound,
    StorageError,
    StorageManager,
    UnboundClass,
)
from tests.storage.conftest import CallRecord, Note, Opener, calls_model

ENDED = datetime(2024, 5, 17, 14, 30, 5, 123456, tzinfo=UTC)


def record(contact_id: str, **changes: object) -> CallRecord:
    """A valid call record with a fresh contact id."""
    values: dict[str, object] = {
        "id": None,
        "contact_id": contact_id,
        "queue": "support",
        "agent": "agent-7",
        "outcome": "answered",
        "ended_at": ENDED,
        "talk_seconds": 42.5,
        "answered": True,
        "extra": {"ivr": ["1", "2"]},
    }
    values.update(changes)
    return CallRecord(**values)  # type: ignore[arg-type]


async def test_insert_fills_generated_key_and_get_returns_equal_object(
    calls: StorageManager,
) -> None:
    first = await calls.insert(record("c-1"))
    second = await calls.insert(record("c-2"))
    assert isinstance(first.id, int)
    assert isinstance(second.id, int)
    assert first.id != second.id
    assert await calls.get(CallRecord, first.id) == first
    assert await calls.get(CallRecord, second.id) == second


async def test_get_of_unknown_key_is_none(calls: StorageManager) -> None:
    assert await calls.get(CallRecord, 123456) is None
    assert await calls.get(Note, "nope") is None


async def test_string_key_object_round_trips_and_updates(calls: StorageManager) -> None:
    note = Note("N-1", "first body", date(2024, 2, 29))
    assert await calls.insert(note) is note
    note.body = "second body"
    note.day = None
    await calls.update(note)
    assert await calls.get(Note, "N-1") == Note("N-1", "second body", None)


async def test_update_overwrites_every_attribute(calls: StorageManager) -> None:
    stored = await calls.insert(record("c-1"))
    changed = record("c-1", id=stored.id, queue=None, outcome="abandoned", extra=None)
    await calls.update(changed)
    assert await calls.get(CallRecord, stored.id) == changed


async def test_update_with_unchanged_values_still_finds_the_row(calls: StorageManager) -> None:
    # MariaDB counts changed rows unless told otherwise; an identical update is not "absent".
    stored = await calls.insert(record("c-1"))
    await calls.update(stored)
    assert await calls.get(CallRecord, stored.id) == stored


async def test_update_of_absent_object_raises_not_found(calls: StorageManager) -> None:
    with pytest.raises(NotFound, match="no CallRecord with key 999"):
        await calls.update(record("c-9", id=999))
    with pytest.raises(NotFound):
        await calls.update(Note("absent", None, None))


async def test_delete_reports_whether_a_row_went(calls: StorageManager) -> None:
    stored = await calls.insert(record("c-1"))
    assert await calls.delete(CallRecord, stored.id) is True
    assert await calls.delete(CallRecord, stored.id) is False
    assert await calls.get(CallRecord, stored.id) is None


async def test_insert_many_is_one_transaction_with_keys_in_order(calls: StorageManager) -> None:
    stored = await calls.insert_many([record(f"c-{i}", agent=f"a{i}") for i in range(25)])
    assert [item.agent for item in stored] == [f"a{i}" for i in range(25)]
    keys = [item.id for item in stored]
    assert len(set(keys)) == 25
    for item in stored:
        assert await calls.get(CallRecord, item.id) == item
    # A duplicate inside the batch rolls the whole batch back.
    with pytest.raises(Conflict):
        await calls.insert_many([record("d-1"), record("d-2"), record("c-3")])
    assert await calls.count(CallRecord) == 25
    assert await calls.insert_many([]) == []


async def test_duplicate_key_and_unique_index_are_conflicts(calls: StorageManager) -> None:
    await calls.insert(Note("N-1", None, None))
    with pytest.raises(Conflict) as caught:
        await calls.insert(Note("N-1", "again", None))
    assert caught.value.code == "storage-conflict"
    await calls.insert(record("same"))
    with pytest.raises(Conflict):
        await calls.insert(record("same"))


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"contact_id": None}, "CallRecord.contact_id must not be None"),
        ({"queue": 7}, "CallRecord.queue must be a str"),
        ({"queue": "x" * 41}, "41 characters long; at most 40 fit"),
        ({"talk_seconds": "long"}, "CallRecord.talk_seconds must be a float"),
        ({"answered": 1}, "CallRecord.answered must be a bool"),
        ({"ended_at": datetime(2024, 1, 1, 12, 0)}, "must be a tz-aware datetime"),
        ({"ended_at": "2024-01-01"}, "must be a datetime"),
    ],
)
async def test_values_that_do_not_fit_are_refused_alike_everywhere(
    calls: StorageManager, changes: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InvalidValue, match=fragment):
        await calls.insert(dataclasses.replace(record("c-1"), **changes))  # type: ignore[arg-type]
    assert await calls.count(CallRecord) == 0


async def test_date_attribute_refuses_a_datetime(calls: StorageManager) -> None:
    with pytest.raises(InvalidValue, match=r"Note\.day must be a date"):
        await calls.insert(Note("N", None, ENDED))


async def test_unbound_class_gets_a_clear_error(calls: StorageManager) -> None:
    @dataclass
    class Stray:
        code: str

    with pytest.raises(UnboundClass, match=r"call storage.bind\(.*Stray, 'ObjectName'\)"):
        await calls.get(Stray, "x")


async def test_bind_checks_fields_and_types_and_is_idempotent(open_storage: Opener) -> None:
    manager = await open_storage(calls_model())
    manager.bind(Note, "Note")
    manager.bind(Note, "Note")  # idempotent

    @dataclass
    class MissingField:
        code: str
        body: str | None

    @dataclass
    class WrongType:
        code: str
        body: str | None
        day: int | None

    class NotADataclass:
        pass

    with pytest.raises(ModelError, match="missing fields day"):
        manager.bind(MissingField, "Note")
    with pytest.raises(ModelError, match="field day is int but attribute day is date"):
        manager.bind(WrongType, "Note")
    with pytest.raises(ModelError, match="only dataclasses can be bound"):
        manager.bind(NotADataclass, "Note")
    with pytest.raises(ModelError, match="no business object named 'Nope'"):
        manager.bind(CallRecord, "Nope")
    with pytest.raises(ModelError, match="already bound to object Note"):
        manager.bind(Note, "CallRecord")


class Outcome(StrEnum):
    """An Enum field stored through a string attribute."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class TypedCall:
    """Like CallRecord, but with an Enum outcome."""

    id: int | None
    contact_id: str
    queue: str | None
    agent: str | None
    outcome: Outcome
    ended_at: datetime
    talk_seconds: float | None
    answered: bool | None
    extra: object


async def test_enum_fields_are_stored_by_value_and_read_back_as_members(
    open_storage: Opener,
) -> None:
    manager = await open_storage(calls_model())
    manager.bind(TypedCall, "CallRecord")
    stored = await manager.insert(
        TypedCall(None, "e-1", None, None, Outcome.ABANDONED, ENDED, None, None, None)
    )
    fetched = await manager.get(TypedCall, stored.id)
    assert fetched is not None
    assert fetched.outcome is Outcome.ABANDONED
    found = await manager.query(TypedCall, where={"outcome": Outcome.ABANDONED})
    assert [item.contact_id for item in found] == ["e-1"]


async def test_closed_manager_refuses_work(db_url: str) -> None:
    async with StorageManager.open(db_url, [calls_model()]) as manager:
        manager.bind(Note, "Note")
        await manager.insert(Note("N-1", None, None))
    with pytest.raises(StorageError, match="is closed"):
        await manager.get(Note, "N-1")
    await manager.close()  # idempotent


async def test_data_survives_reopening(db_url: str) -> None:
    manager = await StorageManager.open(db_url, [calls_model()])
    manager.bind(CallRecord, "CallRecord")
    stored = await manager.insert(record("c-1"))
    await manager.close()
    async with await StorageManager.open(db_url, [calls_model()]) as reopened:
        reopened.bind(CallRecord, "CallRecord")
        assert await reopened.get(CallRecord, stored.id) == stored
