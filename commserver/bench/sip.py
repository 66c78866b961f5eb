"""`caruso bench sip`: calls per second through IVR and ACD, with baselines.

Calls: a Caruso on the sip backend runs in this process on its own uvloop thread (as `caruso run`
runs), with `--agents` agents whose phones are one SIPp UAS (each registered with digest auth
first). SIPp callers dial 100 at `--cps` for `--duration` seconds, key 1 or 2 (RFC 4733), talk
and hang up `--hold` seconds after the answer. A call counts only if SIPp saw it succeed and
its stored record says an agent answered it.

Baselines, same run, same callers: through sippy's B2BUA (PyPI `sippy`, in the `dev` extra) in
plain forwarding mode to a SIPp phone, and straight to the SIPp phones with no server in between
(what the load generator itself manages; `--no-direct` skips it). sippy only forwards, Caruso
answers, plays the menu, takes a digit, queues and rings an agent: the ratios compare a contact
center with a proxy-like B2BUA, not like for like. Post-dial delay is INVITE sent -> first 180 or
200 the caller receives (docs/benchmarks.md).

The RTP relay has its own benchmark, `caruso bench rtp` (commserver/bench/rtp.py).

`sip-testbed/run-load` uses the SIPp helpers here to drive a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

HELP = "SIP calls/s through IVR and ACD (SIPp), against a baseline"

SCENARIOS = Path(__file__).resolve().parents[2] / "sip-testbed" / "scenarios"
PCAP_DIR = Path("/usr/share/sip-tester")
MENU_PROMPT = "Press 1 for support, 2 for billing."

GOALS = {
    "failed_calls": 0,
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
    parser.add_argument(
        "--no-direct",
        action="store_true",
        help="skip the SIPp-to-SIPp baseline (the sippy baseline always runs)",
    )


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Run the calls and their baseline and return the figures."""
    # Other work on the machine shows in jitter and CPU share: say how busy it was.
    figures: dict[str, object] = {"load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    figures["calls"] = await on_uvloop_thread(
        lambda: bench_calls(
            cps=args.cps,
            duration=args.duration,
            agents=args.agents,
            hold=args.hold,
            direct=not args.no_direct,
        )
    )
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


def free_udp_port_block(size: int = 4) -> int:
    """The first of `size` consecutive UDP ports free right now on 127.0.0.1.

    SIPp binds `-mp` and the ports after it (video RTP at +2): one free port is not enough.
    """
    for _ in range(50):
        base = free_udp_port()
        if base + size > 65536:
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + size):
                    sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise BenchError(f"no {size} consecutive free UDP ports on 127.0.0.1")


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
    media_port = free_udp_port_block()
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
        await stop_process(process)


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """Stop a peer we started, by its PID: SIGTERM, then SIGKILL if it lingers past 5 s."""
    if process.returncode is not None:
        return
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
        "-mp", str(free_udp_port_block()), target,
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


async def bench_calls(
    *, cps: float, duration: float, agents: int, hold: float, direct: bool = True
) -> dict[str, Any]:
    """Callers through IVR and ACD to answering agents, then through sippy, then SIPp to SIPp."""
    from commserver.app import build_server
    from commserver.config import config_from_mapping
    from commserver.contacts import CallRecord
    from commserver.telephony.sip import SipBackend

    calls = max(2, int(cps * duration))
    bound = duration + hold + 120
    with tempfile.TemporaryDirectory(prefix="caruso-bench-sip-") as tmp:
        cwd = sipp_workdir(Path(tmp) / "sipp")
        config = config_from_mapping(_site(Path(tmp) / "data", agents))
        phone_port = free_udp_port()
        progress(f"{agents} agents, {calls} calls at {cps:g}/s, {hold:g} s after the answer")
        async with sipp_phones(cwd, phone_port, timeout=bound):
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
                process_cpu_before = time.process_time()
                outcomes = await _callers(target, cwd, calls=calls, cps=cps, hold=hold)
                wall = time.perf_counter() - wall_before
                cpu = time.thread_time() - cpu_before
                process_cpu = time.process_time() - process_cpu_before
                records = await _records(server.storage, CallRecord, calls)
        progress("baseline: the same callers through sippy's B2BUA to the SIPp phones")
        sippy = await _bench_sippy(cwd, calls=calls, cps=cps, hold=hold, bound=bound)
        baseline: dict[str, Any] | None = None
        if direct:
            progress("baseline: the same callers straight to the SIPp phones")
            baseline_port = free_udp_port()
            async with sipp_phones(cwd, baseline_port, timeout=bound):
                baseline = _load_figures(
                    await _callers(
                        f"127.0.0.1:{baseline_port}", cwd, calls=calls, cps=cps, hold=hold
                    )
                )
    answered = [r for r in records if r.outcome == "answered" and r.agent_id]
    load = _load_figures(outcomes)
    failed = max(calls - len(answered), load["failed"])
    figures: dict[str, Any] = {
        "offered_cps": cps,
        "calls": calls,
        "agents": agents,
        "hold_s": hold,
        "achieved_cps": load["achieved_cps"],
        "answered_by_agent": len(answered),
        "failed_calls": failed,
        # Why calls failed: SIPp's own count, and call records (stored) that show no agent.
        "sipp_successful": load["successful"],
        "records_stored": len(records),
        "sipp_returncodes": load["sipp_returncodes"],
        "invite_to_100_ms": load["invite_to_100_ms"],
        "post_dial_delay_ms": load["post_dial_delay_ms"],
        "invite_to_200_ms": load["invite_to_200_ms"],
        "queue_to_agent_s": _percentiles([r.wait_seconds for r in answered]),
        "server_cpu_share_of_one_core": round(cpu / wall, 3) if wall else 0.0,
        "server_process_cpu_share_of_one_core": round(process_cpu / wall, 3) if wall else 0.0,
        "server_cpu_ms_per_call": round(cpu * 1000 / calls, 2),
        "sippy_b2bua": sippy,
    }
    if "error" not in sippy:
        figures["ratio_caruso_to_sippy"] = {
            "achieved_cps": _ratio(load["achieved_cps"], sippy["achieved_cps"]),
            "cpu_ms_per_call": _ratio(round(cpu * 1000 / calls, 2), sippy["cpu_ms_per_call"]),
            **{
                f"{key}_p99": _ratio(load[key].get("p99", 0.0), sippy[key].get("p99", 0.0))
                for key in ("invite_to_100_ms", "post_dial_delay_ms", "invite_to_200_ms")
            },
        }
    if baseline is not None:
        figures["baseline_direct_sipp"] = baseline
    if failed:
        figures["errors"] = load.get("errors", "")
    progress(
        f"{len(answered)}/{calls} answered by agents at {load['achieved_cps']:.1f} calls/s, "
        f"server CPU {cpu / wall:.0%} of a core; sippy: "
        + (
            sippy["error"]
            if "error" in sippy
            else f"{sippy['successful']}/{calls} at {sippy['achieved_cps']:.1f} calls/s, "
            f"CPU {sippy['cpu_share_of_one_core']:.0%} of a core"
        )
    )
    return figures


async def _callers(
    target: str, cwd: Path, *, calls: int, cps: float, hold: float
) -> tuple[SippOutcome, ...]:
    """The load every mode gets: two SIPp callers at half the rate each, keying 1 and 2."""
    half = calls // 2
    return tuple(
        await asyncio.gather(
            run_callers(target, cwd, calls=calls - half, cps=cps / 2, hold=hold, digit="1"),
            run_callers(target, cwd, calls=half, cps=cps / 2, hold=hold, digit="2"),
        )
    )


def _load_figures(outcomes: Sequence[SippOutcome]) -> dict[str, Any]:
    """What the callers saw: rate, failures and response times (ms), merged over the callers."""

    def merged(rtd: str) -> dict[str, float]:
        return _percentiles([t for o in outcomes for t in o.rtd_ms.get(rtd, [])])

    starts = sorted(t for o in outcomes for t in o.call_starts_ms)
    achieved = (len(starts) - 1) / ((starts[-1] - starts[0]) / 1000) if len(starts) > 1 else 0.0
    figures: dict[str, Any] = {
        "achieved_cps": round(achieved, 2),
        "successful": sum(o.successful for o in outcomes),
        # A call SIPp created but neither finished nor counted failed (cut off) failed too.
        "failed": sum(max(o.created - o.successful, o.failed) for o in outcomes),
        "sipp_returncodes": [o.returncode for o in outcomes],
        "invite_to_100_ms": merged("setup"),
        "post_dial_delay_ms": merged("pdd"),
        "invite_to_200_ms": merged("answer"),
    }
    entries = [e for o in outcomes for e in _ERROR_ENTRY.split(o.errors) if e.strip()]
    # RTP that lands on a SIPp caller's SIP port (SIPp's [auto_media_port] is not a port it
    # listens on) is logged as "non SIP message discarded": noise, counted but not quoted.
    noise = [e for e in entries if "non SIP message discarded" in e]
    if noise:
        figures["sipp_discarded_non_sip"] = len(noise)
    errors = "\n".join(e.strip() for e in entries if e not in noise)
    if errors:
        figures["errors"] = errors[-2000:]
    return figures


# Each entry of SIPp's error file starts with a date and a tab.
_ERROR_ENTRY = re.compile(r"\d{4}-\d\d-\d\d\t")


def _ratio(caruso: float, sippy: float) -> float | None:
    return round(caruso / sippy, 3) if sippy else None


# -- the sippy B2BUA baseline -------------------------------------------------------------------


def sippy_binary() -> str:
    """sippy's `b2bua` entry point, next to this Python or on PATH (the `dev` extra)."""
    beside = Path(sys.executable).parent / "b2bua"
    found = str(beside) if beside.exists() else shutil.which("b2bua")
    if found is None:
        raise BenchError("sippy is not installed (pip install -e '.[dev]')")
    return found


@contextlib.asynccontextmanager
async def sippy_b2bua(cwd: Path, port: int, next_hop: str) -> AsyncIterator[int]:
    """sippy's B2BUA on 127.0.0.1:`port`, every call forwarded to `next_hop`; yields its PID.

    Plain forwarding: no RADIUS, no digest auth, no RTPproxy (SDP passes unchanged, so media
    flows phone to phone). Its log is kept at WARN: at INFO it writes every message out.
    """
    log = cwd / f"sippy-{port}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sippy_binary(), "--foreground=on", "--auth_enable=off", "--acct_enable=off",
            "--sip_address=127.0.0.1", f"--sip_port={port}", f"--static_route={next_hop}",
            f"--b2bua_socket={cwd / f'sippy-{port}.sock'}", f"--logfile={log}",
            cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output,
            env={**os.environ, "SIPLOG_LVL": "WARN"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not _udp_port_taken(port):
            if process.returncode is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1000:]
                raise BenchError(f"sippy's b2bua did not listen on {port}: {tail}")
            await asyncio.sleep(0.1)
        yield process.pid
    finally:
        await stop_process(process)


def _udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all its threads (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command come state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _bench_sippy(
    cwd: Path, *, calls: int, cps: float, hold: float, bound: float
) -> dict[str, Any]:
    """The same callers through sippy's B2BUA to a fresh SIPp phone; an error if it cannot."""
    phone_port, sippy_port = free_udp_port(), free_udp_port()
    try:
        async with sipp_phones(cwd, phone_port, timeout=bound):
            async with sippy_b2bua(cwd, sippy_port, f"127.0.0.1:{phone_port}") as pid:
                cpu_before, wall_before = process_cpu_seconds(pid), time.perf_counter()
                outcomes = await _callers(
                    f"127.0.0.1:{sippy_port}", cwd, calls=calls, cps=cps, hold=hold
                )
                wall = time.perf_counter() - wall_before
                cpu = process_cpu_seconds(pid) - cpu_before
    except (BenchError, OSError) as error:
        return {"error": str(error)}
    figures = _load_figures(outcomes)
    figures["cpu_share_of_one_core"] = round(cpu / wall, 3) if wall else 0.0
    figures["cpu_ms_per_call"] = round(cpu * 1000 / calls, 2)
    return figures


async def _records(storage: Any, record_type: type[T], expected: int) -> list[T]:
    """Call records, waiting (bounded) for the last ones to be written."""
    deadline = time.monotonic() + 15
    while True:
        records: list[T] = await storage.query(record_type)
        if len(records) >= expected or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.2)
