"""Run a scenario (one or several replications) and put theory beside the figures when the
scenario is a textbook queue (one queue, exponential handle times, no wrap-up, no rules)."""

from __future__ import annotations

from collections.abc import Callable

from acd.records import meets
from acd.simulation.engine import simulate
from acd.simulation.results import aggregate
from acd.simulation.scenario import DistributionKind, Scenario
from acd.simulation.theory import (
    erlang_a,
    erlang_c,
    erlang_c_asa,
    erlang_c_service_level,
)


def run_scenario(
    scenario: Scenario,
    *,
    replications: int | None = None,
    seed: int | None = None,
    linear_scan: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Simulate and summarise: one replication's figures, or means with `ci95` half-widths.

    Replication `i` uses seed `seed + i`.
    """
    count = replications if replications is not None else scenario.replications
    base = scenario.seed if seed is None else seed
    runs = []
    for i in range(count):
        if progress is not None and count > 1:
            progress(f"replication {i + 1}/{count} (seed {base + i})")
        runs.append(simulate(scenario, seed=base + i, linear_scan=linear_scan, progress=progress))
    result = runs[0].summary() if count == 1 else aggregate(runs)
    theory = textbook_theory(scenario)
    if theory is not None:
        result["theory"] = theory
    return result


def textbook_theory(scenario: Scenario) -> dict[str, object] | None:
    """Erlang C (no patience) or Erlang A (exponential patience) figures, if they apply."""
    if len(scenario.queues) != 1:
        return None
    queue = scenario.queues[0]
    config = queue.config
    service = queue.service_time or scenario.service_time
    patience = queue.patience or scenario.patience
    requirements = tuple(sorted(config.skills.items()))
    agents = [a for a in scenario.agent_configs() if meets(dict(a.skills), requirements)]
    if (
        service.kind is not DistributionKind.EXPONENTIAL
        or config.wrap_up > 0
        or config.rules
        or config.max_wait is not None
        or config.max_length is not None
        or scenario.answer_delay > 0
        or scenario.no_answer_probability > 0
        or any(a.capacity.get(config.channel, 0) != 1 for a in agents)
        or not agents
    ):
        return None
    n = len(agents)
    aht = service.mean
    load = queue.arrival_rate * aht
    threshold = config.service_level_seconds
    if patience is None:
        if load >= n:
            return {"model": "erlang-c", "agents": n, "load_erlangs": load, "stable": False}
        return {
            "model": "erlang-c",
            "agents": n,
            "load_erlangs": round(load, 6),
            "service_level": round(erlang_c_service_level(n, load, aht, threshold), 6),
            "asa": round(erlang_c_asa(n, load, aht), 6),
            "p_wait": round(erlang_c(n, load), 6),
            "occupancy": round(load / n, 6),
        }
    if patience.kind is not DistributionKind.EXPONENTIAL:
        return None
    a = erlang_a(n, queue.arrival_rate, aht, patience.mean)
    return {
        "model": "erlang-a",
        "agents": n,
        "load_erlangs": round(load, 6),
        "p_wait": round(a.p_wait, 6),
        "abandon_rate": round(a.p_abandon, 6),
        "mean_wait_all": round(a.mean_wait, 6),
        "occupancy": round(load * (1 - a.p_abandon) / n, 6),
    }
