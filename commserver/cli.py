"""The `caruso` command line: run the server, and the subcommands plugged in from
`commserver/commands/` (one module each) and benchmarks from `commserver/bench/`.

User errors (bad configuration, unreachable database, bad model file) print one clear line
and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import inspect
import json
import logging
import os
import pkgutil
import platform
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import commserver.bench
import commserver.commands
from commserver import __version__
from commserver.config import BackendName, Config, load_config
from commserver.errors import ServerError

log = logging.getLogger("caruso")
EXIT_USER_ERROR = 2


def _plugins(package: ModuleType) -> dict[str, ModuleType]:
    """Import every plug-in module; one that fails to import is reported, not fatal to the rest."""
    modules = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        try:
            modules[info.name] = importlib.import_module(f"{package.__name__}.{info.name}")
        except ImportError as exc:
            modules[info.name] = _broken_plugin(info.name, exc)
    return modules


def _broken_plugin(name: str, error: ImportError) -> ModuleType:
    """A stand-in for a plug-in that cannot load: it says why when it is used."""
    module = ModuleType(name)
    message = f"caruso: the '{name}' command cannot load: {error}"

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs=argparse.REMAINDER)

    def run(args: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 1

    module.HELP = f"(unavailable: {error})"  # type: ignore[attr-defined]
    module.configure = configure  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    return module


def config_path(given: Path | None) -> Path | None:
    """--config, else $CARUSO_CONFIG, else ./caruso.toml if present, else built-in defaults."""
    if given is not None:
        return given
    if env := os.environ.get("CARUSO_CONFIG"):
        return Path(env)
    local = Path("caruso.toml")
    return local if local.exists() else None


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """The --config option every command that needs a site shares."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML file (default: $CARUSO_CONFIG or ./caruso.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="caruso", description="Caruso contact-center communication server"
    )
    parser.add_argument("--version", action="version", version=f"caruso {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the server")
    add_config_argument(run)

    bench = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for name, module in _plugins(commserver.bench).items():
        bench_parser = bench_sub.add_parser(name, help=module.HELP)
        bench_parser.add_argument("--json", action="store_true", help="print one JSON object")
        module.configure(bench_parser)
        bench_parser.set_defaults(bench_module=module)

    for name, module in _plugins(commserver.commands).items():
        command = sub.add_parser(name, help=module.HELP)
        module.configure(command)
        command.set_defaults(command_module=module)
    return parser


def setup_logging(level: str) -> None:
    """Log lines to stderr with time, level and component."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def machine() -> dict[str, object]:
    """What a benchmark ran on, recorded next to its figures."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "caruso": __version__,
    }


def _run_bench(args: argparse.Namespace) -> int:
    pending = args.bench_module.run(args)
    if not inspect.iscoroutine(pending):  # a plug-in that could not load
        return int(pending)
    figures: dict[str, object] = asyncio.run(pending)
    result = {"benchmark": args.bench, **figures, "machine": machine()}
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for key, value in result.items():
            print(f"{key}: {json.dumps(value, default=str)}")
    return 0


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then drain and stop."""
    from commserver.app import build_server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with build_server(config) as server:
        print(
            f"Caruso {__version__} is up ({config.telephony.backend.value} backend).\n"
            f"  live monitor:      {server.web.url}/monitor\n"
            f"  agent desktop:     {server.web.url}/desktop\n"
            f"  health (API):      {server.web.url}/api/health\n"
            f"{_telephony_line(config)}"
            f"  database:          {_safe_url(config.storage_url)}\n"
            f"  configuration:     {config.source or 'built-in defaults'}\n"
            "No account yet? `caruso user add NAME --role supervisor` (or agent, admin).\n"
            "Press Ctrl-C to stop (live calls are drained first).",
            flush=True,
        )
        await stop.wait()
        log.info("stopping: draining live calls (up to %.0f s)", config.server.drain_timeout)


def _telephony_line(config: Config) -> str:
    """Where calls come in, for the start-up banner."""
    telephony = config.telephony
    if telephony.backend is BackendName.SIP:
        sip = telephony.sip
        numbers = ", ".join(config.ivr.numbers)
        return f"  SIP (udp):         {sip.host}:{sip.port}, IVR numbers {numbers}\n"
    if telephony.backend is BackendName.ASTERISK:
        ami = telephony.asterisk
        return f"  Asterisk manager:  {ami.host}:{ami.port}\n"
    return "  telephony:         simulated calls only\n"


def _safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        rest = f"{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else rest
    return f"{scheme}{sep}{rest}"


def _run_server(args: argparse.Namespace) -> int:
    config = load_config(config_path(args.config))
    setup_logging(config.server.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        pass
    asyncio.run(serve(config))
    return 0


def _user_error(exc: Exception) -> bool:
    """Errors that are the user's to fix: said in one line, no traceback."""
    if isinstance(exc, ServerError):
        return True
    code = getattr(exc, "code", None)
    return isinstance(code, str) and type(exc).__module__.split(".")[0] in {
        "storage",
        "service_manager",
        "scripts_engine",
        "acd",
        "ivr",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `caruso` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run_server(args)
        if args.command == "bench":
            return _run_bench(args)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        return int(args.command_module.run(args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if exc.errno is None:
            raise
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (is another server using that port? change [web] port in the configuration)"
        print(f"caruso: {exc}{hint}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        if not _user_error(exc):
            raise
        print(f"caruso: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
