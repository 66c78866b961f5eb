"""Fixtures for the asterisk backend: a fake Asterisk on 127.0.0.1:0, backends and servers on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from commserver.app import Server, build_server
from commserver.config import AsteriskSettings, config_from_mapping
from commserver.telephony.asterisk import AsteriskBackend
from commserver.telephony.base import TelephonyEvent
from ivr.prompts import PromptCache
from tests.asterisk.fake_asterisk import FakeAsterisk

E = TypeVar("E", bound=TelephonyEvent)

#: Timings that keep the tests quick: keepalive and reconnects in fractions of a second.
FAST = {
    "connect_timeout": 2.0,
    "action_timeout": 1.0,
    "ping_interval": 0.2,
    "reconnect_min": 0.05,
    "reconnect_max": 0.2,
}


class Recorder:
    """A `TelephonyHandler` that keeps every event, in order."""

    def __init__(self) -> None:
        self.events: list[TelephonyEvent] = []

    def on_telephony_event(self, event: TelephonyEvent) -> None:
        """Keep it."""
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        """Events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type[E], count: int = 1, timeout: float = 5.0) -> list[E]:
        """Wait until `count` events of `kind` arrived; return them."""
        async with asyncio.timeout(timeout):
            while len(self.of(kind)) < count:  # noqa: ASYNC110 - the backend appends
                await asyncio.sleep(0.005)
        return self.of(kind)


BackendFactory = Callable[..., Awaitable[tuple[AsteriskBackend, Recorder]]]
ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    """A started fake Asterisk; agents' phones 2001 and 2002 registered."""
    server = FakeAsterisk()
    await server.start()
    server.phone("2001")
    server.phone("2002")
    yield server
    await server.stop()


def settings(fake: FakeAsterisk, **overrides: Any) -> AsteriskSettings:
    """Backend settings pointing at the fake, with the quick timings."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": fake.port,
        "username": "caruso",
        "secret": "s3cret",
        **FAST,
    }
    values.update(overrides)
    return AsteriskSettings(**values)


@pytest.fixture
async def make_backend(fake: FakeAsterisk, tmp_path: Path) -> AsyncIterator[BackendFactory]:
    """Open backends on the fake (each with its own recorder); all closed at teardown."""
    async with AsyncExitStack() as stack:

        async def factory(**overrides: Any) -> tuple[AsteriskBackend, Recorder]:
            backend = AsteriskBackend(
                settings(fake, **overrides),
                prompts=PromptCache(tmp_path / "prompts"),
                extensions=["2001", "2002", "2003"],
                data_dir=tmp_path,
                ring_timeout=2.0,
            )
            recorder = Recorder()
            await backend.open(recorder)
            stack.push_async_callback(backend.close)
            return backend, recorder

        yield factory


def asterisk_site(tmp_path: Path, port: int, **overrides: Any) -> dict[str, Any]:
    """The test site of tests/commserver on the asterisk backend, pointed at the fake."""
    raw: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path / "data"), "drain_timeout": 1.0},
        "web": {"port": 0},
        "telephony": {
            "backend": "asterisk",
            "ring_timeout": 2.0,
            "asterisk": {"port": port, "username": "caruso", "secret": "s3cret", **FAST},
        },
        "queues": [
            {"name": "support", "skills": {"support": 1}, "wrap_up": 0.05},
            {"name": "billing", "skills": {"billing": 1}, "wrap_up": 0.05},
        ],
        "agents": [
            {"id": "s1", "skills": {"support": 50}, "logged_in": True, "extension": "2001"},
            {"id": "b1", "skills": {"billing": 50}, "logged_in": True, "extension": "2002"},
            {"id": "sb", "skills": {"support": 10, "billing": 10}, "extension": "2003"},
        ],
        "ivr": {
            "menu": {"choices": {"1": "support", "2": "billing"}, "timeout": 1.0, "retries": 1}
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    return raw


@pytest.fixture
def make_server(fake: FakeAsterisk, tmp_path: Path) -> ServerFactory:
    """Start a whole Caruso on the asterisk backend against the fake."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Server]:
        config = config_from_mapping(asterisk_site(tmp_path, fake.port, **overrides))
        async with build_server(config) as server:
            yield server

    return factory
