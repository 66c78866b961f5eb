"""Caruso's storage manager: business objects mapped onto tables, over SQLAlchemy Core.

A declarative model (XML, checked against ``business-objects.dtd``) maps object and attribute
names onto tables and columns: Caruso's own (created and migrated) or a company's existing
ones (verified, never altered). SQLite is the embedded default; PostgreSQL and MariaDB are
supported. See docs/storage.md.
"""

from storage.batch import BatchStats, BatchWriter
from storage.engine import Backend, safe_url
from storage.errors import (
    Conflict,
    InvalidQuery,
    InvalidValue,
    MigrationRefused,
    ModelError,
    NotFound,
    StorageError,
    StorageUnavailable,
    UnboundClass,
)
from storage.loader import load_model, parse_model
from storage.manager import StorageManager
from storage.model import AttributeSpec, AttributeType, BusinessObject, BusinessObjectModel
from storage.query import Condition

__all__ = [
    "AttributeSpec",
    "AttributeType",
    "Backend",
    "BatchStats",
    "BatchWriter",
    "BusinessObject",
    "BusinessObjectModel",
    "Condition",
    "Conflict",
    "InvalidQuery",
    "InvalidValue",
    "MigrationRefused",
    "ModelError",
    "NotFound",
    "StorageError",
    "StorageManager",
    "StorageUnavailable",
    "UnboundClass",
    "load_model",
    "parse_model",
    "safe_url",
]
