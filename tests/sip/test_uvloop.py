"""The same stack on uvloop, the loop the server runs on when it is installed.

The loop comes from `pytest_asyncio_loop_factories` in this folder's conftest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.sip.sip_harness import EndpointFactory, free_udp_port, run_sipp

uvloop = pytest.importorskip("uvloop")


async def test_runs_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


async def test_sipp_calls_with_dtmf_on_uvloop(
    make_endpoint: EndpointFactory, sipp_cwd: Path
) -> None:
    from tests.sip.sip_harness import SCENARIOS

    endpoint, handler = await make_endpoint()
    target = f"{endpoint.address[0]}:{endpoint.address[1]}"
    result = await run_sipp(
        "-sf", str(SCENARIOS / "uac_dtmf.xml"), "-s", "100", "-m", "4", "-l", "4", "-r", "10",
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_udp_port()),
        "-mp", str(free_udp_port()), target, cwd=sipp_cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.errors or result.stderr
    await handler.wait_for(lambda: len(handler.ended) == 4)
    assert sorted(e.digit for e in handler.digits) == sorted("4#" * 4)
