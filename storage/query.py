"""Query conditions and ordering over attributes, turned into SQLAlchemy Core clauses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, true
from sqlalchemy.sql.elements import UnaryExpression

from storage.errors import InvalidQuery, InvalidValue
from storage.model import AttributeType
from storage.schema import MappedObject

#: The comparison operators a Condition may use.
OPERATORS: Final = frozenset({"=", "!=", "<", "<=", ">", ">=", "in", "like"})


@dataclass(frozen=True, slots=True)
class Condition:
    """``attribute op value``: one filter of a query (``Condition("ended_at", ">=", since)``).

    ``in`` takes a collection; ``like`` a SQL pattern with ``%`` and ``_``; comparing with
    None is allowed only for ``=`` and ``!=`` (IS NULL / IS NOT NULL).
    """

    attribute: str
    op: str
    value: object

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise InvalidQuery(
                f"unknown operator {self.op!r} in condition on {self.attribute} "
                f"(known: {', '.join(sorted(OPERATORS))})",
                attribute=self.attribute,
                op=self.op,
            )


def _plain(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def build_where(
    mapped: MappedObject,
    where: Mapping[str, object] | None,
    filters: Iterable[Condition] | None,
) -> ColumnElement[bool]:
    """The WHERE clause for equality matches (`where`) and conditions (`filters`), ANDed."""
    clauses: list[ColumnElement[bool]] = []
    for name, value in (where or {}).items():
        clauses.append(_clause(mapped, Condition(name, "=", value)))
    for condition in filters or ():
        if not isinstance(condition, Condition):
            raise InvalidQuery(f"filters must be Condition objects, not {condition!r:.60}")
        clauses.append(_clause(mapped, condition))
    return and_(true(), *clauses) if clauses else true()


def _column(mapped: MappedObject, name: str) -> tuple[Any, int]:
    if name not in mapped.table.c:
        known = ", ".join(attribute.name for attribute in mapped.spec.attributes)
        raise InvalidQuery(
            f"{mapped.spec.name} has no attribute {name!r} (attributes: {known})",
            object=mapped.spec.name,
            attribute=name,
        )
    index = [attribute.name for attribute in mapped.spec.attributes].index(name)
    return mapped.table.c[name], index


def _checked(mapped: MappedObject, index: int, value: object) -> object:
    try:
        return mapped.validators[index](_plain(value))
    except InvalidValue as error:
        raise InvalidQuery(f"in a query: {error.message}", **error.details) from error


def _clause(mapped: MappedObject, condition: Condition) -> ColumnElement[bool]:
    column, index = _column(mapped, condition.attribute)
    op, value = condition.op, condition.value
    attribute = mapped.spec.attributes[index]
    if value is None:
        if op == "=":
            return column.is_(None)  # type: ignore[no-any-return]
        if op == "!=":
            return column.is_not(None)  # type: ignore[no-any-return]
        raise InvalidQuery(f"{attribute.name} {op} None is not a valid condition")
    if op == "in":
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise InvalidQuery(f"{attribute.name} in ...: the value must be a collection")
        values = [_checked(mapped, index, item) for item in value]
        return column.in_(values)  # type: ignore[no-any-return]
    if op == "like":
        if attribute.type not in (AttributeType.STRING, AttributeType.TEXT):
            raise InvalidQuery(f"like needs a string attribute; {attribute.name} is not")
        if not isinstance(value, str):
            raise InvalidQuery(f"{attribute.name} like ...: the pattern must be a str")
        return column.like(value)  # type: ignore[no-any-return]
    if attribute.type is AttributeType.JSON:
        raise InvalidQuery(f"json attribute {attribute.name} can only be compared with None")
    checked = _checked(mapped, index, value)
    match op:
        case "=":
            return column == checked  # type: ignore[no-any-return]
        case "!=":
            return column != checked  # type: ignore[no-any-return]
        case "<":
            return column < checked  # type: ignore[no-any-return]
        case "<=":
            return column <= checked  # type: ignore[no-any-return]
        case ">":
            return column > checked  # type: ignore[no-any-return]
        case _:
            return column >= checked  # type: ignore[no-any-return]


def build_order(
    mapped: MappedObject, order_by: Sequence[str] | str | None
) -> list[UnaryExpression[Any]]:
    """ORDER BY terms: ``"name"`` ascending, ``"-name"`` descending; the key breaks ties.

    The key is always the last term, so paging with limit/offset never skips or repeats a row.
    """
    if isinstance(order_by, str):
        order_by = [order_by]
    terms: list[UnaryExpression[Any]] = []
    seen: set[str] = set()
    for item in order_by or ():
        descending = item.startswith("-")
        name = item.lstrip("+-")
        column, index = _column(mapped, name)
        if mapped.spec.attributes[index].type is AttributeType.JSON:
            raise InvalidQuery(f"cannot order by json attribute {name}")
        terms.append(column.desc() if descending else column.asc())
        seen.add(name)
    key = mapped.spec.key.name
    if key not in seen:
        terms.append(mapped.table.c[key].asc())
    return terms


def check_paging(limit: int | None, offset: int) -> None:
    """Limit and offset must be whole numbers >= 0."""
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InvalidQuery(f"limit must be a whole number >= 0, not {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidQuery(f"offset must be a whole number >= 0, not {offset!r}")

