"""A small remote customer-directory service: an integrator's own process, over HTTP/JSON.

    python -m service_manager.examples.remote_directory --port 0 \
        --caruso http://127.0.0.1:8080 --token T

It serves `customer-directory/1` from its own in-memory data (or `--data customers.json`),
prints its base URL as the first line on stdout, registers itself with Caruso
(`POST /api/services`), and serves until SIGINT/SIGTERM. The token may also come from the
environment variable CARUSO_SERVICE_TOKEN, which keeps it out of the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from service_manager.codecs import CodecError, codec_for
from service_manager.examples.customer_directory import (
    CUSTOMER_DIRECTORY_V1,
    SAMPLE_CUSTOMERS,
    Customer,
    InMemoryCustomerDirectory,
)
from service_manager.remote_server import service_app

log = logging.getLogger("remote_directory")


class RegistrationRefused(Exception):
    """Caruso answered the registration with a 4xx: retrying will not help."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of the example remote process."""
    parser = argparse.ArgumentParser(
        prog="python -m service_manager.examples.remote_directory",
        description="Serve the customer-directory/1 interface over HTTP and register with Caruso.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--caruso", help="Caruso's web URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", help="registration token (or env CARUSO_SERVICE_TOKEN)")
    parser.add_argument("--name", default="customer-directory", help="service name to register")
    parser.add_argument("--version", default="remote-1", help="version to register")
    parser.add_argument("--data", type=Path, help="JSON file: a list of customer objects")
    parser.add_argument("--attempts", type=int, default=10, help="registration attempts")
    return parser


def load_customers(path: Path | None) -> list[Customer]:
    """The customers to serve: the JSON file's, or the built-in sample."""
    if path is None:
        return list(SAMPLE_CUSTOMERS)
    data = json.loads(path.read_text(encoding="utf-8"))
    customers: list[Customer] = codec_for(list[Customer]).decode(data, path.name)
    return customers


async def register(
    caruso: str, token: str, *, name: str, version: str, base_url: str, attempts: int
) -> None:
    """Register with Caruso, retrying while it is not reachable yet (it may be starting)."""
    body = {
        "name": name,
        "interface": CUSTOMER_DIRECTORY_V1.id,
        "base_url": base_url,
        "version": version,
    }
    url = f"{caruso.rstrip('/')}/api/services"
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=10)
    problem = ""
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(1, attempts + 1):
            try:
                async with session.post(url, json=body, headers=headers) as response:
                    text = await response.text()
                    if response.status in (200, 201):
                        return
                    if 400 <= response.status < 500:
                        raise RegistrationRefused(f"HTTP {response.status}: {_message(text)}")
                    problem = f"HTTP {response.status}: {_message(text)}"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < attempts:
                delay = min(5.0, 0.2 * 2 ** (attempt - 1))
                log.warning("registration attempt %d failed (%s); retrying in %.1f s",
                            attempt, problem, delay)
                await asyncio.sleep(delay)
        raise ConnectionError(f"could not register with {url} after {attempts} attempts: {problem}")


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])[:300]
    return text[:200]


async def serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    token = args.token or os.environ.get("CARUSO_SERVICE_TOKEN", "")
    if args.caruso and not token:
        print("error: --token (or CARUSO_SERVICE_TOKEN) is needed to register with Caruso",
              file=sys.stderr)
        return 2
    try:
        customers = load_customers(args.data)
    except (OSError, ValueError, CodecError) as exc:
        print(f"error: cannot read {args.data}: {exc}", file=sys.stderr)
        return 2
    directory = InMemoryCustomerDirectory(customers)

    async def health() -> str:
        return f"{len(customers)} customers"

    runner = web.AppRunner(service_app(CUSTOMER_DIRECTORY_V1, directory, health=health),
                           access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        base_url = f"http://{shown}:{port}"
        print(base_url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if args.caruso:
            try:
                await register(args.caruso, token, name=args.name, version=args.version,
                               base_url=base_url, attempts=max(1, args.attempts))
            except RegistrationRefused as exc:
                print(f"error: Caruso refused the registration: {exc}", file=sys.stderr)
                return 3
            except ConnectionError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 4
            log.info("registered %r (%s) with %s", args.name, CUSTOMER_DIRECTORY_V1.id,
                     args.caruso)
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m service_manager.examples.remote_directory`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="remote_directory: %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
