"""The business-object model: which objects exist, their attributes, and where they are stored.

A model is plain, immutable data. `storage.loader` builds it from an XML file; the storage
manager maps it onto tables. Nothing here touches a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from storage.errors import ModelError


class AttributeType(Enum):
    """The types an attribute can have; each maps onto a portable column type."""

    STRING = "string"
    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"
    JSON = "json"


#: Length of a ``string`` attribute that gives none: fits an index on every backend.
DEFAULT_STRING_LENGTH = 255

#: Types a key may have: portable primary keys on SQLite, PostgreSQL and MariaDB alike.
KEY_TYPES = frozenset({AttributeType.INTEGER, AttributeType.STRING})


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute of a business object and the column that stores it."""

    name: str
    column: str
    type: AttributeType
    length: int | None = None
    nullable: bool = True
    key: bool = False
    generated: bool = False
    description: str | None = None
    line: int | None = None

    @property
    def effective_length(self) -> int | None:
        """The column length used for a ``string`` attribute (None for other types)."""
        if self.type is not AttributeType.STRING:
            return None
        return self.length or DEFAULT_STRING_LENGTH


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """An index over one or more attributes of a managed object."""

    name: str
    attributes: tuple[str, ...]
    unique: bool = False
    line: int | None = None


@dataclass(frozen=True, slots=True)
class BusinessObject:
    """A named kind of record (``CallRecord``, ``Customer``) mapped onto one table.

    ``managed`` objects live in tables Caruso creates and migrates; the others (legacy) are
    a company's existing tables, verified on open and never altered.
    """

    name: str
    table: str
    attributes: tuple[AttributeSpec, ...]
    managed: bool = True
    schema: str | None = None
    indexes: tuple[IndexSpec, ...] = ()
    description: str | None = None
    file: str | None = None
    line: int | None = None

    @property
    def key(self) -> AttributeSpec:
        """The attribute that identifies one object (exactly one per object)."""
        for attribute in self.attributes:
            if attribute.key:
                return attribute
        raise ModelError(f"object {self.name} has no key attribute", file=self.file, line=self.line)

    def attribute(self, name: str) -> AttributeSpec | None:
        """The attribute of this name, or None."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        return None

    def located_error(self, message: str, line: int | None = None, **details: object) -> ModelError:
        """A ModelError pointing at this object's definition in its model file."""
        return ModelError(
            message,
            file=self.file,
            line=line if line is not None else self.line,
            object=self.name,
            **details,
        )


@dataclass(frozen=True, slots=True)
class BusinessObjectModel:
    """A named set of business objects, usually read from one model file."""

    name: str
    objects: tuple[BusinessObject, ...]
    file: str | None = None

    def object(self, name: str) -> BusinessObject:
        """The object of this name; ModelError if the model has none."""
        for candidate in self.objects:
            if candidate.name == name:
                return candidate
        raise ModelError(f"model {self.name} defines no object {name!r}", model=self.name)

    @property
    def object_names(self) -> tuple[str, ...]:
        """Names of the objects, in file order."""
        return tuple(candidate.name for candidate in self.objects)
