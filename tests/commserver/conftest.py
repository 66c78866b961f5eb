"""Factories for a whole server on the simulated backend, real SQLite and a real web port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from commserver.app import Server, build_server
from commserver.config import config_from_mapping

ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]


def site(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A small site: two queues, three agents, a menu; fast simulated phones."""
    raw: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path), "drain_timeout": 2.0},
        "web": {"port": 0},
        "telephony": {"backend": "sim", "ring_timeout": 0.3, "sim": {"answer_delay": 0.01}},
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
            "menu": {"choices": {"1": "support", "2": "billing"}, "timeout": 0.05, "retries": 1}
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    return raw


@pytest.fixture
def make_server(tmp_path: Path) -> ServerFactory:
    """Start a server on this test's own SQLite file and a free port."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Server]:
        config = config_from_mapping(site(tmp_path, **overrides))
        async with build_server(config) as server:
            yield server

    return factory
