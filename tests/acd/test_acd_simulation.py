"""The simulator: scenario files, determinism, accounting, replications and the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from acd.errors import InvalidScenario
from acd.scenarios import SCENARIOS_DIR
from acd.simulation import run_scenario, scenario_from_toml, simulate
from acd.simulation.scenario import DistributionKind
from commserver.commands import simulate as simulate_command

ISSUE_EXAMPLE = """
seed = 7
calls = 2000                    # or duration_s
service_level_seconds = 20
[[queues]]
name = "support"
arrival_rate = 0.9444           # contacts per second (Poisson)
skills = { support = 1 }        # required skill: minimum level
[[agents]]                      # a group of identical agents
count = 180
skills = { support = 50 }
[service_time]
distribution = "exponential"    # also lognormal, fixed
mean = 180
[patience]                      # optional; omit for no abandonment
distribution = "exponential"
mean = 120
"""

FIGURES = {
    "offered",
    "answered",
    "abandoned",
    "service_level",
    "asa",
    "aht",
    "p_wait",
    "abandon_rate",
    "occupancy",
    "ewt_error",
}


def test_the_issue_example_scenario_parses_with_its_defaults() -> None:
    scenario = scenario_from_toml(ISSUE_EXAMPLE)
    assert scenario.seed == 7
    assert scenario.calls == 2000
    (queue,) = scenario.queues
    assert queue.arrival_rate == pytest.approx(0.9444)
    assert queue.config.service_level_seconds == 20.0
    assert scenario.service_time.kind is DistributionKind.EXPONENTIAL
    assert scenario.patience is not None
    assert len(scenario.agent_configs()) == 180


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("calls = 10\n[[agents]]\ncount=1\n[service_time]\nmean=1", "'queues'"),
        ("colour = 'red'\n" + ISSUE_EXAMPLE, "'colour': unknown key"),
        (ISSUE_EXAMPLE.replace("mean = 180", "mean = -1"), "'service_time'"),
        (ISSUE_EXAMPLE.replace("count = 180", "count = 0"), "'agents[0].count'"),
        (ISSUE_EXAMPLE.replace('"exponential"    #', '"gamma" #'), "distribution"),
        (ISSUE_EXAMPLE.replace("calls = 2000", "duration_s = 60\ncalls = 1"), "exactly one"),
        (ISSUE_EXAMPLE.replace("support = 50", "support = 500"), "outside 1-100"),
        ("calls = [", "not valid TOML"),
    ],
)
def test_a_bad_scenario_is_one_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(InvalidScenario, match=fragment.replace("[", r"\[")) as caught:
        scenario_from_toml(text)
    assert caught.value.code == "invalid-scenario"


@pytest.mark.parametrize("path", sorted(SCENARIOS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_runs(path: Path) -> None:
    scenario = scenario_from_toml(path.read_text(), name=path.stem)
    scenario = dataclasses.replace(scenario, calls=400, warmup_calls=0, replications=1)
    result = run_scenario(scenario)
    overall = result["overall"]
    assert isinstance(overall, dict)
    assert overall["offered"] == 400
    assert overall["answered"] + overall["abandoned"] + overall["overflowed"] == 400


def test_a_seed_gives_the_same_run_and_another_seed_another() -> None:
    scenario = dataclasses.replace(scenario_from_toml(ISSUE_EXAMPLE), calls=3000)
    first, again, other = (simulate(scenario, seed=s) for s in (1, 1, 2))
    assert first.figures(first.overall()) == again.figures(again.overall())
    assert first.figures(first.overall()) != other.figures(other.overall())


def test_the_naive_matcher_simulates_exactly_the_same_day() -> None:
    text = (SCENARIOS_DIR / "chain_3.toml").read_text()
    scenario = dataclasses.replace(scenario_from_toml(text), calls=3000, warmup_calls=0)
    indexed = simulate(scenario, seed=4)
    naive = simulate(scenario, seed=4, linear_scan=True)
    assert indexed.figures(indexed.overall()) == naive.figures(naive.overall())


def test_every_call_is_accounted_for_with_misses_rules_and_limits() -> None:
    text = """
    seed = 2
    calls = 3000
    no_answer_probability = 0.1
    ready_after_auto_pause = 30
    [acd]
    auto_pause_after_misses = 2
    ring_retry = 2
    [[queues]]
    name = "sales"
    arrival_rate = 0.05
    skills = { sales = 50 }
    wrap_up = 15
    ring_timeout = 8
    max_wait = 240
    on_max_wait = { action = "voicemail", target = "sales" }
    [[queues.rules]]
    name = "anyone"
    when = "wait >= 30"
    skills = { sales = 1 }
    [[agents]]
    count = 3
    prefix = "senior-"
    skills = { sales = 80 }
    [[agents]]
    count = 3
    prefix = "junior-"
    skills = { sales = 20 }
    [service_time]
    distribution = "lognormal"
    mean = 150
    sd = 90
    [patience]
    distribution = "exponential"
    mean = 300
    """
    result = run_scenario(scenario_from_toml(text))
    overall = result["overall"]
    assert isinstance(overall, dict)
    assert overall["offered"] == 3000
    assert overall["answered"] + overall["abandoned"] + overall["overflowed"] == 3000
    assert overall["overflowed"] > 0
    assert overall["abandoned"] > 0
    assert 0 < overall["occupancy"] < 1
    assert "theory" not in result


def test_duration_mode_and_callbacks() -> None:
    text = """
    duration_s = 7200
    [[queues]]
    name = "q"
    arrival_rate = 0.05
    max_length = 2
    on_full = "callback"
    [[agents]]
    count = 2
    [service_time]
    distribution = "fixed"
    mean = 60
    [patience]
    distribution = "uniform"
    mean = 200
    spread = 100
    """
    result = run_scenario(scenario_from_toml(text))
    overall = result["overall"]
    assert isinstance(overall, dict)
    assert 250 < int(overall["offered"]) < 470  # about 360 in two hours
    assert overall["aht"] == 60.0


def test_replications_report_means_and_confidence_intervals() -> None:
    scenario = dataclasses.replace(scenario_from_toml(ISSUE_EXAMPLE), calls=1500)
    result = run_scenario(scenario, replications=3, seed=10)
    assert result["seeds"] == [10, 11, 12]
    ci = result["ci95"]
    assert isinstance(ci, dict)
    half = ci["overall"]["service_level"]
    mean = result["overall"]["service_level"]  # type: ignore[index]
    assert 0 < half < 0.2
    assert 0 < mean <= 1


def simulate_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    simulate_command.configure(parser)
    return parser.parse_args(list(argv))


def test_the_cli_prints_the_documented_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.toml"
    path.write_text(ISSUE_EXAMPLE)
    assert simulate_command.run(simulate_args(str(path), "--json", "--calls", "800")) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["overall"]) >= FIGURES
    assert set(out["queues"]["support"]) >= FIGURES
    assert out["overall"]["offered"] == 800
    assert out["theory"]["model"] == "erlang-a"


def test_the_cli_finds_shipped_scenarios_by_name_and_prints_a_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = simulate_args("small_office", "--calls", "300", "--replications", "2", "--quiet")
    assert simulate_command.run(args) == 0
    out = capsys.readouterr()
    assert "reception" in out.out
    assert "±" in out.out
    assert out.err == ""


def test_the_cli_refuses_a_missing_scenario() -> None:
    with pytest.raises(InvalidScenario, match="no such scenario"):
        simulate_command.run(simulate_args("no/such/file.toml"))
