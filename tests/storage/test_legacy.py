"""Legacy tables: mapped under other table and column names, verified, never altered."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from storage import Condition, ModelError, StorageManager, load_model, parse_model
from storage.examples import CUSTOMERS_MODEL, Customer, seed_legacy_customers
from tests.storage.conftest import Opener, calls_model, run_sql, table_ddl, table_names


async def test_example_legacy_table_is_mapped_and_never_altered(
    db_url: str, open_storage: Opener
) -> None:
    assert await seed_legacy_customers(db_url) is True
    assert await seed_legacy_customers(db_url) is False  # present: left alone
    before = await table_ddl(db_url, "KUNDEN_STAMM")
    manager = await open_storage(load_model(CUSTOMERS_MODEL))
    manager.bind(Customer, "Customer")

    bakery = await manager.get(Customer, 10004)
    assert bakery == Customer(
        10004, "Bäckerei Müller KG", "+4940777001", "info@baeckerei-mueller.example", 3,
        "DE-10004", True,
    )
    vips = await manager.query(Customer, where={"vip": True}, order_by=["-priority", "name"])
    assert [c.id for c in vips] == [10009, 10001, 10006, 10004]
    found = await manager.query(Customer, filters=[Condition("name", "like", "%Schmidt%")])
    assert [c.id for c in found] == [10002]

    added = await manager.insert(Customer(20001, "Neukunde AG", None, None, 2, "DE-20001", False))
    await manager.update(Customer(20001, "Neukunde AG", "+49301", None, 4, "DE-20001", True))
    assert await manager.get(Customer, 20001) == Customer(
        20001, "Neukunde AG", "+49301", None, 4, "DE-20001", True
    )
    assert added.id == 20001
    assert await manager.delete(Customer, 20001) is True
    assert await manager.count(Customer) == 10

    await manager.close()
    assert await table_ddl(db_url, "KUNDEN_STAMM") == before
    # Legacy-only models leave no bookkeeping table behind either.
    assert "caruso_schema" not in await table_names(db_url)


def legacy_model(attributes: str, table: str = "ERP_TICKETS") -> str:
    return (
        '<model name="erp">\n'
        f'  <object name="Ticket" table="{table}" managed="false">\n'
        f"{attributes}"
        "  </object>\n"
        "</model>\n"
    )


TICKET_ATTRIBUTES = (
    '    <attribute name="id" column="TKT_ID" type="integer" key="true" generated="true"/>\n'
    '    <attribute name="subject" column="BETREFF" type="string" nullable="false"/>\n'
    '    <attribute name="done" column="ERLEDIGT" type="boolean"/>\n'
)


@dataclass(frozen=True)
class Ticket:
    """A ticket of the legacy ERP (generated key)."""

    id: int | None
    subject: str
    done: bool | None


def tickets_ddl(db_url: str, generated: bool = True) -> str:
    """CREATE TABLE for the legacy ticket table, in the backend's own dialect."""
    if db_url.startswith("sqlite"):
        key = "TKT_ID INTEGER PRIMARY KEY" if generated else "TKT_ID BIGINT PRIMARY KEY"
    elif db_url.startswith("postgresql"):
        key = "TKT_ID SERIAL PRIMARY KEY" if generated else "TKT_ID INTEGER PRIMARY KEY"
    else:
        key = "TKT_ID INTEGER AUTO_INCREMENT PRIMARY KEY" if generated else "TKT_ID INT PRIMARY KEY"
    return f"CREATE TABLE ERP_TICKETS ({key}, BETREFF VARCHAR(200) NOT NULL, ERLEDIGT SMALLINT)"


async def test_legacy_generated_key_is_filled_in_on_insert(
    db_url: str, open_storage: Opener
) -> None:
    await run_sql(db_url, tickets_ddl(db_url))
    before = await table_ddl(db_url, "ERP_TICKETS")
    manager = await open_storage(parse_model(legacy_model(TICKET_ATTRIBUTES), source="erp.xml"))
    manager.bind(Ticket, "Ticket")
    first = await manager.insert(Ticket(None, "Zähler klemmt", False))
    second = await manager.insert(Ticket(None, "Abschlag ändern", None))
    assert first.id is not None
    assert second.id is not None
    assert first.id != second.id
    assert await manager.get(Ticket, first.id) == first
    assert await manager.get(Ticket, second.id) == second
    await manager.close()
    assert await table_ddl(db_url, "ERP_TICKETS") == before


async def test_generated_key_on_a_table_that_does_not_generate_it_is_refused(
    db_url: str, open_storage: Opener
) -> None:
    await run_sql(db_url, tickets_ddl(db_url, generated=False))
    with pytest.raises(ModelError) as caught:
        await open_storage(parse_model(legacy_model(TICKET_ATTRIBUTES), source="erp.xml"))
    message = str(caught.value)
    assert message.startswith("erp.xml:3: object Ticket: attribute id asks for generated")
    assert "does not generate column" in message
    assert "TKT_ID" in message.upper()


async def test_missing_legacy_column_names_object_attribute_table_and_column(
    db_url: str, open_storage: Opener
) -> None:
    await run_sql(db_url, tickets_ddl(db_url))
    attributes = TICKET_ATTRIBUTES + (
        '    <attribute name="owner" column="SACHBEARBEITER" type="string"/>\n'
    )
    before = await table_ddl(db_url, "ERP_TICKETS")
    with pytest.raises(ModelError) as caught:
        await open_storage(parse_model(legacy_model(attributes), source="erp.xml"))
    error = caught.value
    assert str(error).startswith("erp.xml:6: object Ticket: attribute owner: legacy table ")
    assert str(error).endswith("has no column SACHBEARBEITER")
    assert error.details["object"] == "Ticket"
    assert error.details["attribute"] == "owner"
    assert error.details["column"] == "SACHBEARBEITER"
    assert str(error.details["table"]).upper() == "ERP_TICKETS"
    assert await table_ddl(db_url, "ERP_TICKETS") == before  # never "fixed" by adding it


async def test_every_mismatch_is_listed_at_once(db_url: str, open_storage: Opener) -> None:
    await run_sql(db_url, tickets_ddl(db_url))
    attributes = (
        '    <attribute name="id" column="TKT_ID" type="integer" key="true"/>\n'
        '    <attribute name="subject" column="THEMA" type="string"/>\n'
        '    <attribute name="done" column="ERLEDIGT_AM" type="datetime"/>\n'
    )
    with pytest.raises(ModelError) as caught:
        await open_storage(parse_model(legacy_model(attributes), source="erp.xml"))
    lines = str(caught.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == ["erp.xml:4", "erp.xml:5"]
    assert "no column THEMA" in lines[0]
    assert "no column ERLEDIGT_AM" in lines[1]


async def test_incompatible_column_type_is_refused(db_url: str, open_storage: Opener) -> None:
    await run_sql(db_url, tickets_ddl(db_url))
    attributes = (
        '    <attribute name="id" column="TKT_ID" type="integer" key="true"/>\n'
        '    <attribute name="subject" column="BETREFF" type="integer"/>\n'
    )
    with pytest.raises(ModelError, match=r"erp\.xml:4: .*attribute subject is integer but colum"):
        await open_storage(parse_model(legacy_model(attributes), source="erp.xml"))


async def test_missing_legacy_table_is_refused_and_not_created(
    db_url: str, open_storage: Opener
) -> None:
    text = legacy_model(TICKET_ATTRIBUTES, table="ALTE_TICKETS")
    with pytest.raises(ModelError) as caught:
        await open_storage(calls_model(), parse_model(text, source="erp.xml"))
    assert str(caught.value).startswith(
        "erp.xml:2: object Ticket: legacy table ALTE_TICKETS does not exist"
    )
    # The check comes first: nothing at all was created, managed tables included.
    assert await table_names(db_url) == set()


async def test_legacy_and_managed_objects_live_side_by_side(
    db_url: str, open_storage: Opener
) -> None:
    await seed_legacy_customers(db_url)
    manager: StorageManager = await open_storage(calls_model(), load_model(CUSTOMERS_MODEL))
    assert set(manager.objects) == {"CallRecord", "Note", "Customer"}
    assert {"call_record", "note", "kunden_stamm", "caruso_schema"} <= await table_names(db_url)
