"""``caruso bench storage``: rows/s per backend, single-row commits against the batch writer.

The baseline inserts one row per transaction (one commit, one fsync each on SQLite); the
batch writer is then driven by many concurrent writers, as hang-ups of many calls would.
Every write in both runs is durable when it returns. Servers are used only when their URL is
given (``--postgres-url``/``--mariadb-url`` or ``CARUSO_TEST_POSTGRES_URL``/
``CARUSO_TEST_MARIADB_URL``), each in a private schema/database dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from storage import StorageError, StorageManager, parse_model
from storage.engine import create_engine, parse_database_url

HELP = "storage write rate: single-row commits vs the batch writer, per database"

#: The batched rate the storage manager must reach on SQLite (issue 2).
SQLITE_GOAL_ROWS_PER_S = 5_000

_MODEL = """<model name="bench">
  <object name="BenchCall" table="bench_call">
    <attribute name="id" type="integer" key="true" generated="true"/>
    <attribute name="contact_id" type="string" length="64" nullable="false"/>
    <attribute name="queue" type="string" length="40"/>
    <attribute name="agent_id" type="string" length="40"/>
    <attribute name="outcome" type="string" length="20" nullable="false"/>
    <attribute name="arrived_at" type="datetime" nullable="false"/>
    <attribute name="ended_at" type="datetime" nullable="false"/>
    <attribute name="wait_seconds" type="float"/>
    <attribute name="talk_seconds" type="float"/>
    <attribute name="extra" type="json"/>
    <index attributes="queue ended_at"/>
  </object>
</model>
"""


@dataclass(frozen=True, slots=True)
class BenchCall:
    """A call record shaped like the real one."""

    id: int | None
    contact_id: str
    queue: str | None
    agent_id: str | None
    outcome: str
    arrived_at: datetime
    ended_at: datetime
    wait_seconds: float | None
    talk_seconds: float | None
    extra: Any


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``caruso bench storage``."""
    parser.add_argument("--rows", type=int, default=20_000, help="rows for the batched run")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=None,
        help="most rows for the single-row baseline (default: rows/10)",
    )
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=10.0,
        help="stop the baseline after this long (it is slow by design)",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=1000,
        help="concurrent writer tasks, each waiting for its row to commit before the next",
    )
    parser.add_argument("--max-batch", type=int, default=500, help="batch writer's max_batch")
    parser.add_argument(
        "--max-delay", type=float, default=0.05, help="batch writer's max_delay (s)"
    )
    parser.add_argument("--sqlite-path", type=Path, default=None, help="SQLite file to use")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CARUSO_TEST_POSTGRES_URL"),
        help="PostgreSQL URL (default: $CARUSO_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--mariadb-url",
        default=os.environ.get("CARUSO_TEST_MARIADB_URL"),
        help="MariaDB URL (default: $CARUSO_TEST_MARIADB_URL)",
    )


def _progress(message: str) -> None:
    print(f"bench storage: {message}", file=sys.stderr, flush=True)


def _record(number: int, start: datetime) -> BenchCall:
    arrived = start + timedelta(milliseconds=number)
    return BenchCall(
        id=None,
        contact_id=f"bench-{number}",
        queue=("support", "sales", "billing")[number % 3],
        agent_id=f"agent-{number % 180}",
        outcome="answered" if number % 10 else "abandoned",
        arrived_at=arrived,
        ended_at=arrived + timedelta(seconds=90),
        wait_seconds=float(number % 60),
        talk_seconds=float(number % 300),
        extra={"ivr": ["1", str(number % 9)], "skill": "de"},
    )


async def _measure(url: str, args: argparse.Namespace) -> dict[str, object]:
    """Both runs against one database."""
    rows: int = args.rows
    baseline_limit: int = args.baseline_rows if args.baseline_rows is not None else rows // 10
    start = datetime.now(UTC)
    async with StorageManager.open(url, [parse_model(_MODEL, source="bench-model")]) as storage:
        storage.bind(BenchCall, "BenchCall")

        _progress(f"{storage.backend.value}: single-row inserts (up to {baseline_limit})")
        single = 0
        began = time.perf_counter()
        deadline = began + args.baseline_seconds
        while single < baseline_limit and time.perf_counter() < deadline:
            await storage.insert(_record(single, start))
            single += 1
        single_elapsed = time.perf_counter() - began

        _progress(f"{storage.backend.value}: {rows} rows through {args.writers} writers")
        latencies: list[float] = []
        writers = max(1, min(args.writers, rows))
        share, extra = divmod(rows, writers)
        async with storage.batch_writer(
            BenchCall, max_batch=args.max_batch, max_delay=args.max_delay
        ) as writer:

            async def agent_line(line: int, count: int) -> None:
                for n in range(count):
                    sent = time.perf_counter()
                    await writer.write(_record(baseline_limit + line * (share + 1) + n, start))
                    latencies.append(time.perf_counter() - sent)

            began = time.perf_counter()
            lines = [agent_line(line, share + (line < extra)) for line in range(writers)]
            async with asyncio.timeout(600):
                await asyncio.gather(*lines)
            batched_elapsed = time.perf_counter() - began
        stored = await storage.count(BenchCall)

    single_rate = single / single_elapsed if single_elapsed > 0 else 0.0
    batched_rate = rows / batched_elapsed if batched_elapsed > 0 else 0.0
    latencies.sort()
    return {
        "single_rows": single,
        "single_rows_per_s": round(single_rate, 1),
        "batched_rows": rows,
        "batched_rows_per_s": round(batched_rate, 1),
        "speedup": round(batched_rate / single_rate, 1) if single_rate else None,
        "batches": writer.stats.batches,
        "mean_batch_rows": round(rows / writer.stats.batches, 1) if writer.stats.batches else 0,
        "write_latency_ms": {
            "p50": round(1000 * statistics.median(latencies), 2) if latencies else None,
            "p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2)
            if latencies
            else None,
        },
        "lost_rows": single + rows - stored,
    }


async def _admin(url: str, *statements: str) -> None:
    """Run statements outside any model (creating/dropping the private schema)."""
    engine = create_engine(parse_database_url(url))
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def _on_server(backend: str, base_url: str, args: argparse.Namespace) -> dict[str, object]:
    """Measure in a private schema (PostgreSQL) or database (MariaDB), dropped afterwards."""
    name = f"caruso_bench_{secrets.token_hex(4)}"
    base = make_url(base_url)
    if backend == "postgresql":
        create, drop = f'CREATE SCHEMA "{name}"', f'DROP SCHEMA IF EXISTS "{name}" CASCADE'
        url = base.update_query_dict({"search_path": name})
    else:
        create, drop = f"CREATE DATABASE `{name}`", f"DROP DATABASE IF EXISTS `{name}`"
        url = base.set(database=name)
    await _admin(base_url, create)
    try:
        return await _measure(url.render_as_string(hide_password=False), args)
    finally:
        await _admin(base_url, drop)


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Run the benchmark on SQLite and every configured server; the figures as JSON data."""
    if args.rows < 1:
        raise SystemExit("--rows must be at least 1")
    backends: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="caruso-bench-") as folder:
        path = args.sqlite_path or Path(folder) / "bench.db"
        if path.exists():
            raise SystemExit(f"{path} exists; give a new file to --sqlite-path")
        backends["sqlite"] = await _measure(f"sqlite+aiosqlite:///{path}", args)
    for backend, url in (("postgresql", args.postgres_url), ("mariadb", args.mariadb_url)):
        if not url:
            backends[backend] = {"skipped": "no URL given"}
            continue
        try:
            backends[backend] = await _on_server(backend, url, args)
        except StorageError as error:
            _progress(f"{backend}: {error.message}")
            backends[backend] = {"error": error.message}
    sqlite = backends["sqlite"]
    assert isinstance(sqlite, dict)
    return {
        "benchmark": "storage",
        "rows": args.rows,
        "writers": args.writers,
        "max_batch": args.max_batch,
        "max_delay_s": args.max_delay,
        "durability": "every write committed before it returns (SQLite: WAL, synchronous=FULL)",
        "backends": backends,
        "sqlite_goal_rows_per_s": SQLITE_GOAL_ROWS_PER_S,
        "sqlite_goal_met": sqlite["batched_rows_per_s"] >= SQLITE_GOAL_ROWS_PER_S,
    }
