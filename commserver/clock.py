"""Clocks: wall time for the server, and an event loop whose time is virtual for simulation.

`VirtualTimeLoop` is a selector loop whose `time()` only moves when the loop would otherwise
sleep: then it jumps straight to the next timer. Code under test keeps using plain
`asyncio.sleep` and timeouts, and an hour of simulated calls takes milliseconds. Work done in
threads is invisible to it, so virtual-time runs should keep blocking I/O (databases) out.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only kind Caruso stores)."""
    return datetime.now(UTC)


class _WarpSelector(selectors.DefaultSelector):
    """Polls real I/O without waiting and tells its loop to advance virtual time instead."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        super().__init__()
        self._advance = advance

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout is None or timeout <= 0:
            if not ready and timeout is None:
                # Nothing scheduled at all: only real I/O can wake us, so wait for it for real.
                return super().select(None)
            return ready
        self._advance(timeout)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock that starts at `start` (seconds)."""

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = start
        super().__init__(selector=_WarpSelector(self._advance))

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    def time(self) -> float:
        """Virtual seconds since the loop's epoch."""
        return self._virtual_now

    def wall_clock(self, epoch: datetime) -> datetime:
        """The virtual time as a datetime counted from `epoch`."""
        return epoch + timedelta(seconds=self._virtual_now)


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run a coroutine to completion on a fresh `VirtualTimeLoop`."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
