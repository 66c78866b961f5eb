"""The fake Asterisk also satisfies an independent AMI client: panoramisk's `Manager`.

panoramisk is what SPEC first suggested for the backend; Caruso has its own client instead
(docs/asterisk.md says why). Here it only serves as a second opinion on the fake's wire
format. Only `panoramisk.Manager` is used: `panoramisk.testing` changes a module global that
breaks a real manager in the same process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from panoramisk import Manager

from tests.asterisk.fake_asterisk import FakeAsterisk


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    server = FakeAsterisk()
    await server.start()
    server.phone("2001")
    yield server
    await server.stop()


async def test_panoramisk_logs_in_pings_and_lists_channels_on_the_fake(
    fake: FakeAsterisk,
) -> None:
    manager: Any = Manager(
        loop=asyncio.get_running_loop(),
        host="127.0.0.1",
        port=fake.port,
        username="caruso",
        secret="s3cret",
        ping_delay=60,
    )
    events: list[Any] = []
    manager.register_event("Newchannel", lambda _manager, event: events.append(event))
    await manager.connect()
    try:
        async with asyncio.timeout(5):
            while not manager.authenticated:  # noqa: ASYNC110 - panoramisk offers no signal
                await asyncio.sleep(0.01)
        pong = await manager.send_action({"Action": "Ping"})
        assert pong.ping == "Pong"
        fake.globals.update(CARUSO_ONLINE="0")
        fake.incoming_call(caller="5550100")
        channels = await manager.send_action({"Action": "CoreShowChannels"})
        # panoramisk returns the response first, then the list's events.
        assert channels[0].response == "Success"
        assert [c.event for c in channels[1:]] == ["CoreShowChannel", "CoreShowChannelsComplete"]
        assert channels[1].calleridnum == "5550100"
        async with asyncio.timeout(2):
            while not events:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert events[0].calleridnum == "5550100"
    finally:
        manager.close()
