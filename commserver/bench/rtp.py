"""`caruso bench rtp`: the B2BUA RTP relay's packet rate, CPU share, loss and added jitter.

`--calls` bridged calls, both directions at 50 packets/s (20 ms G.711), go through `RtpRelay`
(latching, SSRC/sequence/timestamp rewriting, DTMF watch, per-packet checks) on a uvloop thread
as `caruso run` runs it. As in a real call, the caller's leg has sent a prompt before the bridge,
so that direction rewrites every header; the agent's leg never sent anything, so its direction
passes the caller's packets on unchanged. Baseline in the same run: a plain UDP forwarder (an
asyncio datagram protocol, no parsing, no rewriting: the least a Python B2BUA media path written
the usual way does) on the same kind of thread, carrying the same load. The modes alternate for
`--rounds` rounds and each figure is the median over them, so a burst of other work on a shared
machine skews one round, not the result.

The phones are a separate process (`_rtp_peer`) that stamps each packet with its send time, so
transit and jitter are measured on one clock and the load generator's CPU stays out of the
relay's share. CPU share is the server thread's CPU time over wall time while the load runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from commserver.bench.sip import BenchError, on_uvloop_thread, stop_process

if TYPE_CHECKING:
    from commserver.sip.rtp import RtpSession

HELP = "RTP relay: packets/s, CPU share of one core, loss, added jitter, against a plain forwarder"

GOALS = {
    "loss": 0,
    "cpu_share_of_one_core": 0.25,
    "added_jitter_p99_ms": 5.0,
}

MODES = ("forward", "relay")


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `caruso bench rtp`."""
    parser.add_argument("--calls", type=_positive(int), default=180, help="bridged calls (180)")
    parser.add_argument(
        "--seconds",
        type=_positive(float),
        default=10.0,
        help="seconds of RTP per mode and round (10)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive(int),
        default=3,
        help="rounds of forwarder then relay; each figure is the median (3)",
    )


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number of `kind` above zero."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            wanted = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} is not above zero")
        return value

    return parse


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Run both modes `--rounds` times and return the relay's figures against the baseline."""
    figures: dict[str, object] = {"load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    _progress(
        f"{args.calls} calls, both directions, 50 packets/s each, {args.seconds:g} s per mode, "
        f"{args.rounds} round(s)"
    )
    rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for number in range(args.rounds):
        for mode in MODES:
            measured = await _measure(mode, args.calls, args.seconds)
            rounds[mode].append(measured)
            _progress(
                f"round {number + 1} {mode}: {measured['packets_per_s']:,.0f} packets/s, "
                f"loss {measured['loss']}, CPU {measured['cpu_share_of_one_core']:.0%}, "
                f"jitter p99 {measured['jitter_ms_p99']:.2f} ms"
            )
    relay, forward = _median(rounds["relay"]), _median(rounds["forward"])
    del forward["counters"]  # a plain forwarder counts nothing
    added_jitter = relay["jitter_ms_p99"] - forward["jitter_ms_p99"]
    per_round = [
        {
            "forwarder_cpu": f["cpu_share_of_one_core"],
            "relay_cpu": r["cpu_share_of_one_core"],
            # Each relay round ran right after its forwarder round: their ratio is the figure
            # least disturbed by other work on the machine.
            "cpu_ratio": _ratio(r["cpu_share_of_one_core"], f["cpu_share_of_one_core"]),
            "forwarder_jitter_p99_ms": f["jitter_ms_p99"],
            "relay_jitter_p99_ms": r["jitter_ms_p99"],
        }
        for f, r in zip(rounds["forward"], rounds["relay"], strict=True)
    ]
    cpu_ratio = statistics.median(r["cpu_ratio"] for r in per_round)
    figures.update(
        {
            "calls": args.calls,
            "seconds_per_mode": args.seconds,
            "rounds": args.rounds,
            "relayed_packets_per_s": relay["packets_per_s"],
            "loss": relay["loss"],
            # Packets the phones got that were not the far phone's: the prompt frame per call.
            "foreign_packets": relay["foreign_packets"],
            # The relay's own counts over all rounds: packets it rejected (strangers, not RTP),
            # held, or could not send show here rather than as unexplained loss.
            "relay_counters": relay.pop("counters"),
            "cpu_share_of_one_core": relay["cpu_share_of_one_core"],
            "jitter_ms_p99": relay["jitter_ms_p99"],
            "added_jitter_p99_ms": round(added_jitter, 3),
            "transit_ms": relay["transit_ms"],
            "added_transit_p99_ms": round(
                relay["transit_ms"]["p99"] - forward["transit_ms"]["p99"], 3
            ),
            "baseline_plain_forwarder": forward,
            "cpu_ratio_relay_to_forwarder": round(cpu_ratio, 2),
            "per_round": per_round,
            "goals": GOALS,
            "goals_met": {
                "loss": relay["loss"] <= GOALS["loss"],
                "cpu_share_of_one_core": relay["cpu_share_of_one_core"]
                <= GOALS["cpu_share_of_one_core"],
                "added_jitter_p99_ms": added_jitter <= GOALS["added_jitter_p99_ms"],
            },
        }
    )
    _progress(
        f"relay {relay['packets_per_s']:,.0f} packets/s, loss {relay['loss']}, "
        f"CPU {relay['cpu_share_of_one_core']:.0%} of a core "
        f"(forwarder {forward['cpu_share_of_one_core']:.0%}, ratio {cpu_ratio:.2f}), "
        f"added jitter p99 {added_jitter:.2f} ms"
    )
    return figures


def _progress(message: str) -> None:
    """Progress lines go to stderr; the figures go to stdout."""
    print(f"rtp bench: {message}", file=sys.stderr, flush=True)


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 3) if whole else 0.0


def _median(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (loss: the sum, so no lost packet hides)."""

    def mid(key: str) -> float:
        return round(float(statistics.median(r[key] for r in rounds)), 3)

    return {
        "packets_per_s": round(statistics.median(r["packets_per_s"] for r in rounds), 1),
        "loss": sum(r["loss"] for r in rounds),
        "foreign_packets": sum(r["foreign_packets"] for r in rounds),
        "counters": {
            key: sum(r["relay_counters"][key] for r in rounds)
            for key in rounds[0]["relay_counters"]
        },
        "cpu_share_of_one_core": mid("cpu_share_of_one_core"),
        "jitter_ms_p99": mid("jitter_ms_p99"),
        "transit_ms": {
            k: round(statistics.median(r["transit_ms"][k] for r in rounds), 3)
            for k in ("p50", "p99", "max")
        },
    }


async def _measure(mode: str, calls: int, seconds: float) -> dict[str, Any]:
    """One mode, once: the peer process streams through the server side for `seconds`."""
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
            addresses, closers, sessions = await _open_media(mode, phone_ports)
            box["targets"] = [port for _, port in addresses]
            ready.set()
            cpu, wall = time.thread_time(), time.perf_counter()
            await asyncio.to_thread(done.wait, seconds + 60)
            box["cpu_share"] = round((time.thread_time() - cpu) / (time.perf_counter() - wall), 3)
            box["counters"] = _relay_counters(sessions)
            for close in closers:
                close()

        server = asyncio.ensure_future(on_uvloop_thread(server_side))
        try:
            await asyncio.to_thread(ready.wait, 30)
            if "targets" not in box:
                raise BenchError(f"the {mode} side did not open its sockets")
            peer.stdin.write((json.dumps({"targets": box["targets"]}) + "\n").encode())
            await peer.stdin.drain()
            async with asyncio.timeout(seconds + 60):
                line = await peer.stdout.readline()
            if not line:
                raise BenchError(f"the RTP peer process ended without figures ({mode})")
            result = json.loads(line)
        finally:
            done.set()
            await server
        await peer.wait()
    finally:
        await stop_process(peer)
    return {
        "packets_per_s": round(result["received"] / result["seconds"], 1),
        "loss": result["lost"],
        "foreign_packets": result["foreign"],
        "cpu_share_of_one_core": box["cpu_share"],
        "relay_counters": box["counters"],
        "jitter_ms_p99": result["jitter_ms_p99"],
        "transit_ms": {k: result[f"transit_ms_{k}"] for k in ("p50", "p99", "max")},
    }


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


async def _open_media(
    mode: str, phone_ports: Sequence[int]
) -> tuple[list[tuple[str, int]], list[Callable[[], None]], list[RtpSession]]:
    """Two server sockets per call, each facing one phone, joined by relay or forwarder.

    Returns the addresses (in the phones' order), how to close each socket, and the relay's
    sessions (none for the forwarder).
    """
    from commserver.sip import Codec, RtpRelay, RtpSession
    from commserver.sip.media import FRAME_BYTES
    from commserver.sip.sdp import Direction, MediaOffer

    loop = asyncio.get_running_loop()
    addresses: list[tuple[str, int]] = []
    closers: list[Callable[[], None]] = []
    sessions: list[RtpSession] = []
    for index in range(0, len(phone_ports), 2):
        if mode == "relay":
            legs = [await RtpSession.open("127.0.0.1") for _ in range(2)]
            for leg, port in zip(legs, phone_ports[index : index + 2], strict=True):
                leg.configure(MediaOffer("127.0.0.1", port, Codec.PCMU, 101, Direction.SENDRECV))
                addresses.append(leg.local_address)
                closers.append(leg.close)
                sessions.append(leg)
            # The caller heard the IVR before the bridge: one prompt frame gives its stream history.
            legs[0].send_audio_frame(bytes(FRAME_BYTES), marker=True)
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
    return addresses, closers, sessions


def _relay_counters(sessions: Sequence[RtpSession]) -> dict[str, int]:
    """What the relay's sessions counted besides relaying: where packets went if not through."""
    totals = {"received": 0, "relayed": 0, "rejected": 0, "held": 0, "send_failed": 0}
    for session in sessions:
        stats = session.stats
        totals["received"] += stats.packets_received
        totals["relayed"] += stats.packets_relayed
        totals["rejected"] += stats.rejected
        totals["held"] += stats.held
        totals["send_failed"] += stats.send_failed
    return totals
