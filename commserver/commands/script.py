"""`caruso script ...`: validate dialog scripts, draw their graph, run one headless, show stats.

caruso script validate FILE...            exit 0 when all are valid, else file:line: messages
caruso script graph FILE [-o OUT.svg]     the step graph as SVG (stdout by default)
caruso script run FILE --answers A.json [--customer ID] [--json]
caruso script stats SCRIPT_ID [--since DATE] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

HELP = "dialog scripts: validate, graph, run headless, per-step statistics"

EXIT_INVALID = 1
EXIT_USAGE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the script subcommands and their options."""
    sub = parser.add_subparsers(dest="script_command", metavar="SUBCOMMAND", required=True)

    validate = sub.add_parser(
        "validate", help="check scripts: DTD and semantics (exit 0 if all valid)"
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.add_argument(
        "--model",
        type=Path,
        action="append",
        default=[],
        help="business-object model file: check <customer> fields against it (repeatable)",
    )
    validate.add_argument(
        "--quiet", "-q", action="store_true", help="print errors only, no warnings"
    )
    validate.set_defaults(script_handler=_validate)

    graph = sub.add_parser("graph", help="write a script's step graph as SVG")
    graph.add_argument("file", type=Path, metavar="FILE")
    graph.add_argument("-o", "--output", type=Path, default=None, help="SVG file (default: stdout)")
    graph.set_defaults(script_handler=_graph)

    run = sub.add_parser("run", help="run a script headless with answers from a JSON file")
    run.add_argument("file", type=Path, metavar="FILE")
    run.add_argument(
        "--answers",
        type=Path,
        required=True,
        help="JSON object: step id -> answer (a list for repeated steps)",
    )
    run.add_argument(
        "--customer",
        default=None,
        help="customer key, loaded from storage (needs --db and --model)",
    )
    run.add_argument(
        "--customer-data",
        type=Path,
        default=None,
        help="JSON object of the customer's fields, instead of storage",
    )
    run.add_argument("--channel", default="agent", choices=["agent", "web", "phone"])
    run.add_argument(
        "--service-results",
        type=Path,
        default=None,
        help='JSON: "service.method" -> {"result": ...} or {"error": {...}}',
    )
    run.add_argument(
        "--db", default=None, help="database URL: load the customer, store the run, write fields"
    )
    run.add_argument(
        "--model",
        type=Path,
        action="append",
        default=[],
        help="business-object model file (repeatable), e.g. the customer's",
    )
    run.add_argument(
        "--smtp",
        default=None,
        metavar="HOST:PORT",
        help="send the script's e-mails through this SMTP server",
    )
    run.add_argument(
        "--mail-from", default="caruso@localhost.localdomain", help="sender of the e-mails"
    )
    run.add_argument(
        "--json", action="store_true", help="print one JSON object: path, actions, fields, outcome"
    )
    run.set_defaults(script_handler=_run)

    stats = sub.add_parser(
        "stats", help="per-step analytics of stored runs: reached, dropped, mean time"
    )
    stats.add_argument("script_id", metavar="SCRIPT_ID")
    stats.add_argument("--version", default=None, help="only runs of this script version")
    stats.add_argument("--since", type=_day, default=None, help="first day (YYYY-MM-DD, UTC)")
    stats.add_argument(
        "--until", type=_day, default=None, help="day after the last (YYYY-MM-DD, UTC)"
    )
    stats.add_argument("--db", default=None, help="database URL (default: the configuration's)")
    stats.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML file (default: $CARUSO_CONFIG or ./caruso.toml)",
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(script_handler=_stats)


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand; its exit code."""
    handler = args.script_handler
    return int(handler(args))


def _day(text: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


# ---- validate --------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    from scripts_engine.errors import Severity
    from scripts_engine.loader import check_script
    from scripts_engine.validation import check_against_models

    models = []
    if args.model:
        from storage import load_model

        models = [load_model(path) for path in args.model]
    failed = 0
    for path in args.files:
        check = check_script(path)
        problems = list(check.problems)
        if check.script is not None and models:
            mismatches = check_against_models(check.script, models)
            problems.extend(mismatches)
            if mismatches:
                check = type(check)(check.file, None, tuple(problems))
        for problem in problems:
            if args.quiet and problem.severity is Severity.WARNING:
                continue
            print(problem, file=sys.stderr if problem.severity is Severity.ERROR else sys.stdout)
        if check.script is None:
            failed += 1
        elif not args.quiet:
            script = check.script
            print(f"{path}: ok: {script.id} version {script.version}, {len(script.steps)} steps")
    if failed:
        print(f"{failed} of {len(args.files)} script(s) invalid", file=sys.stderr)
        return EXIT_INVALID
    return 0


# ---- graph -----------------------------------------------------------------------------


def _graph(args: argparse.Namespace) -> int:
    from scripts_engine.graph import render_svg
    from scripts_engine.loader import check_script

    check = check_script(args.file)
    if check.script is None:
        for problem in check.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    svg = render_svg(check.script)
    if args.output is None:
        sys.stdout.write(svg)
    else:
        args.output.write_text(svg, encoding="utf-8")
        print(f"{args.output}: {len(check.script.steps)} steps", file=sys.stderr)
    return 0


# ---- run -------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _UsageError(f"{path}: no such file ({what})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"{path}: cannot read ({what}): {exc}") from None
    except json.JSONDecodeError as exc:
        raise _UsageError(f"{path}:{exc.lineno}: not valid JSON ({what}): {exc.msg}") from None


class _UsageError(Exception):
    """A problem with the command's arguments or input files: one line, exit 2."""


def _run(args: argparse.Namespace) -> int:
    from scripts_engine.loader import check_script

    check = check_script(args.file)
    if check.script is None:
        for problem in check.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    try:
        answers = _read_json(args.answers, "answers")
        if not isinstance(answers, dict):
            raise _UsageError(
                f"{args.answers}: the answers must be a JSON object: step id -> answer"
            )
        customer_data = None
        if args.customer_data is not None:
            customer_data = _read_json(args.customer_data, "customer data")
            if not isinstance(customer_data, dict):
                raise _UsageError(f"{args.customer_data}: the customer data must be a JSON object")
        outcomes: dict[str, object] = {}
        if args.service_results is not None:
            outcomes = _read_json(args.service_results, "service results")
            if not isinstance(outcomes, dict):
                raise _UsageError(
                    f"{args.service_results}: must be a JSON object: service.method -> outcome"
                )
        if (
            args.customer is not None
            and (args.db is None or not args.model)
            and customer_data is None
        ):
            raise _UsageError(
                "--customer loads the customer from storage: give --db URL and --model FILE (or "
                "--customer-data)"
            )
        smtp = _smtp(args.smtp) if args.smtp else None
    except _UsageError as exc:
        print(f"caruso script run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_run_async(args, check.script, answers, customer_data, outcomes, smtp))


def _smtp(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise _UsageError(f"--smtp {text!r}: write HOST:PORT")
    return host, int(port)


async def _run_async(
    args: argparse.Namespace,
    script: Any,
    answers: Mapping[str, object],
    customer_data: Mapping[str, object] | None,
    outcomes: Mapping[str, object],
    smtp: tuple[str, int] | None,
) -> int:
    from scripts_engine.actions import ActionExecutor, SmtpMailer, SmtpSettings
    from scripts_engine.headless import ScriptedServices, run_headless
    from scripts_engine.script import Channel
    from scripts_engine.session import ScriptCatalog, ScriptRunner
    from scripts_engine.store import StorageBusinessObjects, StorageRunStore

    mailer = SmtpMailer(SmtpSettings(smtp[0], smtp[1], args.mail_from)) if smtp else None
    async with _storage(args.db, args.model) as storage:
        objects = StorageBusinessObjects(storage) if storage is not None else None
        store = StorageRunStore(storage) if storage is not None else None
        executor = ActionExecutor(
            mailer=mailer,
            sender=args.mail_from,
            services=ScriptedServices(outcomes),
            objects=objects,
        )
        catalog = ScriptCatalog()
        catalog.add(script)
        runner = ScriptRunner(catalog, executor=executor, store=store, objects=objects)
        customer = args.customer
        if customer is None and customer_data is not None and customer_data.get("id") is not None:
            customer = str(customer_data["id"])
        if (
            customer is not None
            and customer_data is None
            and objects is not None
            and script.customer_object
        ) and await objects.load(script.customer_object, customer) is None:
            print(
                f"caruso script run: no {script.customer_object} with key {customer!r}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        result = await run_headless(
            runner,
            script,
            answers,
            channel=Channel(args.channel),
            customer=customer,
            customer_data=customer_data,
        )
    for note in [*result.notes, *([result.refused] if result.refused else [])]:
        print(f"caruso script run: {note}", file=sys.stderr)
    output = result.to_json()
    if args.json:
        print(json.dumps(output, indent=2, ensure_ascii=False))
    else:
        print(f"path:    {' -> '.join(output['path'])}")  # type: ignore[arg-type]
        for action in output["actions"]:  # type: ignore[attr-defined]
            print(f"action:  {action['name']}: {json.dumps(action['result'], ensure_ascii=False)}")
        for key, value in output["fields"].items():  # type: ignore[attr-defined]
            print(f"field:   {key} = {json.dumps(value, ensure_ascii=False)}")
        print(f"outcome: {output['outcome']}")
    return EXIT_INVALID if result.refused else 0


@asynccontextmanager
async def _storage(url: str | None, models: list[Path]) -> AsyncIterator[Any]:
    if url is None:
        yield None
        return
    from scripts_engine.store import runs_model
    from storage import StorageManager, load_model

    loaded = [runs_model(), *(load_model(path) for path in models)]
    async with StorageManager.open(url, models=loaded) as storage:
        yield storage


# ---- stats -----------------------------------------------------------------------------


def _stats(args: argparse.Namespace) -> int:
    url = args.db
    if url is None:
        from commserver.cli import config_path
        from commserver.config import load_config

        url = load_config(config_path(args.config)).storage_url
    rows = asyncio.run(_stats_async(url, args))
    if args.json:
        print(
            json.dumps({"script": args.script_id, "steps": [r.to_json() for r in rows]}, indent=2)
        )
        return 0
    if not rows:
        print(f"no stored runs of script {args.script_id!r} in this period")
        return 0
    header = (
        f"{'step':<28} {'reached':>8} {'visits':>7} {'answered':>9} "
        f"{'dropped':>8} {'waiting':>8} {'mean s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        mean = f"{r.mean_seconds:.1f}" if r.mean_seconds is not None else "-"
        print(
            f"{r.step_id:<28} {r.reached:>8} {r.visits:>7} {r.answered:>9} {r.dropped:>8} "
            f"{r.waiting:>8} {mean:>8}"
        )
    return 0


async def _stats_async(url: str, args: argparse.Namespace) -> list[Any]:
    from scripts_engine.store import StorageRunStore

    async with _storage(url, []) as storage:
        store = StorageRunStore(storage)
        return await store.step_stats(
            args.script_id, version=args.version, since=args.since, until=args.until
        )
