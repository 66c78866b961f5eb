"""`caruso bench ami` runs its generator process, both phases, and reports their figures."""

from __future__ import annotations

import argparse

from commserver.bench import ami


async def test_the_ami_bench_reports_throughput_and_event_to_state_latency() -> None:
    parser = argparse.ArgumentParser()
    ami.configure(parser)
    args = parser.parse_args(["--events", "3000", "--paced-events", "300", "--rate", "3000"])
    figures = await ami.run(args)
    full = figures["full_speed"]
    paced = figures["paced"]
    assert isinstance(full, dict)
    assert isinstance(paced, dict)
    assert full["events"] == 3000  # every event the generator wrote was read
    # 11 of the 15 events of a simulated call are ones the backend decodes and applies.
    assert full["decoded_and_applied"] == 3000 // 15 * 11
    assert isinstance(full["events_per_second"], int)
    assert full["events_per_second"] > 0
    assert paced["samples"] == 300
    assert 0 < paced["p50_ms"] <= paced["p99_ms"] <= paced["max_ms"]
    assert figures["event_to_state_p99_ms"] == paced["p99_ms"]
    # Callers offered and ended, digits, device states: the backend really handled them.
    assert isinstance(figures["telephony_events_emitted"], int)
    assert figures["telephony_events_emitted"] > 3000 // 15 * 3
