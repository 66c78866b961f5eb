"""The TOML shape of queues, agents, rules and settings, and its checks."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from acd import (
    AcdConfig,
    ActionKind,
    Channel,
    QueueConfig,
    Rule,
    ServiceLevelFormula,
    Strategy,
)
from acd.config import acd_config_from_mapping
from acd.errors import InvalidAcdConfig, InvalidContactRequest
from acd.model import AgentConfig, ContactRequest, OverflowAction

EXAMPLE = """
[acd]
auto_pause_after_misses = 2
ring_retry = 3
service_level_formula = "offered-excluding-short-abandons"
audit_interval = false

[[queues]]
name = "support"
skills = { support = 10 }
priority = 1
strategy = "best-skill"
wrap_up = 10
ring_timeout = 12
service_level_seconds = 30
max_wait = 600
on_max_wait = { action = "voicemail", target = "support-box" }
max_length = 20
on_full = { action = "queue", target = "overflow" }
on_no_agents = "callback"
on_closed = { action = "announcement", target = "closed" }
extension = "ignored by the ACD"

[[queues.rules]]
name = "french-or-anyone"
when = "wait >= 60"
drop_skills = ["french"]

[[queues.rules]]
name = "vip-boost"
when = "total_wait >= 30 and ewt > 120"
add_skills = { support = 5 }
priority_delta = 2

[[queues]]
name = "overflow"
skills = {}

[[queues]]
name = "mail"
channel = "email"

[[agents]]
id = "2001"
name = "Ada"
skills = { support = 80, french = 60 }
capacity = { voice = 1, email = 3 }
extension = "2001"
"""


def load(text: str) -> AcdConfig:
    return acd_config_from_mapping(
        tomllib.loads(text), extra_queue_keys={"extension"}, extra_agent_keys={"extension"}
    )


def test_the_documented_example_loads() -> None:
    config = load(EXAMPLE)
    support = config.queues[0]
    assert support.strategy is Strategy.BEST_SKILL
    assert support.wrap_up == 10.0
    assert support.on_max_wait == OverflowAction(ActionKind.VOICEMAIL, "support-box")
    assert support.on_no_agents == OverflowAction(ActionKind.CALLBACK)
    assert support.rules[0].drop_skills == frozenset({"french"})
    assert str(support.rules[1].when) == "total_wait >= 30 and ewt > 120"
    assert config.queues[2].channel is Channel.EMAIL
    assert config.agents[0].capacity == {Channel.VOICE: 1, Channel.EMAIL: 3}
    assert config.settings.audit_interval is None
    assert (
        config.settings.service_level_formula
        is ServiceLevelFormula.OFFERED_EXCLUDING_SHORT_ABANDONS
    )


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"queues": [{"name": "q", "skils": {}}]}, "queues[0].skils"),
        ({"queues": [{"skills": {}}]}, "queues[0].name"),
        ({"queues": [{"name": "q", "skills": {"s": 101}}]}, "queues[0]"),
        ({"queues": [{"name": "q", "strategy": "fastest"}]}, "queues[0].strategy"),
        ({"queues": [{"name": "q", "wrap_up": "10"}]}, "queues[0].wrap_up"),
        (
            {"queues": [{"name": "q", "rules": [{"name": "r", "when": "wait >"}]}]},
            "queues[0].rules[0].when",
        ),
        (
            {"queues": [{"name": "q"}], "agents": [{"id": "a", "capacity": {"fax": 1}}]},
            "agents[0].capacity.fax",
        ),
        ({"queues": [{"name": "q"}], "acd": {"ring_retry": -1}}, "acd"),
        ({"queues": [{"name": "q", "on_full": {"target": "x"}}]}, "queues[0].on_full.action"),
    ],
)
def test_a_bad_key_is_named(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidAcdConfig) as caught:
        acd_config_from_mapping(raw)
    assert caught.value.details["key"] == key


def test_a_move_to_an_unknown_queue_is_refused() -> None:
    with pytest.raises(InvalidAcdConfig, match="unknown queue 'nowhere'"):
        AcdConfig(queues=(QueueConfig("a", rules=(Rule("r", move_to="nowhere"),)),))


def test_queues_moving_contacts_in_a_cycle_are_refused() -> None:
    to_b = OverflowAction(ActionKind.QUEUE, "b")
    with pytest.raises(InvalidAcdConfig, match="cycle: a -> b -> a"):
        AcdConfig(
            queues=(
                QueueConfig("a", max_wait=10, on_max_wait=to_b),
                QueueConfig("b", rules=(Rule("back", move_to="a"),)),
            )
        )


def test_a_move_across_channels_is_refused() -> None:
    with pytest.raises(InvalidAcdConfig, match="email queue"):
        AcdConfig(
            queues=(
                QueueConfig("voice", on_no_agents=OverflowAction(ActionKind.QUEUE, "mail")),
                QueueConfig("mail", channel=Channel.EMAIL),
            )
        )


def test_names_must_be_unique() -> None:
    with pytest.raises(InvalidAcdConfig, match="defined twice"):
        AcdConfig(queues=(QueueConfig("a"), QueueConfig("a")))
    with pytest.raises(InvalidAcdConfig, match="defined twice"):
        AcdConfig(queues=(QueueConfig("a"),), agents=(AgentConfig("x"), AgentConfig("x")))


def test_a_limit_needs_its_action() -> None:
    with pytest.raises(InvalidAcdConfig, match="max_wait and on_max_wait"):
        QueueConfig("a", max_wait=30)
    with pytest.raises(InvalidAcdConfig, match="needs a target"):
        OverflowAction(ActionKind.QUEUE)


def test_config_maps_are_read_only_copies() -> None:
    skills = {"support": 10}
    queue = QueueConfig("a", skills=skills)
    skills["support"] = 99
    assert queue.skills == {"support": 10}
    with pytest.raises(TypeError):
        queue.skills["x"] = 1  # type: ignore[index]


def test_a_contact_with_a_bad_skill_level_is_refused() -> None:
    with pytest.raises(InvalidContactRequest) as caught:
        ContactRequest("c1", "support", skills={"french": 0})
    assert caught.value.code == "invalid-contact-request"
