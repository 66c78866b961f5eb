"""Database fixtures for the whole suite (owned by storage; anyone may use them).

* ``db_url``: one test per backend. SQLite on a fresh temporary file; PostgreSQL from
  ``CARUSO_TEST_POSTGRES_URL``; MariaDB from ``CARUSO_TEST_MARIADB_URL``. Each test starts
  with an empty PostgreSQL schema / MariaDB database whose random name belongs to this test
  session (other people run tests on the same servers at the same time), dropped at the end.
  Without the variable, or with the server down, those variants are skipped with the reason
  shown, unless ``CARUSO_REQUIRE_DATABASES=1`` (CI), which makes them fail instead.
* ``sqlite_url``: only the SQLite variant, for tests that do not care about the backend.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from storage import safe_url

POSTGRES_ENV = "CARUSO_TEST_POSTGRES_URL"
MARIADB_ENV = "CARUSO_TEST_MARIADB_URL"
REQUIRE_ENV = "CARUSO_REQUIRE_DATABASES"

#: Seconds to wait for a test database server before calling it unreachable.
_ADMIN_TIMEOUT = 15.0

R = TypeVar("R")


def _unavailable(reason: str) -> NoReturn:
    """Skip with the reason shown, or fail when CI requires every database."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is an error)", pytrace=False)
    pytest.skip(reason)


def _run_isolated(make: Callable[[], Coroutine[Any, Any, R]]) -> R:
    """Run admin coroutines on a private loop in a private thread.

    Session fixtures are synchronous; a private loop keeps them off the tests' own loops.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, name="test-db-admin", daemon=True)
    thread.start()
    thread.join(_ADMIN_TIMEOUT + 5)
    if thread.is_alive():
        raise TimeoutError("the test database server did not answer in time")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


class ServerDatabase:
    """A private PostgreSQL schema or MariaDB database for one test session."""

    def __init__(self, backend: str, base_url: str) -> None:
        self.backend = backend
        self.base = make_url(base_url)
        self.name = f"caruso_test_{os.getpid()}_{secrets.token_hex(4)}"

    @property
    def url(self) -> str:
        """The URL tests get: pointing at the private schema or database."""
        url: URL
        if self.backend == "postgresql":
            url = self.base.update_query_dict({"search_path": self.name})
        else:
            url = self.base.set(database=self.name)
        return url.render_as_string(hide_password=False)

    def _statements(self, create: bool) -> list[str]:
        if self.backend == "postgresql":
            drop = f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'
            return [drop, f'CREATE SCHEMA "{self.name}"'] if create else [drop]
        drop = f"DROP DATABASE IF EXISTS `{self.name}`"
        create_db = f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4"
        return [drop, create_db] if create else [drop]

    async def _execute(self, statements: list[str]) -> None:
        connect_args: dict[str, Any] = (
            {"timeout": _ADMIN_TIMEOUT}
            if self.backend == "postgresql"
            else {"connect_timeout": int(_ADMIN_TIMEOUT)}
        )
        engine = create_async_engine(
            self.base, connect_args=connect_args, isolation_level="AUTOCOMMIT"
        )
        try:
            async with asyncio.timeout(_ADMIN_TIMEOUT), engine.connect() as connection:
                for statement in statements:
                    await connection.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    def reset(self) -> None:
        """Empty the private schema/database (drop and create it)."""
        _run_isolated(lambda: self._execute(self._statements(create=True)))

    def drop(self) -> None:
        """Remove the private schema/database."""
        _run_isolated(lambda: self._execute(self._statements(create=False)))


def _server(backend: str, env: str, label: str) -> Iterator[ServerDatabase]:
    base_url = os.environ.get(env, "").strip()
    if not base_url:
        _unavailable(f"{label} tests skipped: {env} is not set")
    try:
        database = ServerDatabase(backend, base_url)
        database.reset()
    except Exception as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        _unavailable(f"{label} at {safe_url(base_url)} is unreachable: {reason}")
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[ServerDatabase]:
    """This session's PostgreSQL schema (skip/fail as described in the module docstring)."""
    yield from _server("postgresql", POSTGRES_ENV, "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[ServerDatabase]:
    """This session's MariaDB database (skip/fail as described in the module docstring)."""
    yield from _server("mariadb", MARIADB_ENV, "MariaDB")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL for a fresh SQLite file of this test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'caruso.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.db),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.db),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty database, once per backend (see the module docstring)."""
    backend: str = request.param
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'caruso.db'}"
    fixture = "postgres_database" if backend == "postgresql" else "mariadb_database"
    database: ServerDatabase = request.getfixturevalue(fixture)
    database.reset()
    return database.url
