"""`caruso bench routing` runs both matchers on one workload and reports their figures."""

from __future__ import annotations

import argparse
import asyncio

from commserver.bench import routing


def test_the_routing_bench_reports_both_matchers_making_the_same_decisions() -> None:
    parser = argparse.ArgumentParser()
    routing.configure(parser)
    args = parser.parse_args(
        ["--agents", "30", "--waiting", "120", "--skills", "4", "--events", "300"]
    )
    figures = asyncio.run(routing.run(args))
    assert figures["same_decisions"] is True
    indexed = figures["indexed"]
    naive = figures["naive"]
    assert isinstance(indexed, dict)
    assert isinstance(naive, dict)
    assert indexed["decisions"] == naive["decisions"] > 0
    for run in (indexed, naive):
        assert {"p50", "p99", "mean", "samples"} <= set(run["matcher_us"])
        assert run["event_to_assignment_us"]["samples"] > 0
    speedup = figures["speedup"]
    assert isinstance(speedup, dict)
    assert speedup["agent_freed_mean"] > 1  # the index beats scanning every waiting contact
    goals = figures["goals"]
    assert isinstance(goals, dict)
    assert set(goals) == {
        "matcher_p99_us<=50",
        "event_to_assignment_p99_us<=1000",
        "decisions_per_s>=10000",
        "speedup_p50>=100",
    }
