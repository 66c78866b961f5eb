"""Database URLs, engine creation per backend, and turning driver errors into storage errors."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from storage.errors import (
    Conflict,
    InvalidValue,
    StorageError,
    StorageUnavailable,
)

#: Seconds to wait for a database server to accept a connection.
CONNECT_TIMEOUT = 10.0

#: Milliseconds SQLite waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: Execution option that makes a SQLite transaction take the write lock at BEGIN.
SQLITE_IMMEDIATE = "caruso_sqlite_immediate"


class Backend(Enum):
    """The database products Caruso supports and tests."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"
    MARIADB = "mariadb"


# Bare dialect names get the async driver Caruso installs; an explicit driver is kept.
_DEFAULT_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
}

_BACKENDS = {
    "sqlite": Backend.SQLITE,
    "postgresql": Backend.POSTGRESQL,
    "mysql": Backend.MARIADB,
    "mariadb": Backend.MARIADB,
}


@dataclass(frozen=True)
class DatabaseTarget:
    """A parsed database URL: what to connect to and how, and how to name it safely."""

    url: URL
    backend: Backend
    display: str
    sqlite_path: Path | None = None
    in_memory: bool = False
    connect_args: Mapping[str, Any] = field(default_factory=dict)


def safe_url(url: str | URL) -> str:
    """The URL as text with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparsable database URL>"


def parse_database_url(url: str | URL) -> DatabaseTarget:
    """Check a database URL and prepare what the engine needs; StorageError if unusable.

    Besides SQLAlchemy's own URL forms, a PostgreSQL URL may carry ``?search_path=schema``
    (set on every connection), which is how test sessions get a private schema.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise StorageError(
            f"invalid database URL {safe_url(url)!r}: expected e.g. "
            "sqlite+aiosqlite:///var/caruso.db or postgresql+asyncpg://user@host/db",
            url=safe_url(url),
        ) from error
    parsed = parsed.set(drivername=_DEFAULT_DRIVERS.get(parsed.drivername, parsed.drivername))
    backend = _BACKENDS.get(parsed.get_backend_name())
    display = parsed.render_as_string(hide_password=True)
    if backend is None:
        raise StorageError(
            f"unsupported database {display}: Caruso supports SQLite, PostgreSQL and MariaDB",
            url=display,
        )
    connect_args: dict[str, Any] = {}
    if backend is Backend.SQLITE:
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or "mode=memory" in database
        path = None if in_memory or database.startswith("file:") else Path(database)
        return DatabaseTarget(parsed, backend, display, path, in_memory, connect_args)
    if backend is Backend.POSTGRESQL:
        search_path = parsed.query.get("search_path")
        if search_path is not None:
            parsed = parsed.difference_update_query(["search_path"])
            value = search_path if isinstance(search_path, str) else ",".join(search_path)
            connect_args["server_settings"] = {"search_path": value}
        if parsed.get_driver_name() == "asyncpg":
            connect_args["timeout"] = CONNECT_TIMEOUT
    if backend is Backend.MARIADB:
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        if parsed.get_driver_name() in ("asyncmy", "aiomysql"):
            connect_args["connect_timeout"] = int(CONNECT_TIMEOUT)
    return DatabaseTarget(parsed, backend, display, connect_args=connect_args)


def create_engine(target: DatabaseTarget) -> AsyncEngine:
    """An async engine for the target, with SQLite made durable and properly transactional."""
    if target.sqlite_path is not None:
        _prepare_sqlite_file(target, target.sqlite_path)
    options: dict[str, Any] = {"connect_args": dict(target.connect_args)}
    if target.backend is not Backend.SQLITE:
        # A server may drop idle connections (restart, MariaDB's wait_timeout): check first.
        options["pool_pre_ping"] = True
        options["pool_recycle"] = 3600
    try:
        engine = create_async_engine(target.url, **options)
    except (exc.ArgumentError, exc.InvalidRequestError, exc.NoSuchModuleError) as error:
        raise StorageError(
            f"cannot use database URL {target.display}: {error}", url=target.display
        ) from error
    except ImportError as error:
        raise StorageError(
            f"cannot use database URL {target.display}: its driver is not installed "
            f"({error.name}); use one of the async drivers sqlite+aiosqlite, "
            "postgresql+asyncpg or mysql+asyncmy",
            url=target.display,
        ) from error
    if target.backend is Backend.SQLITE:
        _make_sqlite_durable(engine)
    return engine


def _prepare_sqlite_file(target: DatabaseTarget, path: Path) -> None:
    """Create the file's folder; refuse paths SQLite could never open, before trying."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageUnavailable(
            f"cannot create the folder of the database file {path}: "
            f"{error.strerror or error}; create it or choose a writable path",
            url=target.display,
        ) from error
    if path.is_dir():
        raise StorageUnavailable(
            f"cannot use the database at {target.display}: {path} is a folder; "
            "name a file inside it, e.g. caruso.db",
            url=target.display,
        )


def _make_sqlite_durable(engine: AsyncEngine) -> None:
    """WAL, fsync on every commit, a busy timeout, foreign keys; we issue BEGIN ourselves.

    The driver's own implicit transactions skip DDL and cannot take the write lock up
    front, so autocommit mode is set on the raw connection and BEGIN comes from here.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the lock at BEGIN so the busy timeout applies instead of a
        # deadlock-prone upgrade from a read lock halfway through the transaction.
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def probe(engine: AsyncEngine, target: DatabaseTarget) -> None:
    """Connect once and run a trivial statement; StorageUnavailable with advice if not."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT + 5):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
                if target.backend is Backend.SQLITE and not target.in_memory:
                    # An unwritable file opens fine and fails on the first write: try now.
                    await connection.exec_driver_sql("PRAGMA user_version = 0")
    except StorageError:
        raise
    except Exception as error:
        if target.backend is Backend.SQLITE:
            # aiosqlite winds a failed connection down on its own thread; let it finish
            # before the caller (maybe a short-lived loop) goes away under it.
            await asyncio.sleep(0.05)
        raise unavailable(target, error) from error


def unavailable(target: DatabaseTarget, error: BaseException) -> StorageUnavailable:
    """A one-line StorageUnavailable naming the URL (no password) and what to do."""
    reason = describe(error, target)
    if target.backend is Backend.SQLITE:
        advice = "check that the folder exists and the file is writable by this user"
    else:
        advice = (
            "check that the server is running and that the URL's host, port, user, "
            "password and database are right"
        )
    return StorageUnavailable(
        f"cannot use the database at {target.display}: {reason}; {advice}",
        url=target.display,
        reason=reason,
    )


def describe(error: BaseException, target: DatabaseTarget | None = None) -> str:
    """The driver's own words about a failure, on one line and without the password."""
    original = error.orig if isinstance(error, exc.DBAPIError) and error.orig else error
    if isinstance(original, TimeoutError):
        reason = "no answer in time"
    else:
        reason = " ".join(str(original).split()) or type(original).__name__
    if target is not None and target.url.password:
        reason = reason.replace(str(target.url.password), "***")
    return reason[:300]


_UNAVAILABLE_HINTS = (
    "unable to open",
    "readonly database",
    "read-only",
    "disk i/o",
    "database is locked",
    "disk is full",
    "connection",
    "can't connect",
    "lost connection",
    "server has gone away",
    "terminating",
)


def translate(error: Exception, target: DatabaseTarget, **details: object) -> StorageError:
    """The storage error a failed statement stands for (conflict, bad value, unavailable)."""
    if isinstance(error, StorageError):
        return error
    reason = describe(error, target)
    if isinstance(error, exc.IntegrityError):
        return Conflict(f"the database refused the write: {reason}", reason=reason, **details)
    if isinstance(error, exc.DataError):
        return InvalidValue(f"the database refused a value: {reason}", reason=reason, **details)
    if isinstance(error, exc.StatementError) and not isinstance(error, exc.DBAPIError):
        # Raised while binding a parameter (our own checks in type processors).
        return InvalidValue(f"a value cannot be stored: {reason}", reason=reason, **details)
    if isinstance(error, OSError | TimeoutError | ConnectionError):
        return unavailable(target, error)
    if isinstance(error, exc.DBAPIError):
        lowered = reason.lower()
        if error.connection_invalidated or any(hint in lowered for hint in _UNAVAILABLE_HINTS):
            return unavailable(target, error)
        return StorageError(f"the database failed: {reason}", reason=reason, **details)
    return StorageError(f"storage failed: {reason}", reason=reason, **details)

