"""Figures of simulation runs (definitions in docs/metrics.md), and replications with 95 %
confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from acd.metrics import service_level
from acd.model import ServiceLevelFormula

Figures = dict[str, float | int | None]

# Two-sided 95 % Student t quantiles by degrees of freedom (1-30); beyond, the normal's.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip

FIGURE_NAMES = (
    "offered",
    "answered",
    "abandoned",
    "overflowed",
    "unfinished",
    "service_level",
    "asa",
    "aht",
    "p_wait",
    "abandon_rate",
    "occupancy",
    "ewt_error",
    "ewt_bias",
)


@dataclass(slots=True)
class QueueTally:
    """Counters of one queue (contacts counted in the queue they arrived in)."""

    offered: int = 0
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    overflowed: int = 0
    unfinished: int = 0
    waited: int = 0
    wait_total: float = 0.0
    handle_total: float = 0.0
    ewt_abs_error: float = 0.0
    ewt_error: float = 0.0
    ewt_samples: int = 0
    work: list[tuple[float, float]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # only when asked for

    def add(self, other: QueueTally) -> None:
        """Accumulate another queue's counters into this one."""
        for name in (
            "offered",
            "answered",
            "answered_within",
            "abandoned",
            "short_abandoned",
            "overflowed",
            "unfinished",
            "waited",
            "wait_total",
            "handle_total",
            "ewt_abs_error",
            "ewt_error",
            "ewt_samples",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.work.extend(other.work)
        self.waits.extend(other.waits)


@dataclass(frozen=True, slots=True)
class RunResult:
    """One replication: per-queue tallies and what is needed to turn them into figures."""

    scenario: str
    seed: int
    queues: Mapping[str, QueueTally]
    thresholds: Mapping[str, float]
    formula: ServiceLevelFormula
    window_start: float  # when the first measured contact arrived
    window: float  # seconds from the first to the last measured arrival
    capacity: int  # contact slots staffed
    simulated_seconds: float
    wall_seconds: float
    arrivals: int
    unfinished: int

    def figures(self, tally: QueueTally) -> Figures:
        """The documented figures of one tally."""
        offered = tally.offered
        answered = tally.answered
        start = self.window_start
        end = start + self.window
        work = sum(min(e, end) - max(s, start) for s, e in tally.work if e > start and s < end)
        slots = self.capacity * self.window
        return {
            "offered": offered,
            "answered": answered,
            "abandoned": tally.abandoned,
            "overflowed": tally.overflowed,
            "unfinished": tally.unfinished,
            "service_level": service_level(
                self.formula,
                offered=offered,
                answered=answered,
                answered_within=tally.answered_within,
                short_abandoned=tally.short_abandoned,
            ),
            "asa": tally.wait_total / answered if answered else None,
            "aht": tally.handle_total / answered if answered else None,
            "p_wait": tally.waited / offered if offered else None,
            "abandon_rate": tally.abandoned / offered if offered else None,
            "occupancy": work / slots if slots > 0 else None,
            "ewt_error": tally.ewt_abs_error / tally.ewt_samples if tally.ewt_samples else None,
            "ewt_bias": tally.ewt_error / tally.ewt_samples if tally.ewt_samples else None,
        }

    def overall(self) -> QueueTally:
        """All queues together."""
        total = QueueTally()
        for tally in self.queues.values():
            total.add(tally)
        return total

    def summary(self) -> dict[str, object]:
        """The JSON object `caruso simulate --json` prints for one replication."""
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "calls": sum(t.offered for t in self.queues.values()),
            "service_level_formula": self.formula.value,
            "service_level_seconds": dict(self.thresholds),
            "simulated_hours": round(self.simulated_seconds / 3600.0, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "overall": _rounded(self.figures(self.overall())),
            "queues": {name: _rounded(self.figures(t)) for name, t in self.queues.items()},
        }


def _rounded(figures: Figures) -> Figures:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in figures.items()}


def t95(samples: int) -> float:
    """The 95 % two-sided Student t quantile for `samples` observations."""
    df = samples - 1
    if df < 1:
        return math.inf
    return _T95[df - 1] if df <= len(_T95) else 1.96


def mean_and_halfwidth(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95 % confidence half-width of independent replications."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.inf
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, t95(n) * math.sqrt(variance / n)


def aggregate(runs: Sequence[RunResult]) -> dict[str, object]:
    """Replications combined: the mean of each figure, and `ci95` half-widths beside them."""
    first = runs[0]

    def combine(pick: list[Figures]) -> tuple[Figures, Figures]:
        means: Figures = {}
        halves: Figures = {}
        for name in FIGURE_NAMES:
            values = [f[name] for f in pick]
            numbers = [float(v) for v in values if v is not None]
            if len(numbers) != len(values) or not numbers:
                means[name] = None
                halves[name] = None
                continue
            mean, half = mean_and_halfwidth(numbers)
            means[name] = round(mean, 6)
            halves[name] = round(half, 6) if math.isfinite(half) else None
        return means, halves

    overall, overall_ci = combine([r.figures(r.overall()) for r in runs])
    queues: dict[str, Figures] = {}
    queues_ci: dict[str, Figures] = {}
    for name in first.queues:
        queues[name], queues_ci[name] = combine([r.figures(r.queues[name]) for r in runs])
    return {
        "scenario": first.scenario,
        "seeds": [r.seed for r in runs],
        "replications": len(runs),
        "calls": sum(t.offered for t in first.queues.values()),
        "service_level_formula": first.formula.value,
        "service_level_seconds": dict(first.thresholds),
        "simulated_hours": round(sum(r.simulated_seconds for r in runs) / 3600.0, 3),
        "wall_seconds": round(sum(r.wall_seconds for r in runs), 3),
        "overall": overall,
        "queues": queues,
        "ci95": {"overall": overall_ci, "queues": queues_ci},
    }


def batch_means_error(values: Sequence[float], batches: int = 20) -> tuple[float, float]:
    """Mean of a correlated series and the standard error of that mean by batch means."""
    size = len(values) // batches
    if size < 2:
        raise ValueError("too few values for batch means")
    means = [sum(values[i * size : (i + 1) * size]) / size for i in range(batches)]
    grand = sum(means) / batches
    variance = sum((m - grand) ** 2 for m in means) / (batches - 1)
    return sum(values) / len(values), math.sqrt(variance / batches)
