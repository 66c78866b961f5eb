"""The example legacy mapping: a company's customer table KUNDEN_STAMM as Caruso's Customer.

The customer-directory service, the demo site and the tests use it:

    await seed_legacy_customers(url)                 # creates and fills KUNDEN_STAMM if absent
    storage = await StorageManager.open(url, models=[load_model(CUSTOMERS_MODEL)])
    storage.bind(Customer, "Customer")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage.engine import (
    SQLITE_IMMEDIATE,
    Backend,
    create_engine,
    parse_database_url,
    probe,
    translate,
)
from storage.errors import StorageError

#: The model file mapping Customer onto KUNDEN_STAMM (managed="false").
CUSTOMERS_MODEL = Path(__file__).with_name("customers-legacy.xml")

#: Portable CREATE TABLE and ten rows of KUNDEN_STAMM.
CUSTOMERS_SQL = Path(__file__).with_name("customers-legacy.sql")

#: The legacy table's name as its DBA writes it.
LEGACY_TABLE = "KUNDEN_STAMM"


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer as the contact center sees it (bound to the ``Customer`` object)."""

    id: int
    name: str
    phone: str | None
    email: str | None
    priority: int | None
    account: str | None
    vip: bool | None


def legacy_statements() -> list[str]:
    """The statements of customers-legacy.sql, comments removed, in order."""
    lines = [
        line
        for line in CUSTOMERS_SQL.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("--")
    ]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]


def _table_exists(connection: Connection) -> bool:
    names = inspect(connection).get_table_names()
    return any(name.lower() == LEGACY_TABLE.lower() for name in names)


async def seed_legacy_customers(url: str) -> bool:
    """Create and fill KUNDEN_STAMM in the database at `url` unless it exists.

    True if the table was created now. Never touches an existing table.
    """
    target = parse_database_url(url)
    engine = create_engine(target)
    writer = engine
    if target.backend is Backend.SQLITE:
        writer = engine.execution_options(**{SQLITE_IMMEDIATE: True})
    try:
        await probe(engine, target)
        try:
            async with writer.begin() as connection:
                if await connection.run_sync(_table_exists):
                    return False
                for statement in legacy_statements():
                    await connection.exec_driver_sql(statement)
        except StorageError:
            raise
        except Exception as error:
            raise translate(error, target, table=LEGACY_TABLE) from error
        return True
    finally:
        await engine.dispose()
