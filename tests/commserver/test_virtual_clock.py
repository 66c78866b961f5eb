"""The virtual-time loop runs timers without waiting for them."""

from __future__ import annotations

import asyncio
import time

from commserver.clock import run_virtual


def test_an_hour_of_sleeping_takes_no_real_time() -> None:
    async def day() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(asyncio.sleep(60 * m) for m in range(60)))
        return loop.time() - start

    began = time.monotonic()
    elapsed_virtual = run_virtual(day())
    assert elapsed_virtual == 3540.0
    assert time.monotonic() - began < 2.0


def test_timeouts_fire_in_virtual_time() -> None:
    async def wait_forever() -> bool:
        try:
            async with asyncio.timeout(300):
                await asyncio.Event().wait()
        except TimeoutError:
            return True
        return False

    assert run_virtual(wait_forever())
