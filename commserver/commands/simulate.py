"""`caruso simulate SCENARIO.toml [--json]`: run the real ACD on a virtual clock.

The scenario format is documented in docs/acd.md; examples ship in `acd/scenarios/` and can be
named without their folder (`caruso simulate mmn_180`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from acd.errors import InvalidScenario
from acd.scenarios import SCENARIOS_DIR
from acd.simulation import run_scenario, scenario_from_toml

HELP = "simulate a contact-center scenario through the real ACD on a virtual clock"

COLUMNS = (
    ("offered", "offered", "{:.0f}"),
    ("answered", "answered", "{:.0f}"),
    ("abandoned", "abandoned", "{:.0f}"),
    ("service_level", "SL", "{:.2%}"),
    ("asa", "ASA s", "{:.2f}"),
    ("aht", "AHT s", "{:.1f}"),
    ("p_wait", "P(wait)", "{:.2%}"),
    ("abandon_rate", "abandon", "{:.2%}"),
    ("occupancy", "occupancy", "{:.2%}"),
    ("ewt_error", "EWT err s", "{:.2f}"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `caruso simulate`."""
    parser.add_argument(
        "scenario",
        help="scenario TOML file, or the name of a shipped example "
        f"({', '.join(sorted(p.stem for p in SCENARIOS_DIR.glob('*.toml')))})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--replications", type=int, default=None, help="independent runs, with 95%% intervals"
    )
    parser.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    parser.add_argument("--calls", type=int, default=None, help="override the call count")
    parser.add_argument(
        "--linear-scan",
        action="store_true",
        help="route with the naive linear-scan matcher (same decisions, slower)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    """Load the scenario, simulate, print the figures."""
    path = resolve(args.scenario)
    scenario = scenario_from_toml(path.read_text(encoding="utf-8"), name=path.stem)
    if args.calls is not None:
        scenario = dataclasses.replace(scenario, calls=args.calls, duration_s=None)
    if args.replications is not None and args.replications < 1:
        raise InvalidScenario("--replications must be at least 1")

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"simulate: {message}", file=sys.stderr, flush=True)

    result = run_scenario(
        scenario,
        replications=args.replications,
        seed=args.seed,
        linear_scan=args.linear_scan,
        progress=progress,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


def resolve(name: str) -> Path:
    """A path as given, else a shipped example by name (with or without `.toml`)."""
    path = Path(name)
    if path.exists():
        return path
    shipped = SCENARIOS_DIR / (name if name.endswith(".toml") else f"{name}.toml")
    if "/" not in name and shipped.exists():
        return shipped
    raise InvalidScenario(f"{name}: no such scenario file", scenario=name)


def render(result: Mapping[str, object]) -> str:
    """The figures as a text table (one row per queue, then overall)."""
    queues = result["queues"]
    overall = result["overall"]
    assert isinstance(queues, Mapping)
    assert isinstance(overall, Mapping)
    ci = result.get("ci95")
    ci_queues: Mapping[str, object] = {}
    ci_overall: Mapping[str, object] = {}
    if isinstance(ci, Mapping):
        ci_queues = ci.get("queues", {})
        ci_overall = ci.get("overall", {})
    rows = [("queue", *(title for _, title, _ in COLUMNS))]
    for name, figures in [*queues.items(), ("overall", overall)]:
        half = ci_overall if name == "overall" else ci_queues.get(name, {})
        assert isinstance(figures, Mapping)
        assert isinstance(half, Mapping)
        rows.append((str(name), *(_cell(figures, half, key, fmt) for key, _, fmt in COLUMNS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"{result.get('scenario')}: {result.get('calls')} calls, "
        f"{result.get('simulated_hours')} h simulated in {result.get('wall_seconds')} s"
        + (f", {result['replications']} replications (±95 %)" if "replications" in result else "")
    ]
    for row in rows:
        lines.append(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    theory = result.get("theory")
    if isinstance(theory, Mapping):
        lines.append("theory: " + ", ".join(f"{k} {v}" for k, v in theory.items()))
    return "\n".join(lines)


def _cell(figures: Mapping[str, object], half: Mapping[str, object], key: str, fmt: str) -> str:
    value = figures.get(key)
    if not isinstance(value, int | float):
        return "-"
    text = fmt.format(value)
    h = half.get(key)
    if isinstance(h, int | float) and key not in ("offered", "answered", "abandoned"):
        text += " ±" + fmt.format(h)
    return text
