"""Build an `AcdConfig` from parsed TOML: the `[acd]` table, `[[queues]]` and `[[agents]]`.

The shape is documented in docs/acd.md. Every unknown key, wrong type or bad reference raises
`InvalidAcdConfig` naming the key (`queues[1].rules[0].when`); the server and the simulator
both load through here, each allowing the extra keys it owns (an agent's `extension`, a
simulated queue's `arrival_rate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any, NoReturn, TypeVar

from acd.conditions import parse_condition
from acd.errors import AcdError, InvalidAcdConfig
from acd.model import (
    AcdConfig,
    AcdSettings,
    ActionKind,
    AgentConfig,
    Channel,
    OverflowAction,
    QueueConfig,
    Rule,
    ServiceLevelFormula,
    Strategy,
)

QUEUE_KEYS = frozenset(
    {
        "name",
        "skills",
        "priority",
        "strategy",
        "channel",
        "service_level_seconds",
        "wrap_up",
        "ring_timeout",
        "expected_handle_time",
        "max_wait",
        "on_max_wait",
        "max_length",
        "on_full",
        "on_no_agents",
        "on_closed",
        "rules",
    }
)
AGENT_KEYS = frozenset({"id", "name", "skills", "capacity"})
RULE_KEYS = frozenset(
    {"name", "when", "skills", "add_skills", "drop_skills", "priority_delta", "move_to"}
)
T = TypeVar("T")

SETTINGS_KEYS = frozenset(f.name for f in dataclasses.fields(AcdSettings))


def acd_config_from_mapping(
    raw: Mapping[str, Any],
    *,
    extra_queue_keys: Collection[str] = (),
    extra_agent_keys: Collection[str] = (),
) -> AcdConfig:
    """The ACD part of a parsed TOML document (other top-level tables are ignored)."""
    settings = settings_from_mapping(_table(raw.get("acd", {}), "acd"))
    queues = tuple(
        queue_from_mapping(_table(q, f"queues[{i}]"), f"queues[{i}]", extra_queue_keys)
        for i, q in enumerate(_list(raw.get("queues", []), "queues"))
    )
    agents = tuple(
        agent_from_mapping(_table(a, f"agents[{i}]"), f"agents[{i}]", extra_agent_keys)
        for i, a in enumerate(_list(raw.get("agents", []), "agents"))
    )
    return AcdConfig(queues=queues, agents=agents, settings=settings)


def settings_from_mapping(raw: Mapping[str, Any]) -> AcdSettings:
    """The `[acd]` table."""
    _known(raw, SETTINGS_KEYS, "acd")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"acd.{key}"
        if key in ("auto_pause_after_misses", "seed", "why_history"):
            kwargs[key] = _int(value, where)
        elif key in ("audit_interval", "max_handle_time"):
            kwargs[key] = None if value is False else _number(value, where)
        elif key == "service_level_formula":
            kwargs[key] = _enum(ServiceLevelFormula, value, where)
        else:
            kwargs[key] = _number(value, where)
    return _build(AcdSettings, kwargs, "acd")


def queue_from_mapping(
    raw: Mapping[str, Any], where: str, extra_keys: Collection[str] = ()
) -> QueueConfig:
    """One `[[queues]]` table."""
    _known(raw, QUEUE_KEYS | frozenset(extra_keys), where)
    if "name" not in raw:
        _fail(f"{where}.name", "is required")
    kwargs: dict[str, Any] = {"name": _str(raw["name"], f"{where}.name")}
    for key, value in raw.items():
        at = f"{where}.{key}"
        if key in extra_keys or key == "name":
            continue
        if key == "skills":
            kwargs[key] = _skills(value, at)
        elif key in ("priority", "max_length"):
            kwargs[key] = _int(value, at)
        elif key == "strategy":
            kwargs[key] = _enum(Strategy, value, at)
        elif key == "channel":
            kwargs[key] = _enum(Channel, value, at)
        elif key in ("on_max_wait", "on_full", "on_no_agents", "on_closed"):
            kwargs[key] = _action(value, at)
        elif key == "rules":
            kwargs[key] = tuple(
                _rule(_table(r, f"{at}[{i}]"), f"{at}[{i}]") for i, r in enumerate(_list(value, at))
            )
        else:
            kwargs[key] = _number(value, at)
    return _build(QueueConfig, kwargs, where)


def agent_from_mapping(
    raw: Mapping[str, Any], where: str, extra_keys: Collection[str] = ()
) -> AgentConfig:
    """One `[[agents]]` table."""
    _known(raw, AGENT_KEYS | frozenset(extra_keys), where)
    if "id" not in raw:
        _fail(f"{where}.id", "is required")
    kwargs: dict[str, Any] = {"id": _str(raw["id"], f"{where}.id")}
    if "name" in raw:
        kwargs["name"] = _str(raw["name"], f"{where}.name")
    if "skills" in raw:
        kwargs["skills"] = _skills(raw["skills"], f"{where}.skills")
    if "capacity" in raw:
        kwargs["capacity"] = capacity_from_mapping(raw["capacity"], f"{where}.capacity")
    return _build(AgentConfig, kwargs, where)


def capacity_from_mapping(raw: Any, where: str) -> dict[Channel, int]:
    """`{ voice = 1, email = 3 }`."""
    table = _table(raw, where)
    return {
        _enum(Channel, channel, f"{where}.{channel}"): _int(count, f"{where}.{channel}")
        for channel, count in table.items()
    }


def _rule(raw: Mapping[str, Any], where: str) -> Rule:
    _known(raw, RULE_KEYS, where)
    if "name" not in raw:
        _fail(f"{where}.name", "is required")
    kwargs: dict[str, Any] = {"name": _str(raw["name"], f"{where}.name")}
    for key, value in raw.items():
        at = f"{where}.{key}"
        if key == "name":
            continue
        if key == "when":
            try:
                kwargs[key] = parse_condition(_str(value, at))
            except AcdError as exc:
                _fail(at, exc.message)
        elif key in ("skills", "add_skills"):
            kwargs[key] = _skills(value, at)
        elif key == "drop_skills":
            kwargs[key] = frozenset(_str(s, f"{at}[{i}]") for i, s in enumerate(_list(value, at)))
        elif key == "priority_delta":
            kwargs[key] = _int(value, at)
        else:
            kwargs[key] = _str(value, at)
    return _build(Rule, kwargs, where)


def _action(value: Any, where: str) -> OverflowAction:
    if isinstance(value, str):
        return _build(OverflowAction, {"action": _enum(ActionKind, value, where)}, where)
    table = _table(value, where)
    _known(table, frozenset({"action", "target"}), where)
    if "action" not in table:
        _fail(f"{where}.action", "is required")
    kwargs: dict[str, Any] = {"action": _enum(ActionKind, table["action"], f"{where}.action")}
    if "target" in table:
        kwargs["target"] = _str(table["target"], f"{where}.target")
    return _build(OverflowAction, kwargs, where)


# -- small checked conversions ---------------------------------------------------------------


def _fail(where: str, message: str) -> NoReturn:
    raise InvalidAcdConfig(f"'{where}': {message}", key=where)


def _build(cls: type[T], kwargs: dict[str, Any], where: str) -> T:
    try:
        return cls(**kwargs)
    except InvalidAcdConfig as exc:
        _fail(where, exc.message)


def _known(raw: Mapping[str, Any], known: Collection[str], where: str) -> None:
    for key in raw:
        if key not in known:
            _fail(f"{where}.{key}", f"unknown key (known here: {', '.join(sorted(known))})")


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(where, "must be a table")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        _fail(where, "must be a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, f"must be a string, not {value!r}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, f"must be an integer, not {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(where, f"must be a number, not {value!r}")
    return float(value)


def _enum(cls: Any, value: Any, where: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        _fail(where, f"must be one of {allowed}, not {value!r}")


def _skills(value: Any, where: str) -> dict[str, int]:
    table = _table(value, where)
    return {str(k): _int(v, f"{where}.{k}") for k, v in table.items()}
