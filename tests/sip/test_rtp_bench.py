"""The RTP relay benchmark's plumbing on a tiny run (the figures themselves live in the docs)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from commserver.bench import rtp as bench
from commserver.cli import main


async def test_tiny_run_relays_every_packet_and_reports_the_relay_against_the_forwarder() -> None:
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    figures: dict[str, Any] = await bench.run(
        parser.parse_args(["--calls", "2", "--seconds", "1", "--rounds", "1"])
    )
    json.dumps(figures)  # JSON-able, as the CLI prints it
    assert figures["calls"] == 2
    assert figures["loss"] == 0
    assert figures["relayed_packets_per_s"] > 0
    assert figures["foreign_packets"] == 2  # each caller's prompt frame, kept out of the figures
    counters = figures["relay_counters"]
    assert counters["received"] == counters["relayed"] > 0
    assert counters["rejected"] == counters["send_failed"] == counters["held"] == 0
    baseline = figures["baseline_plain_forwarder"]
    assert baseline["loss"] == 0
    assert baseline["foreign_packets"] == 0
    (only_round,) = figures["per_round"]
    assert set(only_round) >= {"forwarder_cpu", "relay_cpu", "cpu_ratio"}
    assert set(figures["goals_met"]) == set(bench.GOALS)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--calls", "0", "0 is not above zero"),
        ("--calls", "1.5", "'1.5' is not a whole number"),
        ("--seconds", "0", "argument --seconds: 0 is not above zero"),
        ("--rounds", "many", "'many' is not a whole number"),
    ],
)
def test_bad_options_are_refused_with_a_usage_error(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "rtp", option, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
