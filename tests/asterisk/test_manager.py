"""The AMI controller against the fake Asterisk: login, keepalive, reconnect, junk, slowness."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from commserver.asterisk import (
    AmiAction,
    AmiAuthenticationFailed,
    AmiManager,
    AmiMessage,
    AmiSettings,
    AmiTimeout,
    AmiUnavailable,
    ManagerState,
)
from tests.asterisk.conftest import FAST
from tests.asterisk.fake_asterisk import FakeAsterisk


class Handler:
    """Records what the manager reports; its resync can be made slow."""

    def __init__(self, resync_seconds: float = 0.0) -> None:
        self.resync_seconds = resync_seconds
        self.readies: list[float] = []
        self.events: list[AmiMessage] = []
        self.lost: list[str] = []
        self.events_at_ready: list[int] = []

    async def ami_ready(self, manager: AmiManager) -> None:
        self.events_at_ready.append(len(self.events))
        await manager.send_list(AmiAction.of("CoreShowChannels"))
        await asyncio.sleep(self.resync_seconds)
        self.readies.append(time.monotonic())

    def ami_event(self, message: AmiMessage) -> None:
        self.events.append(message)

    def ami_lost(self, reason: str) -> None:
        self.lost.append(reason)

    def names(self) -> list[str]:
        return [m.event for m in self.events]


Factory = Callable[..., Awaitable[tuple[AmiManager, Handler]]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    server = FakeAsterisk()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def connect(fake: FakeAsterisk) -> AsyncIterator[Factory]:
    """Connect managers to the fake; all closed at teardown."""
    async with AsyncExitStack() as stack:

        async def factory(
            handler: Handler | None = None, **overrides: Any
        ) -> tuple[AmiManager, Handler]:
            values: dict[str, Any] = {
                "host": "127.0.0.1",
                "port": fake.port,
                "username": "caruso",
                "secret": "s3cret",
                **FAST,
            }
            values.update(overrides)
            handler = handler or Handler()
            manager = AmiManager(AmiSettings(**values), handler)
            stack.push_async_callback(manager.close)
            await manager.connect()
            return manager, handler

        yield factory


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polls state the manager owns
            await asyncio.sleep(0.005)


async def test_login_resync_then_actions_answered(connect: Factory, fake: FakeAsterisk) -> None:
    manager, handler = await connect()
    assert manager.state is ManagerState.READY
    assert len(handler.readies) == 1
    pong = await manager.send(AmiAction.of("Ping"))
    assert pong.get("Ping") == "Pong"
    assert fake.logins == 1


async def test_wrong_credentials_fail_at_once_with_a_clear_error_and_no_retry(
    connect: Factory, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(AmiAuthenticationFailed) as caught:
        await connect(secret="wrong-secret")
    assert time.monotonic() - started < 1.0
    message = caught.value.message
    assert "refused the manager login of user 'caruso'" in message
    assert "Authentication failed" in message
    assert "wrong-secret" not in message
    assert "wrong-secret" not in caplog.text
    await asyncio.sleep(0.3)
    assert fake.failed_logins == 1  # no silent reconnect loop, unlike panoramisk


async def test_the_secret_never_reaches_the_log(
    connect: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    manager, _ = await connect()
    assert "s3cret" not in repr(manager.settings)
    assert "s3cret" not in caplog.text


async def test_a_server_that_is_not_asterisk_is_reported_after_the_connect_timeout(
    connect: Factory,
) -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(AmiUnavailable, match="not an Asterisk manager"):
            await connect(port=port, connect_timeout=0.5)
    finally:
        server.close()
        await server.wait_closed()


async def test_nothing_listening_is_a_clear_unavailable_error(connect: Factory) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(AmiUnavailable, match=f"127.0.0.1:{port} within 0.4 s"):
        await connect(port=port, connect_timeout=0.4)


async def test_a_dropped_connection_is_reestablished_and_resynced(
    connect: Factory, fake: FakeAsterisk
) -> None:
    manager, handler = await connect()
    fake.drop_sessions()
    await until(lambda: len(handler.readies) == 2)
    assert len(handler.lost) == 1
    assert manager.ready
    fake.register("2001")
    await until(lambda: "ContactStatus" in handler.names())


async def test_events_are_held_during_a_resync_and_delivered_after_it_in_order(
    connect: Factory, fake: FakeAsterisk
) -> None:
    handler = Handler(resync_seconds=0.2)
    _, handler = await connect(handler)
    fake.drop_sessions()
    await until(lambda: len(handler.events_at_ready) == 2)
    before = len(handler.events)
    fake.register("2001")  # ContactStatus then DeviceStateChange, during the resync
    await asyncio.sleep(0.05)
    assert len(handler.events) == before  # held back
    await until(lambda: len(handler.readies) == 2)
    await until(lambda: len(handler.events) >= before + 2)
    assert handler.names()[before : before + 2] == ["ContactStatus", "DeviceStateChange"]


async def test_a_stalled_manager_is_detected_by_the_keepalive_and_replaced(
    connect: Factory, fake: FakeAsterisk
) -> None:
    manager, handler = await connect()
    fake.stalled = True
    started = time.monotonic()
    await until(lambda: handler.lost, timeout=3.0)
    # ping_interval 0.2 s + action_timeout 1 s: the hang is noticed within about 1.2 s.
    assert time.monotonic() - started < 2.0
    assert "keepalive" in handler.lost[0]
    fake.stalled = False
    await until(lambda: manager.ready and len(handler.readies) == 2)


async def test_actions_in_flight_fail_and_are_never_resent_after_a_reconnect(
    connect: Factory, fake: FakeAsterisk
) -> None:
    manager, handler = await connect()
    fake.stalled = True
    action = AmiAction.of("Setvar", Variable="MARK", Value="once")
    with pytest.raises((AmiTimeout, AmiUnavailable)):
        await manager.send(action)
    fake.stalled = False
    await until(lambda: len(handler.readies) == 2)
    await asyncio.sleep(0.2)
    sent = [a for a in fake.actions if a.get("variable") == "MARK"]
    assert len(sent) == 1
    assert "MARK" not in fake.globals  # the stalled server never ran it; nobody re-sent it


async def test_an_action_while_disconnected_fails_fast(
    connect: Factory, fake: FakeAsterisk
) -> None:
    manager, _ = await connect()
    await fake.stop()
    await until(lambda: not manager.ready)
    started = time.monotonic()
    with pytest.raises(AmiUnavailable):
        await manager.send(AmiAction.of("Ping"))
    assert time.monotonic() - started < 0.1


async def test_junk_is_ignored_until_the_budget_is_spent_then_the_connection_is_renewed(
    connect: Factory, fake: FakeAsterisk
) -> None:
    manager, handler = await connect()
    fake.inject(b"\x00\x01garbage\r\n\r\nno colon here\r\n\r\n")
    fake.register("2001")
    await until(lambda: "ContactStatus" in handler.names())
    assert handler.lost == []  # a little junk costs nothing
    fake.inject(b"junk\r\n\r\n" * 150)
    await until(lambda: handler.lost, timeout=3.0)
    assert "junk" in handler.lost[0]
    await until(lambda: manager.ready and len(handler.readies) == 2)


async def test_a_truncated_frame_at_a_connection_loss_is_dropped(
    connect: Factory, fake: FakeAsterisk
) -> None:
    manager, handler = await connect()
    fake.inject(b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/t-1\r\nUniq")
    await asyncio.sleep(0.05)
    fake.drop_sessions()
    await until(lambda: len(handler.readies) == 2)
    assert "Hangup" not in handler.names()
    assert manager.ready


async def test_a_slow_manager_still_answers_within_the_timeout(
    connect: Factory, fake: FakeAsterisk
) -> None:
    manager, _ = await connect()
    fake.response_delay = 0.3
    started = time.monotonic()
    pong = await manager.send(AmiAction.of("Ping"))
    assert pong.get("Ping") == "Pong"
    assert time.monotonic() - started >= 0.3
    fake.response_delay = 1.5
    with pytest.raises(AmiTimeout, match="did not answer Ping within 1 s"):
        await manager.send(AmiAction.of("Ping"))
