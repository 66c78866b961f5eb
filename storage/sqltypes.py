"""Column types for attribute types, chosen so values round-trip alike on every backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Double, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from storage.model import AttributeSpec, AttributeType


class UtcDateTime(TypeDecorator[datetime]):
    """Stores tz-aware datetimes as UTC and always returns them tz-aware in UTC.

    PostgreSQL gets ``timestamptz`` (unless a legacy column is a plain ``timestamp``);
    MariaDB a microsecond ``DATETIME(6)`` holding UTC; SQLite its text form of UTC.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self, aware_column: bool = True) -> None:
        super().__init__()
        # False for a legacy PostgreSQL `timestamp without time zone`: it gets naive UTC.
        self.aware_column = aware_column

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """The backend's column type (see the class docstring)."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=self.aware_column))
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """UTC, aware for timestamptz and naive everywhere else; naive input is refused."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # Refused rather than guessed: a naive datetime's zone is unknowable here.
            raise ValueError(f"naive datetime {value.isoformat()} (storage needs tz-aware)")
        value = value.astimezone(UTC)
        if dialect.name == "postgresql" and self.aware_column:
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """A tz-aware UTC datetime, whatever the driver handed back."""
        if value is None:
            return None
        # A legacy column can hand back text; SQLite's driver does for some declarations.
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


class JsonText(TypeDecorator[object]):
    """JSON kept in a text column: for legacy tables whose column is not a native JSON type."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: object, dialect: Dialect) -> str | None:
        """Compact JSON text (None stays SQL NULL)."""
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> object:
        """The decoded JSON value."""
        if value is None or not isinstance(value, str | bytes):
            return value
        return json.loads(value)


class IntegerBoolean(TypeDecorator[bool]):
    """A boolean kept in a legacy integer column (0/1), as many older schemas do."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: bool | None, dialect: Dialect) -> int | None:
        """1 or 0 (None stays SQL NULL)."""
        return None if value is None else int(bool(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> bool | None:
        """Any non-zero value is True."""
        return None if value is None else bool(value)


def column_type(attribute: AttributeSpec) -> TypeEngine[Any]:
    """The column type Caruso creates (and binds through) for a managed attribute."""
    match attribute.type:
        case AttributeType.STRING:
            return String(attribute.effective_length)
        case AttributeType.TEXT:
            # MariaDB's TEXT stops at 64 KiB; `text` promises no practical limit.
            return Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
        case AttributeType.INTEGER:
            # SQLite only makes a generated (rowid) key of a column declared exactly INTEGER.
            return BigInteger().with_variant(Integer(), "sqlite")
        case AttributeType.FLOAT:
            return Double()
        case AttributeType.BOOLEAN:
            return Boolean()
        case AttributeType.DATETIME:
            return UtcDateTime()
        case AttributeType.DATE:
            return Date()
        case AttributeType.JSON:
            # SQL NULL for None, so `where={"extra": None}` finds it.
            return JSON(none_as_null=True)
    raise AssertionError(attribute.type)  # pragma: no cover - the match is exhaustive
