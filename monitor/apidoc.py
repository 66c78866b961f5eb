"""How API handlers describe themselves for the OpenAPI document (`monitor/openapi.py`).

A handler carries its description next to its code: `@operation(summary, tags=..., query=...,
body=..., returns=...)`. Schemas are JSON Schema (OpenAPI 3.1); `Components.schema_of` makes
them from the dataclasses handlers serialize, so the document follows the code.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

Schema = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])

ERROR = {"$ref": "#/components/schemas/Error"}


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter (path parameters come from the route pattern)."""

    name: str
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says about one route."""

    summary: str
    tags: tuple[str, ...]
    description: str = ""
    query: tuple[Param, ...] = ()
    path: Mapping[str, str] = field(default_factory=dict)
    body: object = None  # a dataclass type or a JSON Schema
    returns: object = None  # the 200/201 JSON answer: a dataclass type or a JSON Schema
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses with the same answer
    produces: Mapping[str, Schema] = field(default_factory=dict)  # other media types
    errors: tuple[int, ...] = ()


def operation(summary: str, *, tags: Sequence[str], **details: Any) -> Callable[[F], F]:
    """Describe an API handler for the OpenAPI document."""
    described = Operation(summary, tuple(tags), **details)

    def mark(handler: F) -> F:
        handler.__openapi__ = described  # type: ignore[attr-defined]
        return handler

    return mark


def described(handler: object) -> Operation | None:
    """The description a handler carries, if any."""
    found = getattr(handler, "__openapi__", None)
    return found if isinstance(found, Operation) else None


# -- schemas ----------------------------------------------------------------------------------


def nullable(schema: object) -> Schema:
    """`schema` (a JSON Schema or a Python type) or null."""
    if not isinstance(schema, dict):
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= {"type", "format", "description", "minimum",
                                                 "maximum", "maxLength", "minLength"}:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: Sequence[str] = (), **properties: object) -> Schema:
    """An object schema."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: object) -> Schema:
    """An array schema."""
    return {"type": "array", "items": items}


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}


class Components:
    """The document's reusable schemas, filled as dataclasses are met."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {
            "Error": obj(
                ["error", "message", "details"],
                error={"type": "string", "description": "stable kebab-case code"},
                message=STRING,
                details={"type": "object"},
            )
        }

    def schema_of(self, tp: object) -> Schema:
        """A JSON Schema for a Python type, as `monitor.api.to_json` serializes it."""
        if isinstance(tp, dict):
            return {key: self._resolve(value) for key, value in tp.items()}
        if tp is None or tp is type(None):
            return {"type": "null"}
        if tp is bool:
            return dict(BOOLEAN)
        if tp is int:
            return dict(INTEGER)
        if tp is float:
            return dict(NUMBER)
        if tp is str:
            return dict(STRING)
        if tp is datetime:
            return dict(DATE_TIME)
        if tp is date:
            return {"type": "string", "format": "date"}
        if tp is object or tp is Any:
            return {}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self._dataclass(tp)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            present = [a for a in args if a is not type(None)]
            inner = (
                self.schema_of(present[0])
                if len(present) == 1
                else {"anyOf": [self.schema_of(a) for a in present]}
            )
            return nullable(inner) if len(present) < len(args) else inner
        if origin in (list, set, frozenset, tuple, Sequence) or (
            isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str
        ):
            item = args[0] if args else object
            return array(self.schema_of(item))
        if origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping)):
            value = args[1] if len(args) == 2 else object
            return {"type": "object", "additionalProperties": self.schema_of(value)}
        raise TypeError(f"no JSON Schema for {tp!r}")

    def _resolve(self, value: object) -> object:
        """Inside a hand-written schema, a Python type stands for its generated schema."""
        if isinstance(value, type):
            return self.schema_of(value)
        if isinstance(value, dict):
            return {key: self._resolve(v) for key, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        return value

    def _dataclass(self, cls: type) -> Schema:
        name = cls.__name__
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive types end here
            hints = typing.get_type_hints(cls)
            props = {
                f.name: self.schema_of(hints[f.name])
                for f in dataclasses.fields(cls)
                if not f.name.startswith("_")
            }
            schema = obj(list(props), **props)
            if cls.__doc__:
                schema["description"] = " ".join(cls.__doc__.split())
            self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}


