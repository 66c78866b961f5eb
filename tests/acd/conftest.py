"""Fixtures for ACD tests: a dispatcher factory (audit off unless asked for)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from acd import AcdConfig, AcdSettings, AgentConfig, Dispatcher, QueueConfig

DispatcherFactory = Callable[..., Dispatcher]


@pytest.fixture
def make_dispatcher() -> DispatcherFactory:
    """Build a dispatcher; queues and agents by config, settings by keyword, audit off."""

    def build(
        queues: Iterable[QueueConfig] = (QueueConfig("support", skills={"support": 1}),),
        agents: Iterable[AgentConfig] = (),
        *,
        login: Iterable[str] | bool = True,
        linear_scan: bool = False,
        **settings: Any,
    ) -> Dispatcher:
        settings.setdefault("audit_interval", None)
        config = AcdConfig(
            queues=tuple(queues), agents=tuple(agents), settings=AcdSettings(**settings)
        )
        dispatcher = Dispatcher(config, linear_scan=linear_scan)
        to_login = [a.id for a in config.agents] if login is True else list(login or ())
        for agent_id in to_login:
            dispatcher.login(agent_id, 0.0)
        return dispatcher

    return build
