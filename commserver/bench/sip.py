"""`caruso bench sip`: calls per second through IVR and ACD, and the RTP relay, with baselines.

Calls: a Caruso on the sip backend runs in this process on its own uvloop thread (as `caruso run`
runs), with `--agents` agents whose phones are one SIPp UAS (each registered with digest auth
first). SIPp callers dial 100 at `--cps` for `--duration` seconds, key 1 or 2 (RFC 4733), talk
and hang up `--hold` seconds after the answer. A call counts only if SIPp saw it succeed and
its stored record says an agent answered it. Baseline, same run: the same SIPp callers straight
to the SIPp phones, no server in between (what the load generator itself manages).

RTP: `--rtp-calls` bridged calls, both directions at 50 packets/s, through `RtpRelay` (SSRC,
sequence and timestamp rewriting, latching, per-packet checks) on the server's uvloop thread;
baseline: a plain UDP forwarder on the same kind of thread. The phones are a separate process
(`_rtp_peer`) that stamps each packet, so transit and jitter are measured on one clock and the
generator's CPU stays out of the relay's share.

`sip-testbed/run-load` uses the SIPp helpers here to drive a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

HELP = "SIP calls/s through IVR and ACD (SIPp) and RTP relay rate/jitter, each against a baseline"

SCENARIOS = Path(__file__).resolve().parents[2] / "sip-testbed" / "scenarios"
PCAP_DIR = Path("/usr/share/sip-tester")
MENU_PROMPT = "Press 1 for support, 2 for billing."

GOALS = {
    "failed_calls": 0,
    "rtp_loss": 0,
    "rtp_cpu_share_of_one_core": 0.25,
    "added_jitter_p99_ms": 5.0,
}


class BenchError(Exception):
    """The benchmark cannot run here (SIPp missing, a phone failed to register...)."""

    code = "bench-failed"


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `caruso bench sip`."""
    parser.add_argument("--cps", type=float, default=10.0, help="new calls per second (10)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (30)")
    parser.add_argument("--agents", type=int, default=180, help="agents with phones (180)")
    parser.add_argument(
        "--hold", type=float, default=5.0, help="seconds a caller stays after the answer (5)"
    )
    parser.add_argument("--rtp-calls", type=int, default=180, help="bridged calls (180)")
    parser.add_argument("--rtp-seconds", type=float, default=10.0, help="seconds of RTP (10)")
    parser.add_argument(
        "--only", choices=["all", "calls", "rtp"], default="all", help="which part to run (all)"
    )


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Run the parts asked for and return their figures."""
    # Other work on the machine shows in jitter and CPU share: say how busy it was.
    figures: dict[str, object] = {"load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    if args.only in ("all", "calls"):
        figures["calls"] = await on_uvloop_thread(
            lambda: bench_calls(
                cps=args.cps, duration=args.duration, agents=args.agents, hold=args.hold
            )
        )
    if args.only in ("all", "rtp"):
        figures["rtp"] = await bench_rtp(calls=args.rtp_calls, seconds=args.rtp_seconds)
    figures["goals"] = GOALS
    return figures


def progress(message: str) -> None:
    """Progress lines go to stderr; the figures go to stdout."""
    print(f"sip bench: {message}", file=sys.stderr, flush=True)


# -- running the server side on uvloop ----------------------------------------------------------


async def on_uvloop_thread(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work()` on a fresh uvloop in a thread of its own (the loop `caruso run` uses)."""

    def thread_main() -> T:
        loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
            loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(_awaited(work))
        finally:
            loop.close()

    return await asyncio.to_thread(thread_main)


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


# -- SIPp ------------------------------------------------------------------------------------


def sipp_binary() -> str:
    """The SIPp binary (Debian's sip-tester)."""
    binary = shutil.which("sipp")
    if binary is None:
        raise BenchError("sipp is not installed (apt-get install sip-tester)")
    return binary


def free_udp_port() -> int:
    """A UDP port free right now on 127.0.0.1 (for SIPp, which must be told its ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sipp_workdir(base: Path) -> Path:
    """A SIPp working directory: `./pcap/` (sip-tester's captures) and caller scenarios."""
    base.mkdir(parents=True, exist_ok=True)
    pcap = base / "pcap"
    if not pcap.exists():
        pcap.symlink_to(PCAP_DIR)
    text = (SCENARIOS / "caller_ivr.xml").read_text()
    for digit in "0123456789":
        # SIPp loads a pcap when it reads the scenario, so each digit needs its own copy.
        variant = text.replace("dtmf_2833_1.pcap", f"dtmf_2833_{digit}.pcap")
        (base / f"caller_ivr_{digit}.xml").write_text(variant)
    return base


@dataclass
class SippOutcome:
    """What one SIPp run did, from its exit status, statistics and response-time files."""

    returncode: int
    created: int = 0
    successful: int = 0
    failed: int = 0
    elapsed: float = 0.0
    rtd_ms: dict[str, list[float]] = field(default_factory=dict)
    call_starts_ms: list[float] = field(default_factory=list)
    errors: str = ""

    @property
    def achieved_cps(self) -> float:
        """Calls started per second, from the first to the last answer SIPp measured."""
        starts = self.call_starts_ms
        if len(starts) < 2 or max(starts) <= min(starts):
            return 0.0
        return (len(starts) - 1) / ((max(starts) - min(starts)) / 1000)


async def run_sipp(
    *args: str, cwd: Path, timeout: float, name: str = "sipp", stats: bool = True
) -> SippOutcome:
    """Run SIPp headless to the end (bounded by `-m` and `timeout`) and collect its figures."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=cwd))
    command = [
        sipp_binary(),
        *args,
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(run_dir / "errors.log"),
        "-timeout",
        f"{max(int(timeout), 1)}s",
        "-timeout_error",
    ]
    if stats:
        command += ["-trace_stat", "-stf", str(run_dir / "stats.csv"), "-fd", "1"]
        command += ["-trace_rtt", "-rtt_freq", "1"]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=run_dir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout + 15):
            _, err = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        _, err = await process.communicate()
    assert process.returncode is not None
    outcome = SippOutcome(process.returncode)
    errors = run_dir / "errors.log"
    outcome.errors = errors.read_text(errors="replace")[-4000:] if errors.exists() else ""
    if not outcome.errors and process.returncode != 0:
        outcome.errors = err.decode(errors="replace")[-2000:]
    _read_stats(outcome, run_dir)
    return outcome


def _read_stats(outcome: SippOutcome, run_dir: Path) -> None:
    stats_file = run_dir / "stats.csv"
    if stats_file.exists():
        rows = list(csv.reader(stats_file.read_text().splitlines(), delimiter=";"))
        if len(rows) >= 2:
            last = dict(zip(rows[0], rows[-1], strict=False))
            outcome.created = int(last.get("TotalCallCreated", "0") or 0)
            outcome.successful = int(last.get("SuccessfulCall(C)", "0") or 0)
            outcome.failed = int(last.get("FailedCall(C)", "0") or 0)
            outcome.elapsed = _hms(last.get("ElapsedTime(C)", "0:0:0"))
    for rtt in run_dir.glob("*_rtt.csv"):
        for row in csv.reader(rtt.read_text().splitlines()[1:], delimiter=";"):
            if len(row) >= 3:
                outcome.rtd_ms.setdefault(row[2], []).append(float(row[1]))
                if row[2] == "answer":
                    # Date_ms is when the answer came: minus its delay, when the call started.
                    outcome.call_starts_ms.append(float(row[0]) - float(row[1]))


def _hms(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


@contextlib.asynccontextmanager
async def sipp_phones(cwd: Path, port: int, *, timeout: float) -> Any:
    """One SIPp UAS on `port` answering every agent registered there until we stop it."""
    media_port = free_udp_port()
    process = await asyncio.create_subprocess_exec(
        sipp_binary(),
        "-sf", str(SCENARIOS / "agent_answer.xml"), "-i", "127.0.0.1", "-p", str(port),
        "-mi", "127.0.0.1", "-mp", str(media_port), "-nostdin",
        "-timeout", f"{max(int(timeout), 1)}s",
        cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.5)  # SIPp binds, then reads its pcaps
        if process.returncode is not None:
            raise BenchError(f"the SIPp agent phones exited at once ({process.returncode})")
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(5):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                await process.wait()


async def register_phones(
    target: str,
    phones: Sequence[tuple[str, str]],
    contact_port: int,
    cwd: Path,
    *,
    expires: int = 3600,
) -> SippOutcome:
    """REGISTER each (extension, password) with digest auth at `contact_port` (0: unregister)."""
    inject = cwd / f"phones-{contact_port}.csv"
    lines = ["SEQUENTIAL"] + [
        f"{ext};[authentication username={ext} password={password}]" for ext, password in phones
    ]
    inject.write_text("\n".join(lines) + "\n")
    scenario = cwd / f"register_many_{expires}.xml"
    text = (SCENARIOS / "register_many.xml").read_text()
    scenario.write_text(text.replace("Expires: 3600", f"Expires: {expires}"))
    return await run_sipp(
        "-sf", str(scenario), "-inf", str(inject),
        "-key", "contact_port", str(contact_port), "-m", str(len(phones)), "-r", "50", "-l", "20",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), target,
        cwd=cwd, timeout=30 + len(phones) / 10, name="register", stats=False,
    )  # fmt: skip


async def run_callers(
    target: str,
    cwd: Path,
    *,
    calls: int,
    cps: float,
    hold: float,
    digit: str = "1",
    service: str = "100",
    name: str = "callers",
) -> SippOutcome:
    """SIPp callers: `calls` calls at `cps`, each keys `digit`, hangs up `hold` s after answer."""
    concurrent = max(10, int(cps * (hold + 10)))
    return await run_sipp(
        "-sf", str(cwd / f"caller_ivr_{digit}.xml"), "-s", service,
        "-m", str(calls), "-r", f"{cps:g}", "-l", str(concurrent), "-d", str(int(hold * 1000)),
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_udp_port()),
        "-mp", str(free_udp_port()), target,
        cwd=cwd, timeout=calls / cps + hold + 60, name=name,
    )  # fmt: skip


# -- the calls part -----------------------------------------------------------------------------


def _site(data_dir: Path, agents: int) -> dict[str, Any]:
    return {
        "server": {"data_dir": str(data_dir), "drain_timeout": 5.0, "log_level": "warning"},
        "web": {"port": 0},
        "telephony": {
            "backend": "sip",
            "ring_timeout": 10.0,
            "max_calls": 2000,
            "sip": {"port": 0, "rtp_port_min": 0, "rtp_port_max": 0},
        },
        "queues": [
            {"name": "support", "skills": {"support": 1}, "wrap_up": 0.2},
            {"name": "billing", "skills": {"billing": 1}, "wrap_up": 0.2},
        ],
        "agents": [
            {
                "id": f"a{2001 + i}",
                "extension": str(2001 + i),
                "sip_password": f"pw{2001 + i}",
                "skills": {"support": 50, "billing": 50},
                # Ready from the start: the figure is about calls, not about logging in.
                "logged_in": True,
            }
            for i in range(agents)
        ],
        "ivr": {
            "numbers": ["100"],
            "menu": {
                "prompt": MENU_PROMPT,
                "choices": {"1": "support", "2": "billing"},
                "timeout": 5.0,
                "retries": 1,
            },
        },
    }


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 3)}


async def bench_calls(*, cps: float, duration: float, agents: int, hold: float) -> dict[str, Any]:
    """Callers through IVR and ACD to answering agents, then the SIPp-to-SIPp baseline."""
    from commserver.app import build_server
    from commserver.config import config_from_mapping
    from commserver.contacts import CallRecord
    from commserver.telephony.sip import SipBackend

    calls = max(2, int(cps * duration))
    with tempfile.TemporaryDirectory(prefix="caruso-bench-sip-") as tmp:
        cwd = sipp_workdir(Path(tmp) / "sipp")
        config = config_from_mapping(_site(Path(tmp) / "data", agents))
        phone_port = free_udp_port()
        progress(f"{agents} agents, {calls} calls at {cps:g}/s, {hold:g} s after the answer")
        async with sipp_phones(cwd, phone_port, timeout=duration + hold + 120):
            async with build_server(config) as server:
                backend = server.backend
                assert isinstance(backend, SipBackend)
                host, port = backend.address
                target = f"{host}:{port}"
                phones = [(a.extension, a.sip_password) for a in config.agents]
                registered = await register_phones(target, phones, phone_port, cwd)
                if registered.returncode != 0:
                    raise BenchError(f"agent phones did not register: {registered.errors}")
                await backend.prompts.render(MENU_PROMPT)  # rendered once, before the clock
                progress(f"{len(phones)} phones registered; calling")
                cpu_before, wall_before = time.thread_time(), time.perf_counter()
                half = calls // 2
                support, billing = await asyncio.gather(
                    run_callers(target, cwd, calls=calls - half, cps=cps / 2, hold=hold, digit="1"),
                    run_callers(target, cwd, calls=half, cps=cps / 2, hold=hold, digit="2"),
                )
                wall = time.perf_counter() - wall_before
                cpu = time.thread_time() - cpu_before
                records = await _records(server.storage, CallRecord, calls)
        progress("baseline: the same callers straight to the SIPp phones")
        baseline_port = free_udp_port()
        async with sipp_phones(cwd, baseline_port, timeout=duration + hold + 120):
            direct = await run_callers(
                f"127.0.0.1:{baseline_port}", cwd, calls=calls, cps=cps, hold=hold, name="direct"
            )
    outcomes = (support, billing)
    answered = [r for r in records if r.outcome == "answered" and r.agent_id]
    sipp_failed = sum(o.failed for o in outcomes) + sum(
        o.created - o.successful - o.failed for o in outcomes
    )
    failed = max(calls - len(answered), sipp_failed)
    setup = [t for o in outcomes for t in o.rtd_ms.get("setup", [])]
    answer = [t for o in outcomes for t in o.rtd_ms.get("answer", [])]
    starts = sorted(t for o in outcomes for t in o.call_starts_ms)
    achieved = (len(starts) - 1) / ((starts[-1] - starts[0]) / 1000) if len(starts) > 1 else 0.0
    figures = {
        "offered_cps": cps,
        "calls": calls,
        "agents": agents,
        "achieved_cps": round(achieved, 2),
        "answered_by_agent": len(answered),
        "failed_calls": failed,
        "sipp_returncodes": [o.returncode for o in outcomes],
        "invite_to_100_ms": _percentiles(setup),
        "invite_to_200_ms": _percentiles(answer),
        "queue_to_agent_s": _percentiles([r.wait_seconds for r in answered]),
        "server_cpu_share_of_one_core": round(cpu / wall, 3) if wall else 0.0,
        "baseline_direct_sipp": {
            "achieved_cps": round(direct.achieved_cps, 2),
            "successful": direct.successful,
            "failed": direct.failed + max(direct.created - direct.successful - direct.failed, 0),
            "invite_to_200_ms": _percentiles(direct.rtd_ms.get("answer", [])),
        },
    }
    if failed:
        figures["errors"] = "\n".join(o.errors for o in outcomes if o.errors)[-2000:]
    progress(
        f"{len(answered)}/{calls} answered by agents at {achieved:.1f} calls/s "
        f"(direct SIPp baseline {direct.achieved_cps:.1f}/s); server CPU {cpu / wall:.0%} of a core"
    )
    return figures


async def _records(storage: Any, record_type: type[T], expected: int) -> list[T]:
    """Call records, waiting (bounded) for the last ones to be written."""
    deadline = time.monotonic() + 15
    while True:
        records: list[T] = await storage.query(record_type)
        if len(records) >= expected or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.2)


# -- the RTP part -------------------------------------------------------------------------------


async def bench_rtp(*, calls: int, seconds: float) -> dict[str, Any]:
    """The relay and a plain forwarder, each carrying `calls` calls both ways for `seconds`."""
    progress(f"RTP: {calls} calls, both directions, 50 packets/s each, {seconds:g} s per mode")
    forward = await _rtp_mode("forward", calls, seconds)
    relay = await _rtp_mode("relay", calls, seconds)
    added_jitter = relay["peer"]["jitter_ms_p99"] - forward["peer"]["jitter_ms_p99"]
    added_transit = relay["peer"]["transit_ms_p99"] - forward["peer"]["transit_ms_p99"]
    figures = {
        "calls": calls,
        "relayed_packets_per_s": round(relay["peer"]["received"] / relay["peer"]["seconds"], 1),
        "loss": relay["peer"]["lost"],
        "cpu_share_of_one_core": relay["cpu_share"],
        "jitter_ms_p99": relay["peer"]["jitter_ms_p99"],
        "added_jitter_p99_ms": round(added_jitter, 3),
        "transit_ms": {k: relay["peer"][f"transit_ms_{k}"] for k in ("p50", "p99", "max")},
        "added_transit_p99_ms": round(added_transit, 3),
        "baseline_plain_forwarder": {
            "packets_per_s": round(forward["peer"]["received"] / forward["peer"]["seconds"], 1),
            "loss": forward["peer"]["lost"],
            "cpu_share_of_one_core": forward["cpu_share"],
            "jitter_ms_p99": forward["peer"]["jitter_ms_p99"],
            "transit_ms": {k: forward["peer"][f"transit_ms_{k}"] for k in ("p50", "p99", "max")},
        },
    }
    progress(
        f"relay {figures['relayed_packets_per_s']:,} packets/s, loss {figures['loss']}, "
        f"CPU {relay['cpu_share']:.0%} of a core (forwarder {forward['cpu_share']:.0%}), "
        f"added jitter p99 {added_jitter:.2f} ms"
    )
    return figures


class _Forwarder(asyncio.DatagramProtocol):
    """Baseline: the least a B2BUA media path can do (no parsing, no rewriting)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: _Forwarder | None = None
        self.remote: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send it out of the other leg's socket."""
        peer = self.peer
        if peer is not None and peer.transport is not None and peer.remote is not None:
            peer.transport.sendto(data, peer.remote)


async def _rtp_mode(mode: str, calls: int, seconds: float) -> dict[str, Any]:
    peer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "commserver.bench._rtp_peer",
        "--calls", str(calls), "--seconds", str(seconds),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert peer.stdin is not None
    assert peer.stdout is not None
    try:
        async with asyncio.timeout(30):
            phone_ports = json.loads(await peer.stdout.readline())["ports"]
        ready = threading.Event()
        done = threading.Event()
        box: dict[str, Any] = {}

        async def server_side() -> None:
            sockets = await _open_media(mode, phone_ports)
            box["targets"] = [port for _, port in sockets["addresses"]]
            ready.set()
            cpu, wall = time.thread_time(), time.perf_counter()
            await asyncio.to_thread(done.wait, seconds + 60)
            box["cpu_share"] = round((time.thread_time() - cpu) / (time.perf_counter() - wall), 3)
            for close in sockets["close"]:
                close()

        server = asyncio.ensure_future(on_uvloop_thread(server_side))
        await asyncio.to_thread(ready.wait, 30)
        if "targets" not in box:
            raise BenchError(f"the {mode} side did not open its sockets")
        peer.stdin.write((json.dumps({"targets": box["targets"]}) + "\n").encode())
        await peer.stdin.drain()
        async with asyncio.timeout(seconds + 60):
            result = json.loads(await peer.stdout.readline())
        done.set()
        await server
        await peer.wait()
    finally:
        if peer.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(peer.pid, signal.SIGKILL)
            await peer.wait()
    return {"peer": result, "cpu_share": box["cpu_share"]}


async def _open_media(mode: str, phone_ports: Sequence[int]) -> dict[str, Any]:
    """Two server sockets per call, each facing one phone, joined by relay or forwarder."""
    from commserver.sip import Codec, RtpRelay, RtpSession
    from commserver.sip.sdp import Direction, MediaOffer

    loop = asyncio.get_running_loop()
    addresses: list[tuple[str, int]] = []
    closers: list[Callable[[], None]] = []
    for index in range(0, len(phone_ports), 2):
        if mode == "relay":
            legs = [await RtpSession.open("127.0.0.1") for _ in range(2)]
            for leg, port in zip(legs, phone_ports[index : index + 2], strict=True):
                leg.configure(MediaOffer("127.0.0.1", port, Codec.PCMU, 101, Direction.SENDRECV))
                addresses.append(leg.local_address)
                closers.append(leg.close)
            RtpRelay(legs[0], legs[1]).start()
        else:
            pair: list[_Forwarder] = []
            for port in phone_ports[index : index + 2]:
                transport, forwarder = await loop.create_datagram_endpoint(
                    _Forwarder, local_addr=("127.0.0.1", 0)
                )
                forwarder.remote = ("127.0.0.1", port)
                sockname = transport.get_extra_info("sockname")
                addresses.append((sockname[0], sockname[1]))
                closers.append(transport.close)
                pair.append(forwarder)
            pair[0].peer, pair[1].peer = pair[1], pair[0]
    return {"addresses": addresses, "close": closers}
