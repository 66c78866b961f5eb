"""`caruso bench ami`: AMI events parsed and applied per second, and event-to-state latency.

A load generator in its own process (`python -m commserver.bench.ami --serve`) plays an
Asterisk manager: it answers the login and the resync actions, then streams the events of
simulated calls (Newchannel, Newstate, VarSet, Newexten, AsyncAGIStart/End, DTMFBegin/End,
DeviceStateChange, BridgeEnter/Leave, Hangup: 15 events a call), each stamped with the time it
was written (`Timestamp`, as `timestampevents = yes` makes Asterisk do). Caruso's real path
consumes them: the AMI framer, the typed decoder, the state mirror and the `asterisk`
backend's handling (new caller legs, device states, hang-ups), with a no-op server handler.

Phase 1 streams `--events` events as fast as the socket takes them: events per second parsed
and applied (and, for the record, the latency under that backlog). Phase 2 paces
`--paced-events` events at `--rate` per second: event-to-state latency (p50/p99/max), measured
from the moment the generator wrote an event to the moment the backend finished applying it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from commserver.asterisk.message import AmiAction, AmiMessage
from commserver.config import AsteriskSettings
from commserver.telephony.asterisk import AsteriskBackend
from commserver.telephony.base import TelephonyEvent
from ivr.prompts import PromptCache

HELP = "AMI events/s parsed and applied by the asterisk backend, and event-to-state p99"
EVENTS_PER_CALL = 15
AGENTS = 180


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of the benchmark."""
    parser.add_argument("--events", type=int, default=200_000, help="events of the full-speed run")
    parser.add_argument("--rate", type=int, default=2_000, help="events/s of the paced run")
    parser.add_argument(
        "--paced-events", type=int, default=10_000, help="events of the paced (latency) run"
    )


def _progress(message: str) -> None:
    print(f"bench ami: {message}", file=sys.stderr, flush=True)


class _NullServer:
    """The server side: takes telephony events and does nothing (the backend is measured)."""

    def __init__(self) -> None:
        self.events = 0

    def on_telephony_event(self, event: TelephonyEvent) -> None:
        """Count it."""
        self.events += 1


class _MeteredBackend(AsteriskBackend):
    """The real backend, timing each event from its writing to the end of its handling."""

    def start_metering(self) -> None:
        """Forget earlier figures; the next `BenchDone` event ends this run."""
        self.delays: list[float] = []
        self.seen = 0
        self.first: float | None = None
        self.last = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def ami_event(self, message: AmiMessage) -> None:
        """Apply the event, then note how long after its writing it was applied."""
        if message.event == "BenchDone":
            if not self.done.done():
                self.done.set_result(None)
            return
        super().ami_event(message)
        now = time.time()
        self.seen += 1
        if self.first is None:
            self.first = time.perf_counter()
        self.last = time.perf_counter()
        stamp = message.get("Timestamp")
        if stamp:
            self.delays.append(now - float(stamp))


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "samples": 0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "samples": len(ordered),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Start the generator, connect a real backend to it, run both phases."""
    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "commserver.bench.ami",
        "--serve",
        stdout=asyncio.subprocess.PIPE,
    )
    assert generator.stdout is not None
    try:
        port = int((await asyncio.wait_for(generator.stdout.readline(), 20)).decode())
        return await _measure(args, port)
    finally:
        if generator.returncode is None:
            generator.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(generator.wait(), 5)


async def _measure(args: argparse.Namespace, port: int) -> dict[str, object]:
    settings = AsteriskSettings(
        port=port, username="bench", secret="bench", ping_interval=60.0, action_timeout=30.0
    )
    with tempfile.TemporaryDirectory(prefix="caruso-bench-ami-") as folder:
        backend = _MeteredBackend(
            settings,
            prompts=PromptCache(Path(folder)),
            extensions=[str(2000 + i) for i in range(AGENTS)],
        )
        backend.start_metering()
        server = _NullServer()
        await backend.open(server)
        try:
            _progress(f"full speed: {args.events} events")
            backend.start_metering()
            started = time.perf_counter()
            await backend.manager.send_list(AmiAction.of("BenchStart", Events=args.events, Rate=0))
            await asyncio.wait_for(backend.done, 600)
            elapsed = max(backend.last - (backend.first or started), 1e-9)
            applied = backend.events_applied
            full = {
                "events": backend.seen,
                "events_per_second": round(backend.seen / elapsed),
                "decoded_and_applied": applied,
                "applied_per_second": round(applied / elapsed),
                "seconds": round(elapsed, 3),
                "event_to_state_under_backlog": _percentiles(backend.delays),
            }
            _progress(f"{full['events_per_second']} events/s")
            _progress(f"paced: {args.paced_events} events at {args.rate}/s")
            backend.start_metering()
            await backend.manager.send_list(
                AmiAction.of("BenchStart", Events=args.paced_events, Rate=args.rate)
            )
            await asyncio.wait_for(backend.done, 600)
            paced = {"rate": args.rate, "events": backend.seen, **_percentiles(backend.delays)}
        finally:
            await backend.close()
    return {
        "events": args.events,
        "full_speed": full,
        "paced": paced,
        "event_to_state_p99_ms": paced["p99_ms"],
        "events_per_second": full["events_per_second"],
        "telephony_events_emitted": server.events,
    }


# -- the load generator (its own process) -----------------------------------------------------


def _frame(fields: list[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n").encode()


def _channel(uid: str, name: str, state: int, exten: str) -> list[tuple[str, str]]:
    return [
        ("Channel", name),
        ("ChannelState", str(state)),
        ("ChannelStateDesc", "Up" if state == 6 else "Ring"),
        ("CallerIDNum", "5551234"),
        ("CallerIDName", "Bench Caller"),
        ("ConnectedLineNum", "<unknown>"),
        ("ConnectedLineName", "<unknown>"),
        ("Language", "en"),
        ("AccountCode", ""),
        ("Context", "caruso-inbound"),
        ("Exten", exten),
        ("Priority", "1"),
        ("Uniqueid", uid),
        ("Linkedid", uid),
    ]


def _call_events(n: int) -> list[list[tuple[str, str]]]:
    """The 15 events of one simulated call (caller `n`, agent device by `n`)."""
    uid = f"1700000000.{n}"
    name = f"PJSIP/trunk-{n:08x}"
    device = f"PJSIP/{2000 + n % AGENTS}"
    ring = _channel(uid, name, 4, "100")
    up = _channel(uid, name, 6, "100")
    env = quote(
        f"agi_request: async\nagi_channel: {name}\nagi_callerid: 5551234\nagi_extension: 100\n\n",
        safe="",
    )
    bridge = [("BridgeUniqueid", f"b-{n}"), ("BridgeType", "basic"), ("BridgeNumChannels", "1")]
    return [
        [("Event", "Newchannel"), ("Privilege", "call,all"), *ring],
        [
            ("Event", "VarSet"),
            ("Privilege", "dialplan,all"),
            *ring,
            ("Variable", "X"),
            ("Value", "1"),
        ],
        [
            ("Event", "Newexten"),
            ("Privilege", "dialplan,all"),
            *ring,
            ("Extension", "100"),
            ("Application", "AGI"),
            ("AppData", "agi:async"),
        ],
        [("Event", "AsyncAGIStart"), ("Privilege", "agi,all"), *ring, ("Env", env)],
        [("Event", "Newstate"), ("Privilege", "call,all"), *up],
        [
            ("Event", "DTMFBegin"),
            ("Privilege", "dtmf,all"),
            *up,
            ("Digit", "1"),
            ("Direction", "Received"),
        ],
        [
            ("Event", "DTMFEnd"),
            ("Privilege", "dtmf,all"),
            *up,
            ("Digit", "1"),
            ("DurationMs", "120"),
            ("Direction", "Received"),
        ],
        [
            ("Event", "DeviceStateChange"),
            ("Privilege", "call,all"),
            ("Device", device),
            ("State", "RINGING"),
        ],
        [
            ("Event", "DeviceStateChange"),
            ("Privilege", "call,all"),
            ("Device", device),
            ("State", "INUSE"),
        ],
        [("Event", "BridgeEnter"), ("Privilege", "call,all"), *bridge, *up],
        [("Event", "BridgeLeave"), ("Privilege", "call,all"), *bridge, *up],
        [("Event", "AsyncAGIEnd"), ("Privilege", "agi,all"), *up],
        [("Event", "SoftHangupRequest"), ("Privilege", "call,all"), *up, ("Cause", "16")],
        [
            ("Event", "Hangup"),
            ("Privilege", "call,all"),
            *up,
            ("Cause", "16"),
            ("Cause-txt", "Normal Clearing"),
        ],
        [
            ("Event", "DeviceStateChange"),
            ("Privilege", "call,all"),
            ("Device", device),
            ("State", "NOT_INUSE"),
        ],
    ]


async def _stream(writer: asyncio.StreamWriter, count: int, rate: int) -> None:
    sent = 0
    call = 0
    started = time.perf_counter()
    while sent < count:
        events = _call_events(call)
        call += 1
        chunk = []
        for fields in events[: count - sent]:
            chunk.append(
                _frame([fields[0], fields[1], ("Timestamp", f"{time.time():.6f}"), *fields[2:]])
            )
            sent += 1
            if rate:
                writer.write(chunk.pop())
                due = started + sent / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
        if chunk:
            writer.write(b"".join(chunk))
        await writer.drain()
    writer.write(_frame([("Event", "BenchDone"), ("Privilege", "system,all")]))
    await writer.drain()


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"Asterisk Call Manager/9.0.0\r\n")
    streaming: set[asyncio.Task[None]] = set()
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, OSError):
            break
        fields = dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line)
        action = fields.get("Action", "").lower()
        action_id = fields.get("ActionID", "")
        head = [("Response", "Success"), ("ActionID", action_id)]
        if action in ("coreshowchannels", "bridgelist", "devicestatelist", "benchstart"):
            writer.write(_frame([*head, ("EventList", "start"), ("Message", "will follow")]))
            writer.write(
                _frame(
                    [
                        ("Event", "ListComplete"),
                        ("ActionID", action_id),
                        ("EventList", "Complete"),
                        ("ListItems", "0"),
                    ]
                )
            )
            if action == "benchstart":
                task = asyncio.ensure_future(
                    _stream(writer, int(fields.get("Events", "0")), int(fields.get("Rate", "0")))
                )
                streaming.add(task)
                task.add_done_callback(streaming.discard)
        elif action == "logoff":
            writer.write(_frame([("Response", "Goodbye"), ("ActionID", action_id)]))
            break
        else:
            writer.write(_frame([*head, ("Message", "Accepted")]))
    for task in streaming:
        task.cancel()
    writer.close()


async def _serve() -> None:
    server = await asyncio.start_server(_session, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def _main(argv: list[str]) -> int:
    if argv[:1] != ["--serve"]:
        print("usage: python -m commserver.bench.ami --serve (use `caruso bench ami`)")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
