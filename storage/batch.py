"""The batch writer: many concurrent `write()` calls become few multi-row transactions.

High-rate records (call records, queue-log lines) are written through it. A write returns
only once its row is committed, so an acknowledged record is durable; meanwhile rows from
many writers share one transaction, which is what makes the rate high.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

from storage.errors import StorageError, StorageUnavailable

if TYPE_CHECKING:
    from storage.binding import Binding
    from storage.manager import StorageManager

T = TypeVar("T")

log = logging.getLogger("caruso.storage.batch")


@dataclass(slots=True)
class _Pending(Generic[T]):
    """One row waiting to be written, and the future its writer awaits."""

    obj: T
    params: dict[str, object]
    future: asyncio.Future[T]
    enqueued: float


@dataclass(slots=True)
class BatchStats:
    """What a batch writer has done so far (for benchmarks and the monitor)."""

    rows: int = 0
    batches: int = 0
    failed_rows: int = 0
    fallbacks: int = 0


class BatchWriter(Generic[T]):
    """Collects rows of one bound class and inserts them in batches, one transaction each.

    Use as ``async with storage.batch_writer(CallRecord) as writer: await writer.write(rec)``.
    A batch is flushed when `max_batch` rows wait or the oldest has waited `max_delay`
    seconds. At most `max_queue` rows are in flight; further writers wait (backpressure).
    If a batch fails, its rows are retried one by one so a bad row fails only its own write.
    """

    def __init__(
        self,
        manager: StorageManager,
        binding: Binding[T],
        *,
        max_batch: int = 500,
        max_delay: float = 0.05,
        max_queue: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise StorageError(f"max_batch must be at least 1, not {max_batch}")
        if max_delay < 0:
            raise StorageError(f"max_delay must not be negative, not {max_delay}")
        self._manager = manager
        self._binding = binding
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queue = max_queue if max_queue is not None else 4 * max_batch
        if self.max_queue < max_batch:
            raise StorageError(f"max_queue ({self.max_queue}) must be at least max_batch")
        self.stats = BatchStats()
        self._pending: collections.deque[_Pending[T]] = collections.deque()
        self._slots = asyncio.Semaphore(self.max_queue)
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def object_name(self) -> str:
        """The business object this writer inserts."""
        return self._binding.spec.name

    async def __aenter__(self) -> BatchWriter[T]:
        if self._flusher is not None or self._closing:
            raise StorageError("a batch writer can be entered only once")
        self._flusher = asyncio.get_running_loop().create_task(
            self._run(), name=f"storage-batch-writer-{self.object_name}"
        )
        self._flusher.add_done_callback(self._flusher_done)
        self._manager._writer_opened(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Rows already accepted are written even when the block failed: nothing is lost.
        await self.aclose()

    def closing(self) -> bool:
        """Whether the writer has stopped accepting rows."""
        return self._closing

    async def write(self, obj: T) -> T:
        """Queue a row and return once it is committed (with a generated key filled in).

        A value that does not fit its attribute fails here at once; a row the database
        refuses fails with Conflict or StorageError. Cancelling the call does not unqueue
        a row already accepted.
        """
        if self._flusher is None or self._closing:
            raise StorageError(f"the batch writer for {self.object_name} is not open")
        params = self._binding.insert_params(obj)
        await self._slots.acquire()
        if self.closing():  # it may have closed while we waited for a slot
            self._slots.release()
            raise StorageError(f"the batch writer for {self.object_name} was closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = _Pending(obj, params, future, loop.time())
        self._pending.append(pending)
        # Wake the flusher only when it has something new to decide about.
        if len(self._pending) == 1 or len(self._pending) >= self.max_batch:
            self._wakeup.set()
        return await pending.future

    async def aclose(self) -> None:
        """Stop accepting rows, write every row already accepted, stop the flusher."""
        flusher = self._flusher
        self._closing = True
        self._wakeup.set()
        if flusher is not None and not flusher.done():
            # Shielded: a cancelled closer must not abandon rows its writers wait for.
            await asyncio.shield(flusher)
        self._manager._writer_closed(self)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                deadline = self._pending[0].enqueued + self.max_delay
                while len(self._pending) < self.max_batch and not self._closing:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await self._wakeup.wait()
                count = min(self.max_batch, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
                try:
                    await self._flush(batch)
                finally:
                    for _ in range(count):
                        self._slots.release()
        finally:
            # Only reached with rows left if the flusher was cancelled or broke: say so.
            while self._pending:
                _fail(
                    self._pending.popleft(),
                    StorageError(f"the batch writer for {self.object_name} stopped"),
                )

    async def _flush(self, batch: list[_Pending[T]]) -> None:
        manager = self._manager
        try:
            keys = await manager._insert_prepared(self._binding, [p.params for p in batch])
        except asyncio.CancelledError:
            for pending in batch:
                _fail(pending, StorageError("the batch writer was cancelled mid-write"))
            raise
        except Exception as error:
            failure = manager._translate(error, object=self.object_name)
            if len(batch) == 1 or isinstance(failure, StorageUnavailable):
                # One row, or a database that is down: retrying row by row cannot help.
                for pending in batch:
                    _fail(pending, failure)
                self.stats.failed_rows += len(batch)
                return
            log.warning(
                "batch of %d %s rows failed (%s); retrying row by row",
                len(batch),
                self.object_name,
                failure.message,
            )
            self.stats.fallbacks += 1
            await self._one_by_one(batch)
            return
        self.stats.rows += len(batch)
        self.stats.batches += 1
        for pending, key in zip(batch, keys, strict=True):
            if not pending.future.done():
                pending.future.set_result(self._with_key(pending, key))

    async def _one_by_one(self, batch: list[_Pending[T]]) -> None:
        for pending in batch:
            try:
                (key,) = await self._manager._insert_prepared(self._binding, [pending.params])
            except asyncio.CancelledError:
                _fail(pending, StorageError("the batch writer was cancelled mid-write"))
                raise
            except Exception as error:
                self.stats.failed_rows += 1
                _fail(pending, self._manager._translate(error, object=self.object_name))
                continue
            self.stats.rows += 1
            if not pending.future.done():
                pending.future.set_result(self._with_key(pending, key))

    def _with_key(self, pending: _Pending[T], key: object) -> T:
        if getattr(pending.obj, self._binding.key_name) is None:
            return self._binding.with_key(pending.obj, key)
        return pending.obj

    def _flusher_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("batch writer for %s failed", self.object_name, exc_info=error)


def _fail(pending: _Pending[T], error: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(error)
