"""The storage benchmark's plumbing, on a tiny run (the figures themselves live in the docs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from commserver.bench import storage as bench


async def test_tiny_benchmark_run_reports_rates_and_loses_nothing(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    args = parser.parse_args(
        [
            "--rows", "300",
            "--baseline-rows", "20",
            "--writers", "50",
            "--max-batch", "40",
            "--max-delay", "0.005",
            "--sqlite-path", str(tmp_path / "bench.db"),
            "--postgres-url", "",
            "--mariadb-url", "",
        ]
    )
    figures = await bench.run(args)
    json.dumps(figures)  # JSON-able, as the CLI prints it
    sqlite = figures["backends"]["sqlite"]  # type: ignore[index]
    assert sqlite["single_rows"] == 20
    assert sqlite["batched_rows"] == 300
    assert sqlite["lost_rows"] == 0
    assert sqlite["batched_rows_per_s"] > 0
    assert sqlite["mean_batch_rows"] > 1
    assert figures["backends"]["postgresql"] == {"skipped": "no URL given"}  # type: ignore[index]
