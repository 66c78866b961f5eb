"""The storage manager: business objects in, dataclass instances out, over SQLAlchemy Core."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import MetaData, Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.batch import BatchWriter
from storage.binding import Binding, check_key
from storage.engine import (
    SQLITE_IMMEDIATE,
    Backend,
    DatabaseTarget,
    create_engine,
    parse_database_url,
    probe,
    translate,
)
from storage.errors import ModelError, NotFound, StorageError, UnboundClass
from storage.model import BusinessObject, BusinessObjectModel
from storage.query import Condition, build_order, build_where, check_paging
from storage.schema import ManagedMigrator, MappedObject, legacy_table, managed_table

T = TypeVar("T")

log = logging.getLogger("caruso.storage")


class _Opening:
    """What `StorageManager.open` returns: await it, or use it with ``async with``."""

    def __init__(self, opener: Callable[[], Awaitable[StorageManager]]) -> None:
        self._opener = opener
        self._manager: StorageManager | None = None

    def __await__(self) -> Generator[Any, None, StorageManager]:
        return self._opener().__await__()

    async def __aenter__(self) -> StorageManager:
        self._manager = await self._opener()
        return self._manager

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._manager is not None:
            await self._manager.close()


class StorageManager:
    """Stores and finds business objects in SQLite, PostgreSQL or MariaDB.

    Open it with ``storage = await StorageManager.open(url, models=[...])`` (or
    ``async with StorageManager.open(...) as storage``), bind dataclasses to objects with
    `bind`, then insert, get, update, delete, query and count instances of those classes.
    """

    def __init__(
        self,
        target: DatabaseTarget,
        engine: AsyncEngine,
        models: Sequence[BusinessObjectModel],
        mapped: Mapping[str, MappedObject],
    ) -> None:
        """Use `StorageManager.open`; this only assembles an already prepared manager."""
        self._target = target
        self._engine = engine
        self._write_engine = (
            engine.execution_options(**{SQLITE_IMMEDIATE: True})
            if target.backend is Backend.SQLITE
            else engine
        )
        self._models = tuple(models)
        self._mapped = dict(mapped)
        self._bindings: dict[type[Any], Binding[Any]] = {}
        self._writers: set[BatchWriter[Any]] = set()
        self._closed = False
        # One in-process writer at a time on SQLite (it has one write lock anyway); an
        # in-memory database has a single shared connection, so it is serialised entirely.
        self._write_lock = asyncio.Lock() if target.backend is Backend.SQLITE else None
        self._serial_lock = asyncio.Lock() if target.in_memory else None

    # --- lifecycle --------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str, models: Iterable[BusinessObjectModel] = ()
    ) -> _Opening:
        """Connect, create/migrate managed tables and verify legacy ones.

        StorageUnavailable if the database cannot be reached or written; ModelError if a
        legacy table does not match its object; MigrationRefused for an unsafe change.
        """
        model_list = list(models)
        return _Opening(lambda: cls._open(url, model_list))

    @classmethod
    async def _open(cls, url: str, models: list[BusinessObjectModel]) -> StorageManager:
        target = parse_database_url(url)
        objects = _collect_objects(models)
        model_names = {spec.name: model.name for model in models for spec in model.objects}
        engine = create_engine(target)
        try:
            await probe(engine, target)
            write_engine = (
                engine.execution_options(**{SQLITE_IMMEDIATE: True})
                if target.backend is Backend.SQLITE
                else engine
            )
            try:
                async with write_engine.begin() as connection:
                    mapped = await connection.run_sync(
                        _prepare, objects, target.backend, model_names
                    )
            except StorageError:
                raise
            except Exception as error:
                raise translate(error, target) from error
        except BaseException:
            await engine.dispose()
            raise
        log.info("storage open on %s with %d objects", target.display, len(mapped))
        return cls(target, engine, models, mapped)

    async def __aenter__(self) -> StorageManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Drain open batch writers, then close every database connection. Idempotent."""
        if self._closed:
            return
        for writer in list(self._writers):
            await writer.aclose()
        self._closed = True
        await self._engine.dispose()

    # --- what is here -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return self._target.display

    @property
    def backend(self) -> Backend:
        """Which database product this is."""
        return self._target.backend

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine, for reports that need SQL beyond `query` and `count`."""
        return self._engine

    @property
    def models(self) -> tuple[BusinessObjectModel, ...]:
        """The models this manager was opened with."""
        return self._models

    @property
    def objects(self) -> tuple[str, ...]:
        """Names of every business object this manager stores."""
        return tuple(self._mapped)

    def table(self, object_name: str) -> Table:
        """The Core Table of an object; its columns are keyed by attribute name."""
        return self._mapped_object(object_name).table

    def _mapped_object(self, object_name: str) -> MappedObject:
        try:
            return self._mapped[object_name]
        except KeyError:
            known = ", ".join(sorted(self._mapped)) or "none"
            raise ModelError(
                f"no business object named {object_name!r} (known: {known})",
                object=object_name,
            ) from None

    # --- binding ----------------------------------------------------------------------

    def bind(self, cls: type[T], object_name: str) -> None:
        """Map a dataclass onto a business object; its fields must be the object's attributes.

        ModelError on mismatch. Binding the same class to the same object again is a no-op.
        """
        existing = self._bindings.get(cls)
        if existing is not None:
            if existing.spec.name == object_name:
                return
            raise ModelError(
                f"class {cls.__qualname__} is already bound to object {existing.spec.name}",
                cls=cls.__qualname__,
                object=object_name,
            )
        self._bindings[cls] = Binding(cls, self._mapped_object(object_name))

    def _binding(self, cls: type[T]) -> Binding[T]:
        binding = self._bindings.get(cls)
        if binding is None:
            name = getattr(cls, "__qualname__", repr(cls))
            raise UnboundClass(
                f"class {name} is not bound to a business object; "
                f"call storage.bind({name}, 'ObjectName') first",
                cls=name,
            )
        return binding

    # --- connections ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"storage on {self._target.display} is closed")

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        self._check_open()
        async with contextlib.AsyncExitStack() as stack:
            if self._serial_lock is not None:
                await stack.enter_async_context(self._serial_lock)
            yield await stack.enter_async_context(self._engine.connect())

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        self._check_open()
        async with contextlib.AsyncExitStack() as stack:
            if self._serial_lock is not None:
                await stack.enter_async_context(self._serial_lock)
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            yield await stack.enter_async_context(self._write_engine.begin())

    def _translate(self, error: Exception, **details: object) -> StorageError:
        return translate(error, self._target, **details)

    @contextlib.contextmanager
    def _errors(self, **details: object) -> Generator[None, None, None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as error:
            raise self._translate(error, **details) from error

    # --- writing ----------------------------------------------------------------------

    async def insert(self, obj: T) -> T:
        """Store a new object; returns it with a generated key filled in."""
        binding = self._binding(type(obj))
        params = binding.insert_params(obj)
        (key,) = await self._insert_prepared(binding, [params])
        if getattr(obj, binding.key_name) is None:
            return binding.with_key(obj, key)
        return obj

    async def insert_many(self, objs: Iterable[T]) -> list[T]:
        """Store many objects of one class in one transaction (all or none)."""
        items = list(objs)
        if not items:
            return []
        binding = self._binding(type(items[0]))
        rows = [binding.insert_params(obj) for obj in items]
        keys = await self._insert_prepared(binding, rows)
        return [
            binding.with_key(obj, key) if getattr(obj, binding.key_name) is None else obj
            for obj, key in zip(items, keys, strict=True)
        ]

    async def _insert_prepared(
        self, binding: Binding[Any], rows: list[dict[str, object]]
    ) -> list[object]:
        """Insert checked rows in one transaction; the key of each row, in order."""
        table = binding.mapped.table
        key_name = binding.key_name
        with self._errors(object=binding.spec.name):
            async with self._writing() as connection:
                keys: list[object] = [row.get(key_name) for row in rows]
                given = [row for row in rows if key_name in row]
                missing = [index for index, row in enumerate(rows) if key_name not in row]
                if given:
                    await connection.execute(insert(table), given)
                if len(missing) == 1:
                    result = await connection.execute(insert(table), rows[missing[0]])
                    primary = result.inserted_primary_key
                    keys[missing[0]] = primary[0] if primary else None
                elif missing:
                    new_keys = await self._insert_returning_keys(
                        connection, table, key_name, [rows[i] for i in missing]
                    )
                    for index, key in zip(missing, new_keys, strict=True):
                        keys[index] = key
                return keys

    async def _insert_returning_keys(
        self,
        connection: AsyncConnection,
        table: Table,
        key_name: str,
        rows: list[dict[str, object]],
    ) -> list[object]:
        """Multi-row INSERT that hands back the generated keys in the rows' order."""
        key_column = table.c[key_name]
        if self._target.backend is not Backend.SQLITE:
            statement = insert(table).returning(key_column, sort_by_parameter_order=True)
            return [key for (key,) in (await connection.execute(statement, rows)).all()]
        # SQLAlchemy can only order SQLite's RETURNING by sending one INSERT per row (30x
        # slower). Inside our write transaction nobody else inserts, and SQLite gives each
        # new row a larger rowid than any before it, so the sorted keys are in row order.
        result = await connection.execute(insert(table).returning(key_column), rows)
        keys = sorted(key for (key,) in result.all())
        if len(keys) != len(rows):  # pragma: no cover - would be a driver bug
            raise StorageError(f"expected {len(rows)} generated keys, got {len(keys)}")
        return keys

    async def update(self, obj: T) -> None:
        """Overwrite the stored object with the same key; NotFound if there is none."""
        binding = self._binding(type(obj))
        params = binding.params(obj)
        key = params.pop(binding.key_name)
        table = binding.mapped.table
        key_column = binding.mapped.key_column
        with self._errors(object=binding.spec.name):
            async with self._writing() as connection:
                if params:
                    result = await connection.execute(
                        update(table).where(key_column == key).values(params)
                    )
                    found = result.rowcount > 0
                else:
                    found = (
                        await connection.execute(select(key_column).where(key_column == key))
                    ).first() is not None
        if not found:
            raise NotFound(
                f"no {binding.spec.name} with key {key!r}", object=binding.spec.name, key=key
            )

    async def delete(self, cls: type[T], key: object) -> bool:
        """Remove the object with this key; False if there was none."""
        binding = self._binding(cls)
        key = check_key(binding, key)
        table = binding.mapped.table
        with self._errors(object=binding.spec.name):
            async with self._writing() as connection:
                result = await connection.execute(
                    delete(table).where(binding.mapped.key_column == key)
                )
                return result.rowcount > 0

    def batch_writer(
        self,
        cls: type[T],
        max_batch: int = 500,
        max_delay: float = 0.05,
        *,
        max_queue: int | None = None,
    ) -> BatchWriter[T]:
        """A writer that batches concurrent inserts of `cls`; use it with ``async with``."""
        self._check_open()
        return BatchWriter(
            self,
            self._binding(cls),
            max_batch=max_batch,
            max_delay=max_delay,
            max_queue=max_queue,
        )

    def _writer_opened(self, writer: BatchWriter[Any]) -> None:
        self._check_open()
        self._writers.add(writer)

    def _writer_closed(self, writer: BatchWriter[Any]) -> None:
        self._writers.discard(writer)

    # --- reading ----------------------------------------------------------------------

    async def get(self, cls: type[T], key: object) -> T | None:
        """The object with this key, or None."""
        binding = self._binding(cls)
        key = check_key(binding, key)
        statement = select(*binding.mapped.columns).where(binding.mapped.key_column == key)
        with self._errors(object=binding.spec.name):
            async with self._reading() as connection:
                row = (await connection.execute(statement)).first()
        return None if row is None else binding.build(row)

    async def query(
        self,
        cls: type[T],
        where: Mapping[str, object] | None = None,
        filters: Iterable[Condition] | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[T]:
        """Objects matching `where` (attribute == value) and every filter Condition.

        `order_by` lists attributes, ``-name`` for descending; ties are broken by the key.
        """
        binding = self._binding(cls)
        check_paging(limit, offset)
        mapped = binding.mapped
        statement = (
            select(*mapped.columns)
            .where(build_where(mapped, where, filters))
            .order_by(*build_order(mapped, order_by))
        )
        if limit is not None:
            statement = statement.limit(limit)
        if offset:
            statement = statement.offset(offset)
        with self._errors(object=binding.spec.name):
            async with self._reading() as connection:
                rows = (await connection.execute(statement)).all()
        return [binding.build(row) for row in rows]

    async def count(
        self,
        cls: type[T],
        where: Mapping[str, object] | None = None,
        filters: Iterable[Condition] | None = None,
    ) -> int:
        """How many objects match `where` and `filters`."""
        binding = self._binding(cls)
        mapped = binding.mapped
        statement = (
            select(func.count())
            .select_from(mapped.table)
            .where(build_where(mapped, where, filters))
        )
        with self._errors(object=binding.spec.name):
            async with self._reading() as connection:
                return int((await connection.execute(statement)).scalar_one())


def _collect_objects(models: Sequence[BusinessObjectModel]) -> list[BusinessObject]:
    """All objects of all models; names and tables must be unique across models too."""
    objects: list[BusinessObject] = []
    names: dict[str, BusinessObject] = {}
    tables: dict[tuple[str, str], BusinessObject] = {}
    for model in models:
        if not isinstance(model, BusinessObjectModel):
            raise ModelError(f"expected a BusinessObjectModel (from load_model), got {model!r}")
        for spec in model.objects:
            other = names.get(spec.name)
            if other is not None:
                raise spec.located_error(
                    f"object {spec.name} is also defined in {other.file}:{other.line}"
                )
            table_id = ((spec.schema or "").lower(), spec.table.lower())
            clash = tables.get(table_id)
            if clash is not None:
                raise spec.located_error(
                    f"object {spec.name} uses table {spec.table}, as does object "
                    f"{clash.name} ({clash.file}:{clash.line})"
                )
            names[spec.name] = spec
            tables[table_id] = spec
            objects.append(spec)
    return objects


def _prepare(
    connection: Connection,
    objects: list[BusinessObject],
    backend: Backend,
    model_names: dict[str, str],
) -> dict[str, MappedObject]:
    """Verify legacy tables, then create/migrate managed ones (inside one transaction)."""
    metadata = MetaData()
    mapped: dict[str, MappedObject] = {}
    # Legacy first: a mismatch there must stop us before anything is created.
    for spec in objects:
        if not spec.managed:
            mapped[spec.name] = legacy_table(connection, spec, metadata, backend)
    managed = [managed_table(spec, metadata) for spec in objects if spec.managed]
    if managed:
        for action in ManagedMigrator(connection, model_names).migrate(managed):
            log.info("storage migration: %s", action)
        for item in managed:
            mapped[item.spec.name] = item
    return {spec.name: mapped[spec.name] for spec in objects}
