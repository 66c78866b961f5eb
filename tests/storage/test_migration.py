"""Managed tables: created, migrated by adding nullable columns, unsafe changes refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from storage import MigrationRefused, StorageManager, parse_model
from tests.storage.conftest import Opener, run_sql, table_ddl, table_names

V1 = (
    '    <attribute name="id" type="integer" key="true" generated="true"/>\n'
    '    <attribute name="agent" type="string" length="40" nullable="false"/>\n'
    '    <attribute name="reason" type="string" length="40"/>\n'
)


def pause_model(attributes: str, extra: str = "") -> str:
    return (
        '<model name="pauses">\n'
        '  <object name="Pause" table="agent_pause">\n'
        f"{attributes}{extra}"
        "  </object>\n"
        "</model>\n"
    )


@dataclass(frozen=True)
class PauseV1:
    """The first version of the object."""

    id: int | None
    agent: str
    reason: str | None


@dataclass(frozen=True)
class PauseV2:
    """The second version: one more (nullable) attribute."""

    id: int | None
    agent: str
    reason: str | None
    minutes: int | None


async def open_version(open_storage: Opener, attributes: str, extra: str = "") -> StorageManager:
    return await open_storage(parse_model(pause_model(attributes, extra), source="pauses.xml"))


async def test_open_creates_managed_tables_and_records_them(
    db_url: str, open_storage: Opener
) -> None:
    await open_version(open_storage, V1)
    assert {"agent_pause", "caruso_schema"} <= await table_names(db_url)


async def test_reopening_an_unchanged_model_changes_nothing(
    db_url: str, open_storage: Opener
) -> None:
    manager = await open_version(open_storage, V1)
    await manager.close()
    before = await table_ddl(db_url, "agent_pause")
    await open_version(open_storage, V1)
    assert await table_ddl(db_url, "agent_pause") == before


async def test_new_nullable_attribute_adds_a_column_and_keeps_rows(
    db_url: str, open_storage: Opener
) -> None:
    v1 = await open_version(open_storage, V1)
    v1.bind(PauseV1, "Pause")
    old = await v1.insert(PauseV1(None, "agent-1", "lunch"))
    await v1.close()

    v2 = await open_version(
        open_storage,
        V1 + '    <attribute name="minutes" type="integer"/>\n',
        '    <index attributes="agent minutes"/>\n',
    )
    v2.bind(PauseV2, "Pause")
    assert await v2.get(PauseV2, old.id) == PauseV2(old.id, "agent-1", "lunch", None)
    new = await v2.insert(PauseV2(None, "agent-2", None, 15))
    assert await v2.get(PauseV2, new.id) == new
    ddl = await table_ddl(db_url, "agent_pause")
    assert "minutes" in [column["name"].lower() for column in ddl["columns"]]
    assert ("ix_agent_pause_agent_minutes", ("agent", "minutes")) in [
        (name.lower(), tuple(c.lower() for c in columns)) for name, columns in ddl["indexes"]
    ]


async def test_removed_nullable_attribute_keeps_its_column_and_can_come_back(
    db_url: str, open_storage: Opener
) -> None:
    v2_attributes = V1 + '    <attribute name="minutes" type="integer"/>\n'
    v2 = await open_version(open_storage, v2_attributes)
    v2.bind(PauseV2, "Pause")
    kept = await v2.insert(PauseV2(None, "agent-1", None, 30))
    await v2.close()

    v1 = await open_version(open_storage, V1)  # minutes dropped from the model: allowed
    v1.bind(PauseV1, "Pause")
    await v1.insert(PauseV1(None, "agent-2", None))
    await v1.close()
    assert "minutes" in [c["name"].lower() for c in (await table_ddl(db_url, "agent_pause"))[
        "columns"
    ]]

    again = await open_version(open_storage, v2_attributes)  # and back, data intact
    again.bind(PauseV2, "Pause")
    assert await again.get(PauseV2, kept.id) == kept


@pytest.mark.parametrize(
    ("attributes", "change"),
    [
        (
            V1.replace('name="reason" type="string" length="40"', 'name="reason" type="integer"'),
            "attribute reason (column reason) changed from string(40) to integer",
        ),
        (
            V1.replace('length="40"/>', 'length="80"/>'),
            "changed from string(40) to string(80)",
        ),
        (
            V1.replace('name="reason" type="string" length="40"',
                       'name="reason" type="string" length="40" nullable="false"'),
            "changed from string(40) to string(40) NOT NULL",
        ),
        (
            V1 + '    <attribute name="minutes" type="integer" nullable="false"/>\n',
            "new attribute minutes (column minutes) is NOT NULL",
        ),
        (
            V1.replace(' key="true" generated="true"', "")
            .replace('name="agent" type="string"', 'name="agent" type="string" key="true"'),
            "its key column changed from id to agent (a dropped key)",
        ),
        (
            V1.replace(
                '    <attribute name="agent" type="string" length="40" nullable="false"/>\n', ""
            ),
            "attribute agent (column agent, NOT NULL) was removed",
        ),
    ],
    ids=["type", "length", "not-null", "new-not-null", "key", "removed-not-null"],
)
async def test_unsafe_change_is_refused_with_what_to_do(
    db_url: str, open_storage: Opener, attributes: str, change: str
) -> None:
    await (await open_version(open_storage, V1)).close()
    before = await table_ddl(db_url, "agent_pause")
    with pytest.raises(MigrationRefused) as caught:
        await open_version(open_storage, attributes)
    message = str(caught.value)
    assert message.startswith("pauses.xml:2: cannot migrate table agent_pause of object Pause")
    assert change in message
    assert "delete the object's row from caruso_schema" in message  # what to do
    assert caught.value.code == "unsafe-schema-migration"
    assert await table_ddl(db_url, "agent_pause") == before


async def test_table_changed_by_hand_is_adopted_after_its_record_is_deleted(
    db_url: str, open_storage: Opener
) -> None:
    await (await open_version(open_storage, V1)).close()
    wider = V1.replace('length="40"/>', 'length="80"/>')
    with pytest.raises(MigrationRefused):
        await open_version(open_storage, wider)
    # The documented way out: change the table by hand, forget the record, reopen.
    if db_url.startswith("postgresql"):
        await run_sql(db_url, "ALTER TABLE agent_pause ALTER COLUMN reason TYPE VARCHAR(80)")
    elif db_url.startswith("mysql"):
        await run_sql(db_url, "ALTER TABLE agent_pause MODIFY reason VARCHAR(80)")
    # (SQLite does not enforce VARCHAR lengths: nothing to change there.)
    await run_sql(db_url, "DELETE FROM caruso_schema WHERE object_name = 'Pause'")
    manager = await open_version(open_storage, wider)
    manager.bind(PauseV1, "Pause")
    stored = await manager.insert(PauseV1(None, "agent-1", "x" * 80))
    assert await manager.get(PauseV1, stored.id) == stored
