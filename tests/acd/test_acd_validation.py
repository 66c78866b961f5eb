"""The simulator, running the real dispatcher, against queueing theory.

Statistical budget (docs/acd.md, "Validation"): each point runs 150,000 calls with a fixed
seed. The service level and P(wait) are checked to +/-1 pp and +/-2 pp, several standard errors
at these loads. The ASA's run-to-run spread is far wider (waits are strongly correlated in
time): at 150,000 calls its standard error is about 3 % at 4 and 10 agents and 15-25 % at 55
and 180, so it is checked to within max(5 %, 3 batch-means standard errors) -- a bias check --
and the +/-5 % figures come from the long runs recorded in the docs.
"""

from __future__ import annotations

import dataclasses

import pytest

from acd import AgentConfig, QueueConfig
from acd.scenarios import SCENARIOS_DIR
from acd.simulation import scenario_from_toml, simulate
from acd.simulation.results import batch_means_error
from acd.simulation.scenario import (
    AgentGroup,
    Distribution,
    DistributionKind,
    Scenario,
    SimQueue,
)
from acd.simulation.theory import (
    erlang_a,
    erlang_c,
    erlang_c_asa,
    erlang_c_service_level,
)

pytestmark = pytest.mark.slow

AHT = 180.0
EXPONENTIAL_AHT = Distribution(DistributionKind.EXPONENTIAL, AHT)


@pytest.mark.parametrize("agents", [4, 10, 55, 180], ids=lambda n: f"{n}-agents")
def test_single_skill_matches_erlang_c(agents: int) -> None:
    # Loads 2, 6, 43 and 160 erlangs (acd/scenarios/erlang_c_<agents>.toml).
    scenario = scenario_from_toml((SCENARIOS_DIR / f"erlang_c_{agents}.toml").read_text())
    (queue,) = scenario.queues
    (group,) = scenario.agents
    assert group.count == agents
    load = queue.arrival_rate * AHT
    threshold = queue.config.service_level_seconds
    run = simulate(scenario, record_waits=True)
    figures = run.figures(run.overall())
    assert figures["offered"] == 150_000

    sl = erlang_c_service_level(agents, load, AHT, threshold)
    assert figures["service_level"] == pytest.approx(sl, abs=0.01)
    assert figures["p_wait"] == pytest.approx(erlang_c(agents, load), abs=0.02)
    assert figures["occupancy"] == pytest.approx(load / agents, abs=0.01)

    asa = erlang_c_asa(agents, load, AHT)
    mean, error = batch_means_error(run.overall().waits)
    assert mean == pytest.approx(figures["asa"])
    assert abs(mean - asa) <= max(0.05 * asa, 3 * error), (mean, asa, error)


@pytest.mark.parametrize(
    ("agents", "load", "patience", "calls"),
    [(4, 3.0, 180.0, 60_000), (20, 18.0, 180.0, 90_000)],
    ids=["4-agents", "20-agents"],
)
def test_exponential_patience_matches_erlang_a(
    agents: int, load: float, patience: float, calls: int
) -> None:
    scenario = Scenario(
        queues=(SimQueue(QueueConfig("q", skills={"s": 1}), load / AHT),),
        agents=(AgentGroup(agents, AgentConfig("a", skills={"s": 50}), "a"),),
        service_time=EXPONENTIAL_AHT,
        patience=Distribution(DistributionKind.EXPONENTIAL, patience),
        calls=calls,
        warmup_calls=2000,
        seed=1,
    )
    run = simulate(scenario)
    figures = run.figures(run.overall())
    theory = erlang_a(agents, load / AHT, AHT, patience)
    assert figures["abandon_rate"] == pytest.approx(theory.p_abandon, abs=0.005)
    assert figures["p_wait"] == pytest.approx(theory.p_wait, abs=0.02)


def test_a_chain_of_two_skill_agents_comes_close_to_the_pooled_result() -> None:
    def run(name: str) -> float:
        scenario = scenario_from_toml((SCENARIOS_DIR / f"{name}.toml").read_text())
        scenario = dataclasses.replace(scenario, calls=40_000)
        result = simulate(scenario)
        level = result.figures(result.overall())["service_level"]
        assert isinstance(level, float)
        return level

    chain, pooled, dedicated = run("chain_3"), run("pooled_3"), run("dedicated_3")
    # Theory for the two bounds, one pool of 30 agents and three pools of ten (loosely: at
    # 40,000 calls one run's service level has a standard error of about 1 pp).
    assert pooled == pytest.approx(erlang_c_service_level(30, 24.3, AHT, 20.0), abs=0.03)
    assert dedicated == pytest.approx(erlang_c_service_level(10, 8.1, AHT, 20.0), abs=0.04)
    assert pooled - chain < 0.03  # the chain gets nearly all of the pooling gain...
    assert chain - dedicated > 0.15  # ...which is large
