"""Simulation scenarios: TOML in, a checked `Scenario` out (see docs/acd.md, "Simulator").

A scenario reuses the server's queue and agent tables (rules, strategies, limits...), adding
what a simulation needs: arrival rates, handle-time and patience distributions, and agent
groups (`count` identical agents).
"""

from __future__ import annotations

import math
import random
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn

from acd.config import (
    AGENT_KEYS,
    QUEUE_KEYS,
    agent_from_mapping,
    queue_from_mapping,
    settings_from_mapping,
)
from acd.errors import AcdError, InvalidScenario
from acd.model import AcdSettings, AgentConfig, QueueConfig, ServiceLevelFormula


class DistributionKind(StrEnum):
    """Shapes of handle-time and patience distributions."""

    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"
    FIXED = "fixed"
    UNIFORM = "uniform"


@dataclass(frozen=True, slots=True)
class Distribution:
    """A positive random duration: `mean` seconds; lognormal also takes `sd` (default: the
    mean, i.e. a coefficient of variation of 1); uniform spans `mean` +/- `spread`."""

    kind: DistributionKind
    mean: float
    sd: float | None = None
    spread: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and self.mean > 0):
            raise InvalidScenario("a distribution's mean must be > 0", mean=self.mean)
        if self.sd is not None and not self.sd > 0:
            raise InvalidScenario("a distribution's sd must be > 0", sd=self.sd)
        if not 0 <= self.spread <= self.mean:
            raise InvalidScenario("a uniform spread must be within [0, mean]")

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A function drawing one value per call from `rng`."""
        mean = self.mean
        if self.kind is DistributionKind.EXPONENTIAL:
            rate = 1.0 / mean
            expo = rng.expovariate
            return lambda: expo(rate)
        if self.kind is DistributionKind.FIXED:
            return lambda: mean
        if self.kind is DistributionKind.UNIFORM:
            low, high = mean - self.spread, mean + self.spread
            uniform = rng.uniform
            return lambda: uniform(low, high)
        sd = self.sd if self.sd is not None else mean
        sigma2 = math.log(1.0 + (sd / mean) ** 2)
        mu, sigma = math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)
        lognorm = rng.lognormvariate
        return lambda: lognorm(mu, sigma)


@dataclass(frozen=True, slots=True)
class SimQueue:
    """A queue with its Poisson arrival rate and optional own distributions."""

    config: QueueConfig
    arrival_rate: float
    service_time: Distribution | None = None
    patience: Distribution | None = None


@dataclass(frozen=True, slots=True)
class AgentGroup:
    """`count` identical agents; ids are `<prefix><n>`."""

    count: int
    template: AgentConfig
    prefix: str


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything one simulation run needs."""

    queues: tuple[SimQueue, ...]
    agents: tuple[AgentGroup, ...]
    service_time: Distribution
    patience: Distribution | None = None
    name: str = "scenario"
    seed: int = 0
    calls: int | None = 10_000
    duration_s: float | None = None
    warmup_calls: int = 0
    replications: int = 1
    service_level_formula: ServiceLevelFormula = ServiceLevelFormula.OFFERED
    answer_delay: float = 0.0
    no_answer_probability: float = 0.0
    ready_after_auto_pause: float = 60.0
    drain_limit: float = 86_400.0
    settings: AcdSettings = field(default_factory=lambda: AcdSettings(audit_interval=3600.0))

    def __post_init__(self) -> None:
        if not self.queues:
            raise InvalidScenario("a scenario needs at least one queue")
        if not self.agents:
            raise InvalidScenario("a scenario needs at least one agent group")
        if (self.calls is None) == (self.duration_s is None):
            raise InvalidScenario("give exactly one of 'calls' and 'duration_s'")
        if self.calls is not None and self.calls <= 0:
            raise InvalidScenario("'calls' must be > 0")
        if self.duration_s is not None and not self.duration_s > 0:
            raise InvalidScenario("'duration_s' must be > 0")
        if self.warmup_calls < 0 or self.replications < 1:
            raise InvalidScenario("'warmup_calls' must be >= 0 and 'replications' >= 1")
        if not 0 <= self.no_answer_probability < 1:
            raise InvalidScenario("'no_answer_probability' must be in [0, 1)")
        if self.answer_delay < 0:
            raise InvalidScenario("'answer_delay' must be >= 0")
        if sum(q.arrival_rate for q in self.queues) <= 0:
            raise InvalidScenario("at least one queue needs an arrival_rate > 0")
        if any(q.arrival_rate < 0 for q in self.queues):
            raise InvalidScenario("an arrival_rate must be >= 0")
        if len({q.config.channel for q in self.queues}) != 1:
            raise InvalidScenario("all queues of a scenario must share one channel")

    def agent_configs(self) -> list[AgentConfig]:
        """Every simulated agent."""
        agents = []
        for group in self.agents:
            t = group.template
            for n in range(1, group.count + 1):
                agent_id = f"{group.prefix}{n}"
                agents.append(AgentConfig(agent_id, agent_id, t.skills, t.capacity))
        return agents


SCENARIO_KEYS = frozenset(
    {
        "name",
        "seed",
        "calls",
        "duration_s",
        "warmup_calls",
        "replications",
        "service_level_seconds",
        "service_level_formula",
        "answer_delay",
        "no_answer_probability",
        "ready_after_auto_pause",
        "drain_limit",
        "service_time",
        "patience",
        "queues",
        "agents",
        "acd",
    }
)
SIM_QUEUE_KEYS = frozenset({"arrival_rate", "service_time", "patience"})
SIM_AGENT_KEYS = frozenset({"count", "prefix"})
DISTRIBUTION_KEYS = frozenset({"distribution", "mean", "sd", "spread"})


def scenario_from_toml(text: str, *, name: str = "scenario") -> Scenario:
    """Parse a scenario file's text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidScenario(f"not valid TOML: {exc}") from None
    return scenario_from_mapping(raw, name=name)


def scenario_from_mapping(raw: Mapping[str, Any], *, name: str = "scenario") -> Scenario:
    """Check and build a scenario from parsed TOML."""
    for key in raw:
        if key not in SCENARIO_KEYS:
            _fail(key, f"unknown key (known: {', '.join(sorted(SCENARIO_KEYS))})")
    try:
        acd_table = dict(_table(raw.get("acd", {}), "acd"))
        # Simulated hours are long and cheap: audit hourly unless the scenario says otherwise.
        acd_table.setdefault("audit_interval", 3600.0)
        settings = settings_from_mapping(acd_table)
        formula = ServiceLevelFormula(raw.get("service_level_formula", "offered"))
    except (AcdError, ValueError) as exc:
        raise InvalidScenario(str(exc)) from None
    default_sl = _number(raw.get("service_level_seconds", 20.0), "service_level_seconds")
    queues = []
    for i, q in enumerate(_list(raw.get("queues"), "queues")):
        where = f"queues[{i}]"
        table = dict(_table(q, where))
        table.setdefault("service_level_seconds", default_sl)
        try:
            config = queue_from_mapping(table, where, SIM_QUEUE_KEYS)
        except AcdError as exc:
            raise InvalidScenario(exc.message) from None
        queues.append(
            SimQueue(
                config=config,
                arrival_rate=_number(table.get("arrival_rate", 0.0), f"{where}.arrival_rate"),
                service_time=_distribution(table.get("service_time"), f"{where}.service_time"),
                patience=_distribution(table.get("patience"), f"{where}.patience"),
            )
        )
    groups = []
    for i, a in enumerate(_list(raw.get("agents"), "agents")):
        where = f"agents[{i}]"
        table = dict(_table(a, where))
        count = table.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            _fail(f"{where}.count", "must be an integer >= 1")
        prefix = table.get("prefix", f"g{i + 1}-")
        if not isinstance(prefix, str) or not prefix:
            _fail(f"{where}.prefix", "must be a non-empty string")
        table.setdefault("id", prefix)
        try:
            template = agent_from_mapping(table, where, SIM_AGENT_KEYS)
        except AcdError as exc:
            raise InvalidScenario(exc.message) from None
        groups.append(AgentGroup(count, template, prefix))
    service_time = _distribution(raw.get("service_time"), "service_time")
    if service_time is None:
        if any(q.service_time is None for q in queues):
            _fail("service_time", "is required (or give every queue its own)")
        service_time = queues[0].service_time
        assert service_time is not None
    prefixes = [g.prefix for g in groups]
    if len(set(prefixes)) != len(prefixes):
        _fail("agents", "two groups share a prefix")
    try:
        return Scenario(
            queues=tuple(queues),
            agents=tuple(groups),
            service_time=service_time,
            patience=_distribution(raw.get("patience"), "patience"),
            name=_str(raw.get("name", name), "name"),
            seed=_int(raw.get("seed", 0), "seed"),
            calls=_int(raw["calls"], "calls") if "calls" in raw else None,
            duration_s=(_number(raw["duration_s"], "duration_s") if "duration_s" in raw else None),
            warmup_calls=_int(raw.get("warmup_calls", 0), "warmup_calls"),
            replications=_int(raw.get("replications", 1), "replications"),
            service_level_formula=formula,
            answer_delay=_number(raw.get("answer_delay", 0.0), "answer_delay"),
            no_answer_probability=_number(
                raw.get("no_answer_probability", 0.0), "no_answer_probability"
            ),
            ready_after_auto_pause=_number(
                raw.get("ready_after_auto_pause", 60.0), "ready_after_auto_pause"
            ),
            drain_limit=_number(raw.get("drain_limit", 86_400.0), "drain_limit"),
            settings=settings,
        )
    except AcdError as exc:
        raise InvalidScenario(exc.message) from None


def _distribution(raw: Any, where: str) -> Distribution | None:
    if raw is None:
        return None
    table = _table(raw, where)
    for key in table:
        if key not in DISTRIBUTION_KEYS:
            _fail(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(DISTRIBUTION_KEYS))})")
    try:
        kind = DistributionKind(table.get("distribution", "exponential"))
    except ValueError:
        allowed = ", ".join(k.value for k in DistributionKind)
        _fail(f"{where}.distribution", f"must be one of {allowed}")
    if "mean" not in table:
        _fail(f"{where}.mean", "is required")
    sd = table.get("sd")
    try:
        return Distribution(
            kind,
            _number(table["mean"], f"{where}.mean"),
            None if sd is None else _number(sd, f"{where}.sd"),
            _number(table.get("spread", 0.0), f"{where}.spread"),
        )
    except InvalidScenario as exc:
        _fail(where, exc.message)


def _fail(where: str, message: str) -> NoReturn:
    raise InvalidScenario(f"'{where}': {message}", key=where)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(where, "must be a table")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        _fail(where, "must be a non-empty list of tables")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, "must be a string")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, "must be an integer")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(where, "must be a number")
    return float(value)


__all__ = [
    "AGENT_KEYS",
    "QUEUE_KEYS",
    "AgentGroup",
    "Distribution",
    "DistributionKind",
    "Scenario",
    "SimQueue",
    "scenario_from_mapping",
    "scenario_from_toml",
]
