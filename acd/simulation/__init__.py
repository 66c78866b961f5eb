"""The discrete-event simulator: scenarios on a virtual clock through the real dispatcher."""

from acd.simulation.engine import simulate
from acd.simulation.replications import run_scenario
from acd.simulation.results import RunResult, aggregate
from acd.simulation.scenario import Scenario, scenario_from_mapping, scenario_from_toml

__all__ = [
    "RunResult",
    "Scenario",
    "aggregate",
    "run_scenario",
    "scenario_from_mapping",
    "scenario_from_toml",
    "simulate",
]
