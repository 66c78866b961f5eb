"""From business objects to tables: create and migrate managed tables, verify legacy ones.

Everything here runs inside one transaction on a synchronous connection (through
`AsyncConnection.run_sync`), because SQLAlchemy's inspector is synchronous.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
)
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection, Inspector
from sqlalchemy.engine.interfaces import ReflectedColumn
from sqlalchemy.schema import CreateColumn
from sqlalchemy.types import TypeEngine

from storage.engine import Backend
from storage.errors import InvalidValue, MigrationRefused, ModelError
from storage.model import AttributeSpec, AttributeType, BusinessObject
from storage.sqltypes import IntegerBoolean, JsonText, UtcDateTime, column_type

#: The bookkeeping table: one row per managed object, holding the column set last applied.
SCHEMA_TABLE = "caruso_schema"

Validator = Callable[[object], object]


@dataclass(frozen=True)
class MappedObject:
    """A business object ready for statements: its Table and a value check per attribute."""

    spec: BusinessObject
    table: Table
    columns: tuple[Column[Any], ...]
    validators: tuple[Validator, ...]

    @property
    def key_column(self) -> Column[Any]:
        """The column of the key attribute."""
        return self.table.c[self.spec.key.name]


def schema_table(metadata: MetaData) -> Table:
    """The ``caruso_schema`` table's definition."""
    return Table(
        SCHEMA_TABLE,
        metadata,
        Column("object_name", String(128), primary_key=True),
        Column("table_name", String(128), nullable=False),
        Column("model_name", String(128), nullable=False),
        Column("definition", Text(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    )


# --- values -----------------------------------------------------------------------------


def make_validator(
    spec: BusinessObject, attribute: AttributeSpec, max_length: int | None
) -> Validator:
    """A check run on every value before it reaches the database, alike on every backend.

    SQLite would store a string in an integer column and PostgreSQL would refuse it; checking
    here gives one behaviour and one clear error everywhere.
    """
    where = f"{spec.name}.{attribute.name}"
    nullable = attribute.nullable or attribute.generated

    def refuse(value: object, expected: str) -> InvalidValue:
        return InvalidValue(
            f"{where} must be {expected}, not {type(value).__name__} {value!r:.60}",
            object=spec.name,
            attribute=attribute.name,
        )

    # The exact Python type that needs no further thought (the common case, kept cheap
    # because every row of a batch passes through here).
    exact: type | None = {
        AttributeType.INTEGER: int,
        AttributeType.FLOAT: float,
        AttributeType.BOOLEAN: bool,
    }.get(attribute.type)
    is_text = attribute.type in (AttributeType.STRING, AttributeType.TEXT)

    def check(value: object) -> object:
        if value is None:
            if not nullable:
                raise InvalidValue(
                    f"{where} must not be None", object=spec.name, attribute=attribute.name
                )
            return None
        kind = type(value)
        if kind is exact:
            return value
        if is_text and isinstance(value, str) and (max_length is None or len(value) <= max_length):
            return value
        match attribute.type:
            case AttributeType.STRING | AttributeType.TEXT:
                if not isinstance(value, str):
                    raise refuse(value, "a str")
                if max_length is not None and len(value) > max_length:
                    raise InvalidValue(
                        f"{where} is {len(value)} characters long; at most {max_length} fit",
                        object=spec.name,
                        attribute=attribute.name,
                    )
            case AttributeType.INTEGER:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise refuse(value, "an int")
            case AttributeType.FLOAT:
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise refuse(value, "a float")
                return float(value)
            case AttributeType.BOOLEAN:
                if not isinstance(value, bool):
                    raise refuse(value, "a bool")
            case AttributeType.DATETIME:
                if not isinstance(value, datetime):
                    raise refuse(value, "a datetime")
                if value.tzinfo is None or value.utcoffset() is None:
                    raise InvalidValue(
                        f"{where} must be a tz-aware datetime (got naive {value.isoformat()})",
                        object=spec.name,
                        attribute=attribute.name,
                    )
            case AttributeType.DATE:
                if not isinstance(value, date) or isinstance(value, datetime):
                    raise refuse(value, "a date")
            case AttributeType.JSON:
                pass
        return value

    return check


def read_converter(attribute: AttributeSpec) -> Callable[[Any], Any] | None:
    """Normalises what a driver hands back (MariaDB's 0/1 booleans, Decimal integers)."""
    match attribute.type:
        case AttributeType.BOOLEAN:
            return lambda value: value if value is None else bool(value)
        case AttributeType.INTEGER:
            return lambda value: value if value is None or type(value) is int else int(value)
        case AttributeType.FLOAT:
            return lambda value: value if value is None or type(value) is float else float(value)
        case AttributeType.DATETIME:
            return lambda value: (
                value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)
            )
        case _:
            return None


# --- managed tables ---------------------------------------------------------------------


def managed_table(spec: BusinessObject, metadata: MetaData) -> MappedObject:
    """The Table Caruso creates for a managed object (columns keyed by attribute name)."""
    columns = [
        Column(
            attribute.column,
            column_type(attribute),
            key=attribute.name,
            primary_key=attribute.key,
            autoincrement=attribute.generated,
            nullable=attribute.nullable,
        )
        for attribute in spec.attributes
    ]
    table = Table(spec.table, metadata, *columns, schema=spec.schema)
    for index in spec.indexes:
        Index(index.name, *(table.c[name] for name in index.attributes), unique=index.unique)
    validators = tuple(
        make_validator(spec, attribute, attribute.effective_length) for attribute in spec.attributes
    )
    return MappedObject(spec, table, tuple(table.c[a.name] for a in spec.attributes), validators)


def _definition(spec: BusinessObject) -> dict[str, Any]:
    """What caruso_schema records about a managed object: its column set."""
    return {
        "table": spec.table,
        "schema": spec.schema,
        "columns": {
            attribute.column.lower(): _column_record(attribute) for attribute in spec.attributes
        },
    }


def _column_record(attribute: AttributeSpec) -> dict[str, Any]:
    return {
        "column": attribute.column,
        "attribute": attribute.name,
        "type": attribute.type.value,
        "length": attribute.effective_length,
        "nullable": attribute.nullable,
        "key": attribute.key,
        "generated": attribute.generated,
        "retired": False,
    }


def _shape(record: dict[str, Any]) -> str:
    """A column record as people read it: ``string(40) NOT NULL``."""
    text = str(record["type"]) + (f"({record['length']})" if record.get("length") else "")
    text += "" if record["nullable"] else " NOT NULL"
    if record.get("key"):
        text += " key" + (" generated" if record.get("generated") else "")
    return text


_MANUAL = (
    "Caruso changes a managed table only by adding nullable columns. Either keep the old "
    "definition and add a new attribute with a new column, or change the table by hand and "
    "then delete the object's row from caruso_schema so Caruso adopts the table as it is."
)


class ManagedMigrator:
    """Creates missing managed tables and adds missing nullable columns; refuses the rest."""

    def __init__(self, connection: Connection, model_names: dict[str, str]) -> None:
        self._connection = connection
        self._model_names = model_names
        self._bookkeeping = schema_table(MetaData())

    def migrate(self, mapped: Sequence[MappedObject]) -> list[str]:
        """Bring every managed table in line with its model; the list says what was done."""
        self._bookkeeping.create(self._connection, checkfirst=True)
        rows = self._connection.execute(
            select(self._bookkeeping.c.object_name, self._bookkeeping.c.definition)
        ).all()
        recorded = {name: json.loads(definition) for name, definition in rows}
        actions: list[str] = []
        for item in mapped:
            actions.extend(self._migrate_one(item, recorded.get(item.spec.name)))
        return actions

    def _migrate_one(self, item: MappedObject, recorded: dict[str, Any] | None) -> list[str]:
        spec = item.spec
        inspector = inspect(self._connection)
        if not inspector.has_table(spec.table, schema=spec.schema):
            item.table.create(self._connection)
            self._record(spec, _definition(spec))
            return [f"created table {spec.table} for {spec.name}"]
        existing = {
            column["name"].lower(): column
            for column in inspector.get_columns(spec.table, schema=spec.schema)
        }
        previous: dict[str, dict[str, Any]] = dict(recorded["columns"]) if recorded else {}
        if recorded is not None and recorded["table"].lower() != spec.table.lower():
            raise self._refuse(spec, f"its table was {recorded['table']}, now {spec.table}")
        self._check_key(spec, previous, inspector)
        actions: list[str] = []
        new_definition = _definition(spec)
        for attribute in spec.attributes:
            name = attribute.column.lower()
            before = previous.get(name)
            wanted = _column_record(attribute)
            if before is not None and name in existing:
                self._compare(spec, attribute, before, wanted)
                continue
            if name in existing:
                # Present in the table but not recorded: adopt it as it is.
                continue
            if not attribute.nullable:
                raise self._refuse(
                    spec,
                    f"new attribute {attribute.name} (column {attribute.column}) is NOT NULL; "
                    "existing rows would have no value for it. Declare it nullable",
                )
            self._add_column(item, attribute)
            actions.append(f"added column {attribute.column} to {spec.table} for {spec.name}")
        for name, before in previous.items():
            if name in new_definition["columns"]:
                continue
            if not before["nullable"] and not before.get("retired"):
                raise self._refuse(
                    spec,
                    f"attribute {before['attribute']} (column {before['column']}, NOT NULL) was "
                    "removed from the model; inserts would fail without a value for it. "
                    "Keep the attribute, or drop the column by hand",
                )
            if name in existing:
                # Kept (data is never dropped) and remembered, so re-adding it is recognised.
                new_definition["columns"][name] = {**before, "retired": True}
        known = {
            str(found["name"]).lower()
            for found in inspector.get_indexes(spec.table, schema=spec.schema)
            if found.get("name")
        }
        for index in item.table.indexes:
            if index.name is not None and str(index.name).lower() not in known:
                index.create(self._connection)
                actions.append(f"created index {index.name} on {spec.table}")
        self._record(spec, new_definition)
        return actions

    def _check_key(
        self, spec: BusinessObject, previous: dict[str, dict[str, Any]], inspector: Inspector
    ) -> None:
        key = spec.key
        if previous:
            old_keys = [record for record in previous.values() if record.get("key")]
            old = old_keys[0] if old_keys else None
            if old is None or old["column"].lower() != key.column.lower():
                old_name = old["column"] if old else "none"
                raise self._refuse(
                    spec,
                    f"its key column changed from {old_name} to {key.column} (a dropped key)",
                )
            return
        constraint = inspector.get_pk_constraint(spec.table, schema=spec.schema)
        primary = [str(name).lower() for name in constraint.get("constrained_columns") or []]
        if primary != [key.column.lower()]:
            raise self._refuse(
                spec,
                f"the existing table's primary key is ({', '.join(primary) or 'none'}), "
                f"not the key attribute's column {key.column}",
            )

    def _compare(
        self,
        spec: BusinessObject,
        attribute: AttributeSpec,
        before: dict[str, Any],
        wanted: dict[str, Any],
    ) -> None:
        fields = ("type", "length", "nullable", "key", "generated")
        if before.get("retired") or any(before.get(f) != wanted[f] for f in fields):
            if before.get("retired") and all(before.get(f) == wanted[f] for f in fields):
                return
            raise self._refuse(
                spec,
                f"attribute {attribute.name} (column {attribute.column}) changed from "
                f"{_shape(before)} to {_shape(wanted)}",
            )

    def _add_column(self, item: MappedObject, attribute: AttributeSpec) -> None:
        dialect = self._connection.dialect
        table = dialect.identifier_preparer.format_table(item.table)
        column = CreateColumn(item.table.c[attribute.name]).compile(dialect=dialect)
        self._connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column}")

    def _record(self, spec: BusinessObject, definition: dict[str, Any]) -> None:
        table = self._bookkeeping
        self._connection.execute(delete(table).where(table.c.object_name == spec.name))
        self._connection.execute(
            insert(table).values(
                object_name=spec.name,
                table_name=spec.table,
                model_name=self._model_names.get(spec.name, ""),
                definition=json.dumps(definition, sort_keys=True),
                updated_at=datetime.now(UTC),
            )
        )

    @staticmethod
    def _refuse(spec: BusinessObject, change: str) -> MigrationRefused:
        where = f"{spec.file}:{spec.line}: " if spec.file else ""
        return MigrationRefused(
            f"{where}cannot migrate table {spec.table} of object {spec.name} safely: "
            f"{change}. {_MANUAL}",
            object=spec.name,
            table=spec.table,
            change=change,
        )


# --- legacy tables ----------------------------------------------------------------------


def _resolve(wanted: str, available: Iterable[str]) -> str | None:
    """The actual name for `wanted`: exact, else the one case-insensitive match.

    An unquoted ``CREATE TABLE KUNDEN_STAMM`` is ``kunden_stamm`` on PostgreSQL and
    ``KUNDEN_STAMM`` on MariaDB; an integrator writes the name as their DBA documents it.
    """
    names = list(available)
    if wanted in names:
        return wanted
    matches = [name for name in names if name.lower() == wanted.lower()]
    return matches[0] if len(matches) == 1 else None


def _compatible(attribute_type: AttributeType, found: TypeEngine[Any], backend: Backend) -> bool:
    """Whether a legacy column can hold this attribute's values without surprises."""
    if isinstance(found, sqltypes.NullType):
        return True  # SQLite columns may have no declared type at all
    textual_dates = backend is Backend.SQLITE and isinstance(found, sqltypes.String)
    match attribute_type:
        case AttributeType.STRING | AttributeType.TEXT:
            return isinstance(found, sqltypes.String)
        case AttributeType.INTEGER:
            if isinstance(found, sqltypes.Integer):
                return True
            return (
                isinstance(found, sqltypes.Numeric)
                and not isinstance(found, sqltypes.Float)
                and not found.scale
            )
        case AttributeType.FLOAT:
            return isinstance(found, sqltypes.Numeric | sqltypes.Integer)
        case AttributeType.BOOLEAN:
            return isinstance(found, sqltypes.Boolean | sqltypes.Integer)
        case AttributeType.DATETIME:
            return isinstance(found, sqltypes.DateTime) or textual_dates
        case AttributeType.DATE:
            return isinstance(found, sqltypes.Date | sqltypes.DateTime) or textual_dates
        case AttributeType.JSON:
            return isinstance(found, sqltypes.JSON | sqltypes.String)


def _generates_key(column: ReflectedColumn, primary: list[str], backend: Backend) -> bool:
    """Whether the legacy database assigns this key column's value on insert."""
    if backend is Backend.SQLITE:
        # Only a lone INTEGER PRIMARY KEY aliases SQLite's rowid.
        declared = str(column["type"]).upper()
        return primary == [column["name"]] and declared == "INTEGER"
    if backend is Backend.POSTGRESQL:
        default = str(column.get("default") or "")
        return bool(column.get("identity")) or "nextval(" in default
    return column.get("autoincrement") is True


def _legacy_type(attribute: AttributeSpec, found: TypeEngine[Any]) -> TypeEngine[Any]:
    """Our type adjusted to the legacy column (plain timestamps, JSON kept as text)."""
    if attribute.type is AttributeType.DATETIME and isinstance(found, DateTime):
        return UtcDateTime(aware_column=bool(found.timezone))
    if attribute.type is AttributeType.JSON and not isinstance(found, JSON):
        return JsonText()
    if attribute.type is AttributeType.BOOLEAN and not isinstance(found, sqltypes.Boolean):
        return IntegerBoolean()
    if attribute.type is AttributeType.STRING:
        return String()
    return column_type(attribute)


def legacy_table(
    connection: Connection, spec: BusinessObject, metadata: MetaData, backend: Backend
) -> MappedObject:
    """Verify a legacy table against its object and map it; ModelError naming what is wrong."""
    inspector = inspect(connection)
    actual_table = _resolve(spec.table, inspector.get_table_names(schema=spec.schema))
    if actual_table is None:
        views = inspector.get_view_names(schema=spec.schema)
        actual_table = _resolve(spec.table, views)
    if actual_table is None:
        where = f" in schema {spec.schema}" if spec.schema else ""
        raise spec.located_error(
            f"object {spec.name}: legacy table {spec.table}{where} does not exist "
            "(managed=\"false\" tables are never created; create it or fix the table name)",
            table=spec.table,
        )
    found_columns = inspector.get_columns(actual_table, schema=spec.schema)
    by_name = {str(column["name"]): column for column in found_columns}
    primary = list(inspector.get_pk_constraint(actual_table, schema=spec.schema).get(
        "constrained_columns"
    ) or [])
    problems: list[ModelError] = []
    columns: list[Column[Any]] = []
    validators: list[Validator] = []
    for attribute in spec.attributes:
        actual_column = _resolve(attribute.column, by_name)
        if actual_column is None:
            problems.append(
                spec.located_error(
                    f"object {spec.name}: attribute {attribute.name}: legacy table "
                    f"{actual_table} has no column {attribute.column}",
                    line=attribute.line,
                    attribute=attribute.name,
                    table=actual_table,
                    column=attribute.column,
                )
            )
            continue
        found = by_name[actual_column]
        found_type: TypeEngine[Any] = found["type"]
        if not _compatible(attribute.type, found_type, backend):
            problems.append(
                spec.located_error(
                    f"object {spec.name}: attribute {attribute.name} is {attribute.type.value} "
                    f"but column {actual_column} of legacy table {actual_table} is {found_type}",
                    line=attribute.line,
                    attribute=attribute.name,
                    table=actual_table,
                    column=actual_column,
                )
            )
            continue
        if attribute.generated and not _generates_key(found, primary, backend):
            problems.append(
                spec.located_error(
                    f"object {spec.name}: attribute {attribute.name} asks for generated=\"true\" "
                    f"but legacy table {actual_table} does not generate column {actual_column} "
                    "(no auto-increment, identity or sequence default); remove generated",
                    line=attribute.line,
                    attribute=attribute.name,
                    table=actual_table,
                    column=actual_column,
                )
            )
            continue
        columns.append(
            Column(
                actual_column,
                _legacy_type(attribute, found_type),
                key=attribute.name,
                primary_key=attribute.key,
                autoincrement=attribute.generated,
                nullable=attribute.nullable,
            )
        )
        length = getattr(found_type, "length", None)
        is_string = attribute.type is AttributeType.STRING
        max_length = length if isinstance(length, int) and is_string else None
        validators.append(make_validator(spec, attribute, max_length))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        # Every mismatch at once, one per line, each with its own file:line.
        raise ModelError(
            "\n".join(problem.message for problem in problems),
            object=spec.name,
            table=actual_table,
            problems=[problem.message for problem in problems],
        )
    table = Table(actual_table, metadata, *columns, schema=spec.schema)
    mapped_columns = tuple(table.c[attribute.name] for attribute in spec.attributes)
    return MappedObject(spec, table, mapped_columns, tuple(validators))
