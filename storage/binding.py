"""Binding a dataclass to a business object: checked once, then cheap conversions both ways."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from storage.errors import InvalidValue
from storage.model import AttributeType
from storage.schema import MappedObject, read_converter

T = TypeVar("T")

# The Python types a field may be annotated with, per attribute type (None: anything goes).
_PYTHON_TYPES: dict[AttributeType, tuple[type, ...] | None] = {
    AttributeType.STRING: (str,),
    AttributeType.TEXT: (str,),
    AttributeType.INTEGER: (int,),
    AttributeType.FLOAT: (float, int),
    AttributeType.BOOLEAN: (bool,),
    AttributeType.DATETIME: (datetime,),
    AttributeType.DATE: (date,),
    AttributeType.JSON: None,
}


def _annotation_classes(annotation: object) -> tuple[list[type], bool]:
    """The classes an annotation allows (without None), and whether it is open (Any etc.)."""
    if annotation is Any or annotation is object:
        return [], True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        classes: list[type] = []
        open_ended = False
        for member in typing.get_args(annotation):
            if member is type(None):
                continue
            member_classes, member_open = _annotation_classes(member)
            classes.extend(member_classes)
            open_ended = open_ended or member_open
        return classes, open_ended
    if origin is not None:
        return ([origin], False) if isinstance(origin, type) else ([], True)
    if isinstance(annotation, type):
        return [annotation], False
    return [], True  # Literal, NewType, TypeVar...: not checked


class Binding(Generic[T]):
    """A dataclass bound to a mapped business object: turns instances into rows and back."""

    def __init__(self, cls: type[T], mapped: MappedObject) -> None:
        self.cls = cls
        self.mapped = mapped
        self.spec = mapped.spec
        self.names = tuple(attribute.name for attribute in self.spec.attributes)
        self.key_name = self.spec.key.name
        self.key_generated = self.spec.key.generated
        self._enums = self._check(cls)
        converters: list[Callable[[Any], Any] | None] = []
        for attribute in self.spec.attributes:
            enum_class = self._enums.get(attribute.name)
            base = read_converter(attribute)
            if enum_class is not None:
                converters.append(_enum_reader(enum_class, base))
            else:
                converters.append(base)
        self._readers = tuple(converters)

    def _check(self, cls: type[T]) -> dict[str, type[Enum]]:
        """Fields must be exactly the attributes, with compatible annotations."""
        spec = self.spec
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise spec.located_error(
                f"cannot bind {getattr(cls, '__qualname__', cls)!r} to object {spec.name}: "
                "only dataclasses can be bound"
            )
        fields = {field.name: field for field in dataclasses.fields(cls)}
        missing = [name for name in self.names if name not in fields]
        extra = [name for name in fields if name not in self.names]
        uninitialised = [name for name, field in fields.items() if not field.init]
        problems = []
        if missing:
            problems.append(f"missing fields {', '.join(missing)}")
        if extra:
            problems.append(f"fields {', '.join(extra)} are not attributes of {spec.name}")
        if uninitialised:
            problems.append(f"fields {', '.join(uninitialised)} have init=False")
        try:
            hints = typing.get_type_hints(cls)
        except Exception:
            hints = {}  # forward references we cannot resolve: skip the type check
        enums: dict[str, type[Enum]] = {}
        for attribute in spec.attributes:
            if attribute.name not in hints:
                continue
            classes, open_ended = _annotation_classes(hints[attribute.name])
            allowed = _PYTHON_TYPES[attribute.type]
            if open_ended or allowed is None or not classes:
                continue
            enum_classes = [c for c in classes if issubclass(c, Enum)]
            if enum_classes and attribute.type in (AttributeType.STRING, AttributeType.INTEGER):
                enums[attribute.name] = enum_classes[0]
                continue
            if not any(issubclass(c, allowed) for c in classes):
                shown = " | ".join(c.__name__ for c in classes)
                problems.append(
                    f"field {attribute.name} is {shown} but attribute {attribute.name} "
                    f"is {attribute.type.value}"
                )
        if problems:
            raise spec.located_error(
                f"class {cls.__qualname__} does not match object {spec.name}: "
                + "; ".join(problems),
                cls=cls.__qualname__,
            )
        return enums

    def params(self, obj: T, *, include_key: bool = True) -> dict[str, object]:
        """The checked column values of an instance, keyed by attribute name."""
        if type(obj) is not self.cls and not isinstance(obj, self.cls):
            raise InvalidValue(
                f"expected a {self.cls.__qualname__}, got {type(obj).__qualname__}",
                object=self.spec.name,
            )
        values: dict[str, object] = {}
        for name, validate in zip(self.names, self.mapped.validators, strict=True):
            if name == self.key_name and not include_key:
                continue
            value = getattr(obj, name)
            if name in self._enums and isinstance(value, Enum):
                value = value.value
            values[name] = validate(value)
        return values

    def insert_params(self, obj: T) -> dict[str, object]:
        """Values for an INSERT: a generated key left as None is left to the database."""
        key = getattr(obj, self.key_name)
        return self.params(obj, include_key=not (self.key_generated and key is None))

    def build(self, row: Sequence[Any]) -> T:
        """An instance from a row whose columns come in attribute order."""
        values = {}
        for name, reader, value in zip(self.names, self._readers, row, strict=True):
            values[name] = value if reader is None else reader(value)
        return self.cls(**values)

    def with_key(self, obj: T, key: object) -> T:
        """A copy of the instance with its key filled in (works for frozen dataclasses)."""
        return dataclasses.replace(obj, **{self.key_name: key})  # type: ignore[type-var]


def _enum_reader(
    enum_class: type[Enum], base: Callable[[Any], Any] | None
) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if value is None:
            return None
        return enum_class(base(value) if base is not None else value)

    return read


def check_key(binding: Binding[Any], key: object) -> object:
    """Validates a key given to get/delete against the key attribute's type."""
    spec = binding.spec
    if key is None:
        raise InvalidValue(f"{spec.name} key must not be None", object=spec.name)
    if isinstance(key, Enum):
        key = key.value
    index = binding.names.index(binding.key_name)
    return binding.mapped.validators[index](key)

