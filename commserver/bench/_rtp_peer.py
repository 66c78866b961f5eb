"""The far ends of `caruso bench rtp`: both phones of every call, in their own process.

Run as `python -m commserver.bench._rtp_peer --calls N --seconds S`. It binds two UDP sockets
per call and prints their ports as one JSON line; it then reads one JSON line with the ports
to send to (the relay's sockets, in the same order) and streams 20 ms G.711 packets from every
socket at 50 packets/s for S seconds. Each payload carries its send time, so on receipt the
transit through the relay is measured on one clock, and a token of this run, so packets that
are not ours (the relay's own prompt packets, strays from other programs on the loopback
interface) are counted apart and kept out of the figures. It prints its figures as one JSON line.

A separate process keeps the load generator's CPU out of the relay's measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import secrets
import statistics
import struct
import sys
import time

_STAMP = struct.Struct("!QII")  # send time (ns, monotonic), stream sequence, this run's token
_TOKEN = secrets.randbits(32)
_HEADER = struct.Struct("!BBHII")
_PAYLOAD = 160
_TICK = 0.02
_SLOTS = 10  # streams are spread over 2 ms slots so a tick is not one burst


class _Stream(asyncio.DatagramProtocol):
    """One phone's socket: sends its stream, measures what comes back from the far phone."""

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.transport: asyncio.DatagramTransport | None = None
        self.target: tuple[str, int] | None = None
        self.sequence = 0
        self.sent = 0
        self.received = 0
        self.foreign = 0
        self.transits: list[float] = []
        self.jitter = 0.0
        self.jitters: list[float] = []
        self._last_transit: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self) -> None:
        if self.transport is None or self.target is None:
            return
        stamp = _STAMP.pack(time.monotonic_ns(), self.sequence, _TOKEN)
        header = _HEADER.pack(0x80, 0, self.sequence & 0xFFFF, self.sequence * 160, self.ssrc)
        payload = stamp + bytes(_PAYLOAD - _STAMP.size)
        self.transport.sendto(header + payload, self.target)
        self.sequence += 1
        self.sent += 1

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic_ns()
        if len(data) < _HEADER.size + _STAMP.size:
            self.foreign += 1
            return
        sent_ns, _, token = _STAMP.unpack_from(data, _HEADER.size)
        if token != _TOKEN:
            self.foreign += 1
            return
        transit = (now - sent_ns) / 1e6
        self.received += 1
        self.transits.append(transit)
        if self._last_transit is not None:
            # RFC 3550 interarrival jitter, in ms: senders are paced, so transit spread is jitter.
            self.jitter += (abs(transit - self._last_transit) - self.jitter) / 16
            self.jitters.append(self.jitter)
        self._last_transit = transit


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _main(calls: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    streams: list[_Stream] = []
    for index in range(2 * calls):
        _, stream = await loop.create_datagram_endpoint(
            functools.partial(_Stream, 0x10000 + index), local_addr=("127.0.0.1", 0)
        )
        streams.append(stream)
    ports = [s.transport.get_extra_info("sockname")[1] for s in streams if s.transport]
    print(json.dumps({"ports": ports}), flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    targets = json.loads(line)["targets"]
    for stream, port in zip(streams, targets, strict=True):
        stream.target = ("127.0.0.1", int(port))
    slots = [streams[i::_SLOTS] for i in range(_SLOTS)]
    start = loop.time()
    deadline = start + seconds
    tick = 0
    while loop.time() < deadline:
        base = start + tick * _TICK
        for slot, members in enumerate(slots):
            delay = base + slot * _TICK / _SLOTS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for stream in members:
                stream.send()
        tick += 1
    sending = loop.time() - start
    await asyncio.sleep(0.5)  # what is still in flight
    transits = [t for s in streams for t in s.transits]
    jitters = [j for s in streams for j in s.jitters[50:]]  # after the estimator settled
    sent = sum(s.sent for s in streams)
    received = sum(s.received for s in streams)
    foreign = sum(s.foreign for s in streams)
    print(
        json.dumps(
            {
                "sent": sent,
                "received": received,
                "lost": max(sent - received, 0),
                "foreign": foreign,
                "seconds": round(sending, 3),
                "transit_ms_p50": round(_percentile(transits, 0.5), 3),
                "transit_ms_p99": round(_percentile(transits, 0.99), 3),
                "transit_ms_max": round(max(transits, default=0.0), 3),
                "jitter_ms_mean": round(statistics.fmean(jitters), 3) if jitters else 0.0,
                "jitter_ms_p99": round(_percentile(jitters, 0.99), 3),
            }
        ),
        flush=True,
    )


def main() -> None:
    """Parse arguments and stream on uvloop when it is there."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        asyncio.run(_main(args.calls, args.seconds))
    else:
        uvloop.run(_main(args.calls, args.seconds))


if __name__ == "__main__":
    main()
