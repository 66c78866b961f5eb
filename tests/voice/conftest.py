"""Factories for a whole Caruso on the `sip` backend: real SIP and RTP over loopback, port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from commserver.app import Server, build_server
from commserver.config import config_from_mapping
from commserver.telephony.sip import SipBackend
from tests.sip.sip_harness import PCAP_DIR

ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]

MENU_PROMPT = "Press 1 for support."


def voice_site(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A small site on the sip backend: two queues, agents 2001 (support) and 2002 (billing)."""
    raw: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path / "data"), "drain_timeout": 2.0},
        "web": {"port": 0},
        "telephony": {
            "backend": "sip",
            "ring_timeout": 5.0,
            "sip": {"port": 0, "rtp_port_min": 0, "rtp_port_max": 0},
        },
        "queues": [
            {"name": "support", "skills": {"support": 1}, "wrap_up": 0.1},
            {"name": "billing", "skills": {"billing": 1}, "wrap_up": 0.1},
        ],
        "agents": [
            {
                "id": "s1",
                "extension": "2001",
                "sip_password": "pw2001",
                "skills": {"support": 50},
                "logged_in": True,
            },
            {
                "id": "b1",
                "extension": "2002",
                "sip_password": "pw2002",
                "skills": {"billing": 50},
                "logged_in": True,
            },
        ],
        "ivr": {
            "numbers": ["100"],
            "menu": {
                "prompt": MENU_PROMPT,
                "choices": {"1": "support", "2": "billing"},
                "timeout": 4.0,
                "retries": 1,
            },
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            merged = {**raw[section], **values}
            if section == "telephony" and "sip" in values:
                merged["sip"] = {**raw["telephony"]["sip"], **values["sip"]}
            raw[section] = merged
        else:
            raw[section] = values
    return raw


@pytest.fixture
def make_voice_server(tmp_path: Path) -> ServerFactory:
    """Start a server on the sip backend, its own SQLite file and free ports."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Server]:
        config = config_from_mapping(voice_site(tmp_path, **overrides))
        async with build_server(config) as server:
            yield server

    return factory


def sip_backend(server: Server) -> SipBackend:
    """The server's backend, which these tests run on the sip backend."""
    assert isinstance(server.backend, SipBackend)
    return server.backend


def target(server: Server) -> str:
    """host:port of the server's SIP socket, as SIPp wants it."""
    host, port = sip_backend(server).address
    return f"{host}:{port}"


@pytest.fixture
def sipp_cwd(tmp_path: Path) -> Path:
    """A working directory where SIPp finds `./pcap/` (the sip-tester sample captures)."""
    work = tmp_path / "sipp"
    work.mkdir()
    (work / "pcap").symlink_to(PCAP_DIR)
    return work
