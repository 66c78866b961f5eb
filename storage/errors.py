"""Errors of the storage manager: a stable kebab-case `code` and structured `details` each.

They know nothing of HTTP; the web edge maps them to statuses. Every error of this package
derives from `StorageError`, so a caller that only wants "storage failed" catches that.
"""

from __future__ import annotations

from typing import ClassVar


class StorageError(Exception):
    """Base of the storage manager's errors."""

    code: ClassVar[str] = "storage-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class StorageUnavailable(StorageError):
    """The database cannot be reached, refuses our credentials, or its file cannot be written."""

    code: ClassVar[str] = "storage-unavailable"


class ModelError(StorageError):
    """A business-object model is malformed, or does not match the database or a bound class.

    The message starts with ``file:line:`` whenever the problem sits in a model file.
    """

    code: ClassVar[str] = "invalid-business-object-model"

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, **details: object
    ) -> None:
        if file is None:
            located = message
        elif line is None:
            located = f"{file}: {message}"
        else:
            located = f"{file}:{line}: {message}"
        super().__init__(located, **details)
        self.file = file
        self.line = line
        self.details.setdefault("reason", message)
        if file is not None:
            self.details["file"] = file
            self.details["line"] = line


class MigrationRefused(StorageError):
    """A managed table differs from its model in a way Caruso cannot change safely by itself."""

    code: ClassVar[str] = "unsafe-schema-migration"


class NotFound(StorageError):
    """No stored object of this kind has this key."""

    code: ClassVar[str] = "no-such-object"


class Conflict(StorageError):
    """The database refused a write as breaking a constraint (duplicate key, NOT NULL, ...)."""

    code: ClassVar[str] = "storage-conflict"


class InvalidValue(StorageError):
    """A value does not fit its attribute's type (wrong Python type, too long, naive datetime)."""

    code: ClassVar[str] = "invalid-attribute-value"


class InvalidQuery(StorageError):
    """A query names an unknown attribute or operator, or gives an unusable value."""

    code: ClassVar[str] = "invalid-storage-query"


class UnboundClass(StorageError):
    """A class was used with storage before `StorageManager.bind` mapped it to an object."""

    code: ClassVar[str] = "unbound-class"
