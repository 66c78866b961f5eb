"""JSON codecs derived from type hints: how arguments and results cross the HTTP boundary.

A codec turns a Python value of a declared type into JSON-able data and back, checking the
shape on the way in, so a remote answer or a script's arguments are validated, never trusted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeAlias, TypeVar, Union, get_args, get_origin

T = TypeVar("T")

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None


class CodecError(ValueError):
    """A value does not have the declared shape; `path` says where (e.g. `result[2].email`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


class Codec(ABC, Generic[T]):
    """Encodes values of one type to JSON-able data and decodes (and checks) them back."""

    description: str = "value"

    @abstractmethod
    def encode(self, value: T, path: str = "value") -> JSONValue:
        """Turn a Python value into JSON-able data."""

    @abstractmethod
    def decode(self, data: object, path: str = "value") -> T:
        """Check JSON data and turn it into a Python value; `CodecError` if it does not fit."""


def _kind(data: object) -> str:
    """A short name for a JSON value's type, for error messages."""
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, int | float):
        return "number"
    if isinstance(data, str):
        return "string"
    if isinstance(data, list | tuple):
        return "array"
    if isinstance(data, dict):
        return "object"
    return type(data).__name__


class AnyCodec(Codec[Any]):
    """Passes JSON data through unchanged, checking only that it is JSON."""

    description = "any"

    def encode(self, value: Any, path: str = "value") -> JSONValue:
        return _plain_json(value, path)

    def decode(self, data: object, path: str = "value") -> Any:
        return _plain_json(data, path)


def _plain_json(value: object, path: str) -> JSONValue:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError(path, "numbers must be finite")
        return value
    if isinstance(value, list | tuple):
        return [_plain_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(path, "object keys must be strings")
            out[key] = _plain_json(item, f"{path}.{key}")
        return out
    raise CodecError(path, f"{type(value).__name__} is not JSON data")


class StrCodec(Codec[str]):
    """A string."""

    description = "string"

    def encode(self, value: str, path: str = "value") -> JSONValue:
        if not isinstance(value, str):
            raise CodecError(path, f"expected a string, got {type(value).__name__}")
        return value

    def decode(self, data: object, path: str = "value") -> str:
        if not isinstance(data, str):
            raise CodecError(path, f"expected a string, got {_kind(data)}")
        return data


class IntCodec(Codec[int]):
    """An integer (booleans are refused although Python counts them as ints)."""

    description = "integer"

    def encode(self, value: int, path: str = "value") -> JSONValue:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError(path, f"expected an integer, got {type(value).__name__}")
        return value

    def decode(self, data: object, path: str = "value") -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise CodecError(path, f"expected an integer, got {_kind(data)}")
        return data


class FloatCodec(Codec[float]):
    """A finite number; integers are accepted."""

    description = "number"

    def encode(self, value: float, path: str = "value") -> JSONValue:
        return self.decode(value, path)

    def decode(self, data: object, path: str = "value") -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise CodecError(path, f"expected a number, got {_kind(data)}")
        number = float(data)
        if not math.isfinite(number):
            raise CodecError(path, "numbers must be finite")
        return number


class BoolCodec(Codec[bool]):
    """A boolean."""

    description = "boolean"

    def encode(self, value: bool, path: str = "value") -> JSONValue:
        return self.decode(value, path)

    def decode(self, data: object, path: str = "value") -> bool:
        if not isinstance(data, bool):
            raise CodecError(path, f"expected a boolean, got {_kind(data)}")
        return data


class NoneCodec(Codec[None]):
    """Only null (a method that returns nothing)."""

    description = "null"

    def encode(self, value: None, path: str = "value") -> JSONValue:
        return None

    def decode(self, data: object, path: str = "value") -> None:
        if data is not None:
            raise CodecError(path, f"expected null, got {_kind(data)}")


class DateTimeCodec(Codec[dt.datetime]):
    """A timezone-aware datetime as ISO 8601 text with its offset."""

    description = "datetime"

    def encode(self, value: dt.datetime, path: str = "value") -> JSONValue:
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise CodecError(path, "expected a timezone-aware datetime")
        return value.isoformat()

    def decode(self, data: object, path: str = "value") -> dt.datetime:
        if not isinstance(data, str):
            raise CodecError(path, f"expected an ISO 8601 datetime string, got {_kind(data)}")
        try:
            value = dt.datetime.fromisoformat(data)
        except ValueError:
            raise CodecError(path, f"not an ISO 8601 datetime: {data[:40]!r}") from None
        if value.tzinfo is None:
            raise CodecError(path, "the datetime needs a UTC offset (e.g. 'Z' or '+00:00')")
        return value


class DateCodec(Codec[dt.date]):
    """A calendar date as ISO 8601 text (YYYY-MM-DD)."""

    description = "date"

    def encode(self, value: dt.date, path: str = "value") -> JSONValue:
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise CodecError(path, "expected a date")
        return value.isoformat()

    def decode(self, data: object, path: str = "value") -> dt.date:
        if not isinstance(data, str):
            raise CodecError(path, f"expected an ISO 8601 date string, got {_kind(data)}")
        try:
            return dt.date.fromisoformat(data)
        except ValueError:
            raise CodecError(path, f"not an ISO 8601 date: {data[:40]!r}") from None


class EnumCodec(Codec[enum.Enum]):
    """An Enum member as its value."""

    def __init__(self, enum_type: type[enum.Enum]) -> None:
        self.enum_type = enum_type
        self.description = enum_type.__name__

    def encode(self, value: enum.Enum, path: str = "value") -> JSONValue:
        if not isinstance(value, self.enum_type):
            raise CodecError(path, f"expected a {self.enum_type.__name__}")
        return _plain_json(value.value, path)

    def decode(self, data: object, path: str = "value") -> enum.Enum:
        try:
            return self.enum_type(data)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in self.enum_type)
            raise CodecError(path, f"expected one of {allowed}") from None


class OptionalCodec(Codec[Any]):
    """A value or null."""

    def __init__(self, inner: Codec[Any]) -> None:
        self.inner = inner
        self.description = f"{inner.description} or null"

    def encode(self, value: Any, path: str = "value") -> JSONValue:
        return None if value is None else self.inner.encode(value, path)

    def decode(self, data: object, path: str = "value") -> Any:
        return None if data is None else self.inner.decode(data, path)


class ListCodec(Codec[Any]):
    """An array whose items all share one codec."""

    def __init__(self, item: Codec[Any], *, max_items: int = 100_000) -> None:
        self.item = item
        self.max_items = max_items
        self.description = f"list of {item.description}"

    def encode(self, value: Sequence[Any], path: str = "value") -> JSONValue:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise CodecError(path, f"expected a sequence, got {type(value).__name__}")
        return [self.item.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def decode(self, data: object, path: str = "value") -> list[Any]:
        if not isinstance(data, list):
            raise CodecError(path, f"expected an array, got {_kind(data)}")
        if len(data) > self.max_items:
            raise CodecError(path, f"more than {self.max_items} items")
        return [self.item.decode(v, f"{path}[{i}]") for i, v in enumerate(data)]


class DictCodec(Codec[dict[str, Any]]):
    """An object with string keys whose values all share one codec."""

    def __init__(self, value: Codec[Any]) -> None:
        self.value = value
        self.description = f"map of {value.description}"

    def encode(self, value: dict[str, Any], path: str = "value") -> JSONValue:
        if not isinstance(value, Mapping):
            raise CodecError(path, f"expected a mapping, got {type(value).__name__}")
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(path, "mapping keys must be strings")
            out[key] = self.value.encode(item, f"{path}.{key}")
        return out

    def decode(self, data: object, path: str = "value") -> dict[str, Any]:
        if not isinstance(data, dict):
            raise CodecError(path, f"expected an object, got {_kind(data)}")
        return {str(k): self.value.decode(v, f"{path}.{k}") for k, v in data.items()}


class DataclassCodec(Codec[Any]):
    """A dataclass as an object with one member per field.

    Unknown members are ignored when decoding, so a remote service may add fields to its
    answers in a later version without breaking older Caruso releases.
    """

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.description = cls.__name__
        hints = typing.get_type_hints(cls)
        self.fields: tuple[tuple[str, Codec[Any], bool], ...] = tuple(
            (
                f.name,
                codec_for(hints[f.name]),
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            )
            for f in dataclasses.fields(cls)
            if f.init
        )

    def encode(self, value: Any, path: str = "value") -> JSONValue:
        if not isinstance(value, self.cls):
            raise CodecError(path, f"expected a {self.cls.__name__}, got {type(value).__name__}")
        return {
            name: codec.encode(getattr(value, name), f"{path}.{name}")
            for name, codec, _ in self.fields
        }

    def decode(self, data: object, path: str = "value") -> Any:
        if not isinstance(data, dict):
            raise CodecError(path, f"expected an object ({self.cls.__name__}), got {_kind(data)}")
        kwargs: dict[str, Any] = {}
        for name, codec, required in self.fields:
            if name in data:
                kwargs[name] = codec.decode(data[name], f"{path}.{name}")
            elif required:
                raise CodecError(f"{path}.{name}", "missing")
        return self.cls(**kwargs)


_SIMPLE: dict[object, Codec[Any]] = {
    str: StrCodec(),
    int: IntCodec(),
    float: FloatCodec(),
    bool: BoolCodec(),
    type(None): NoneCodec(),
    None: NoneCodec(),
    dt.datetime: DateTimeCodec(),
    dt.date: DateCodec(),
    Any: AnyCodec(),
    object: AnyCodec(),
}


def codec_for(tp: object) -> Codec[Any]:
    """The codec for a type hint; `TypeError` for a type that has no JSON form here.

    Supported: str, int, float, bool, None, datetime (aware), date, Enum, dataclasses,
    `X | None`, `list[X]`/`Sequence[X]`, `dict[str, X]`/`Mapping[str, X]`, and `Any`/`object`.
    """
    simple = _SIMPLE.get(tp)
    if simple is not None:
        return simple
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        if len(members) == 1 and len(args) == 2:
            return OptionalCodec(codec_for(members[0]))
        raise TypeError(f"unions other than 'X | None' have no JSON codec: {tp!r}")
    if origin in (list, Sequence, tuple) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"only variable-length tuples (tuple[X, ...]) are supported: {tp!r}")
        return ListCodec(codec_for(args[0]))
    if origin in (dict, Mapping) and len(args) == 2:
        if args[0] is not str:
            raise TypeError(f"mappings need string keys to travel as JSON: {tp!r}")
        return DictCodec(codec_for(args[1]))
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return EnumCodec(tp)
        if dataclasses.is_dataclass(tp):
            return DataclassCodec(tp)
    raise TypeError(f"no JSON codec for {tp!r}")
