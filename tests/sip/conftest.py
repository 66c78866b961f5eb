"""Fixtures for the SIP stack tests: endpoints on port 0, raw peers, a SIPp working directory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from commserver.sip import SipConfig, SipEndpoint, SipHandler, TimerConfig
from tests.sip.sip_harness import PCAP_DIR, EndpointFactory, RecordingHandler, UdpPeer

USERS = {"2001": "pw2001", "2002": "pw2002"}


@pytest.fixture
async def make_endpoint() -> AsyncIterator[EndpointFactory]:
    """Start endpoints on 127.0.0.1:0 with test users; all are stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(
            handler: SipHandler | None = None, **overrides: Any
        ) -> tuple[SipEndpoint, RecordingHandler]:
            settings: dict[str, Any] = {
                "host": "127.0.0.1",
                "port": 0,
                "credentials": USERS.get,
                "timers": TimerConfig(t1=0.05, t2=0.4, t4=0.5),
            }
            settings.update(overrides)
            recorder = handler if isinstance(handler, RecordingHandler) else RecordingHandler()
            endpoint = SipEndpoint(SipConfig(**settings), handler or recorder)
            await endpoint.start()
            # Test peers rarely answer the BYEs of the final drain; do not wait long for them.
            stack.push_async_callback(endpoint.stop, 0.3)
            return endpoint, recorder

        yield factory


@pytest.fixture
async def peer() -> AsyncIterator[UdpPeer]:
    """A raw UDP SIP peer."""
    udp = await UdpPeer.open()
    yield udp
    udp.close()


@pytest.fixture
def sipp_cwd(tmp_path: Path) -> Path:
    """A working directory where SIPp finds `./pcap/` (the sip-tester sample captures)."""
    (tmp_path / "pcap").symlink_to(PCAP_DIR)
    return tmp_path


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    """test_uvloop.py runs on uvloop; everything else here on the standard loop."""
    if item.path.name == "test_uvloop.py":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
