"""RTP (RFC 3550) media sessions on asyncio UDP: G.711 audio, RFC 4733 DTMF, playback, recording.

One `RtpSession` is one call leg's media socket. It latches onto the peer's real source address
(symmetric RTP, so phones behind NAT work), detects DTMF, feeds a recording, plays prompts at
20 ms pacing, and can be joined to another leg's session by `RtpRelay` (B2BUA media).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from . import g711
from .dtmf import DtmfDetector, event_payloads
from .media import FRAME_BYTES, FRAME_SAMPLES, CallRecorder, Recording, Track
from .sdp import Codec, Direction, MediaOffer

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
RTP_VERSION = 2
FRAME_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; CSRCs, header extension and padding are parsed away."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket | None:
        """Parse a datagram; None when it is not RTP version 2 or is truncated."""
        bounds = payload_bounds(data)
        if bounds is None:
            return None
        _first, second, sequence, timestamp, ssrc = RTP_HEADER.unpack_from(data)
        start, end = bounds
        return cls(second & 0x7F, sequence, timestamp, ssrc, data[start:end], bool(second & 0x80))

    def to_bytes(self) -> bytes:
        """The wire form (version 2, no padding, extension or CSRC)."""
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        return (
            RTP_HEADER.pack(0x80, second, self.sequence, self.timestamp, self.ssrc) + self.payload
        )


def payload_bounds(data: bytes) -> tuple[int, int] | None:
    """Start and end of an RTP payload, skipping CSRCs and extension and dropping padding."""
    if len(data) < RTP_HEADER.size or data[0] >> 6 != RTP_VERSION:
        return None
    start = RTP_HEADER.size + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < start + 4:
            return None
        (words,) = struct.unpack_from("!H", data, start + 2)
        start += 4 + 4 * words
    end = len(data)
    if data[0] & 0x20:
        end -= data[-1]
    if start > end:
        return None
    return start, end


class RtpPortRange:
    """The UDP ports media sockets may use (a firewall's RTP range): even ports, round robin.

    Even ports follow RFC 3550's convention (the odd one above is RTCP's). Handing them out
    round robin rather than lowest-first keeps a just-closed port from being reused at once,
    so late packets of an ended call never reach the next one.
    """

    def __init__(self, low: int, high: int) -> None:
        if not 0 < low <= high <= 65535:
            raise ValueError(f"bad RTP port range {low}-{high}")
        self.low = low
        self.high = high
        self._ports = range(low + (low % 2), high + 1, 2)
        if not self._ports:
            raise ValueError(f"RTP port range {low}-{high} holds no even port")
        self._cursor = 0

    def __len__(self) -> int:
        return len(self._ports)

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def candidates(self) -> Iterator[int]:
        """Every port of the range once, starting after the last one handed out."""
        count = len(self._ports)
        for _ in range(count):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % count
            yield port


@dataclass(slots=True)
class RtpStats:
    """Counters of one media session."""

    packets_received: int = 0
    packets_sent: int = 0
    packets_relayed: int = 0
    bytes_received: int = 0
    rejected: int = 0
    held: int = 0
    """Packets not sent because the peer is on hold (its SDP says it does not receive)."""
    jitter_ms: float = 0.0


class _Rewriter:
    """Maps a relayed input stream onto this leg's own SSRC, sequence and timestamp space."""

    __slots__ = ("seq_offset", "source_ssrc", "ts_offset")

    def __init__(self) -> None:
        self.source_ssrc: int | None = None
        self.seq_offset = 0
        self.ts_offset = 0


class RtpSession(asyncio.DatagramProtocol):
    """The media socket of one call leg."""

    def __init__(self, codec: Codec = Codec.PCMU, dtmf_payload_type: int | None = 101) -> None:
        self.codec = codec
        self.dtmf_payload_type = dtmf_payload_type
        self.remote: tuple[str, int] | None = None
        self.stats = RtpStats()
        self.on_dtmf: Callable[[str], None] | None = None
        self.recording: Recording | None = None
        self.call_recorder: CallRecorder | None = None
        self._may_send = True
        self._direction = Direction.SENDRECV
        self.ssrc = secrets.randbits(32)
        self._next_seq = secrets.randbits(16)
        self._next_ts = secrets.randbits(32)
        self._latched = False
        self._signalled: tuple[str, int] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._detector = DtmfDetector()
        self._relay_peer: RtpSession | None = None
        self._rewriter = _Rewriter()
        self._playback_generation = 0
        self._last_arrival: tuple[float, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = asyncio.Event()

    @classmethod
    async def open(
        cls,
        host: str,
        *,
        codec: Codec = Codec.PCMU,
        dtmf_payload_type: int | None = 101,
        ports: RtpPortRange | None = None,
    ) -> RtpSession:
        """Bind a new session on `host`: a free port of `ports`, or one the system chooses.

        Raises `OSError` (EADDRINUSE) when every port of the range is taken.
        """
        loop = asyncio.get_running_loop()
        candidates: Iterable[int] = (0,) if ports is None else ports.candidates()
        for port in candidates:
            try:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: cls(codec, dtmf_payload_type), local_addr=(host, port)
                )
            except OSError as exc:
                if port == 0 or exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                continue  # taken by another call or another program: try the next one
            return protocol
        raise OSError(errno.EADDRINUSE, f"no free RTP port in {ports}")

    # -- asyncio protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        """Mark the session closed."""
        self._transport = None
        self.closed.set()

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (peer gone) are normal on UDP; log quietly."""
        log.debug("rtp socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Accept a packet from our peer: relay it, or detect DTMF and record audio."""
        if len(data) < RTP_HEADER.size or data[0] >> 6 != RTP_VERSION:
            self.stats.rejected += 1
            return
        if addr != self.remote:
            if addr == self._signalled:
                # The address the peer gave in its SDP always wins: whatever latched first from
                # another port of that host (a NAT mapping, or a stranger's race) gives way.
                self.remote = addr
            elif self._latched or (self.remote is not None and addr[0] != self.remote[0]):
                # Only the peer's own host may move its port once (NAT); nobody else injects.
                self.stats.rejected += 1
                return
            else:
                self.remote = addr
        self._latched = True
        stats = self.stats
        stats.packets_received += 1
        stats.bytes_received += len(data)
        _, second, sequence, timestamp, ssrc = RTP_HEADER.unpack_from(data)
        self._update_jitter(timestamp)
        peer = self._relay_peer
        if peer is not None:
            peer._relay_out(data, self, second, sequence, timestamp, ssrc)
        payload_type = second & 0x7F
        if payload_type == self.dtmf_payload_type and self.dtmf_payload_type is not None:
            bounds = payload_bounds(data)
            if bounds is not None:
                digit = self._detector.feed(ssrc, timestamp, data[bounds[0] : bounds[1]])
                if digit is not None and self.on_dtmf is not None:
                    self.on_dtmf(digit)
        elif payload_type == self.codec.payload_type and (
            self.recording is not None or self.call_recorder is not None
        ):
            bounds = payload_bounds(data)
            if bounds is not None:
                pcm = g711.decode(data[bounds[0] : bounds[1]], self.codec)
                if self.recording is not None:
                    self.recording.add(timestamp, pcm)
                if self.call_recorder is not None:
                    self.call_recorder.add(Track.HEARD, ssrc, timestamp, pcm)

    def _update_jitter(self, timestamp: int) -> None:
        # RFC 3550 §6.4.1 interarrival jitter, in timestamp units, reported in ms.
        assert self._loop is not None
        arrival = self._loop.time() * 8000
        last = self._last_arrival
        self._last_arrival = (arrival, timestamp)
        if last is None:
            return
        transit_delta = (arrival - last[0]) - ((timestamp - last[1]) & 0xFFFFFFFF)
        if abs(transit_delta) > 8000 * 10:
            return  # a new stream or a long gap, not jitter
        jitter = self.stats.jitter_ms * 8
        jitter += (abs(transit_delta) - jitter) / 16
        self.stats.jitter_ms = jitter / 8

    # -- configuration ----------------------------------------------------------------------

    @property
    def local_address(self) -> tuple[str, int]:
        """Our bound host and port."""
        assert self._transport is not None, "session not open"
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    def configure(self, offer: MediaOffer) -> None:
        """Apply the negotiated codec, DTMF payload type and peer address."""
        self.codec = offer.codec
        self.dtmf_payload_type = offer.dtmf_payload_type
        remote = (offer.address, offer.port)
        if not offer.is_hold:
            self._signalled = remote
        if not self._latched or self.remote is None or self.remote[0] != offer.address:
            # A re-INVITE to a new address moves the stream; latching starts over.
            self.remote = remote if not offer.is_hold else self.remote
            self._latched = False

    @property
    def direction(self) -> Direction:
        """What flows on this leg from our side (negotiated by SDP): we send only if it sends."""
        return self._direction

    @direction.setter
    def direction(self, direction: Direction) -> None:
        self._direction = direction
        self._may_send = direction.sends

    @property
    def digits_detected(self) -> int:
        """How many DTMF key presses were detected."""
        return self._detector.digits_detected

    # -- sending ------------------------------------------------------------------------------

    def send_payload(
        self, payload: bytes, *, payload_type: int, marker: bool = False, advance: int = 0
    ) -> None:
        """Send one packet with our SSRC/sequence; the timestamp then advances by `advance`."""
        if self._transport is None or self.remote is None:
            return
        if not self._may_send:
            self.stats.held += 1
            return
        header = RTP_HEADER.pack(
            0x80,
            (0x80 if marker else 0) | payload_type,
            self._next_seq,
            self._next_ts,
            self.ssrc,
        )
        self._next_seq = (self._next_seq + 1) & 0xFFFF
        self._next_ts = (self._next_ts + advance) & 0xFFFFFFFF
        self._transport.sendto(header + payload, self.remote)
        self.stats.packets_sent += 1

    def send_audio_frame(self, pcm: bytes, *, marker: bool = False) -> None:
        """Encode and send one frame of 16-bit PCM."""
        if self.call_recorder is not None and self._may_send:
            self.call_recorder.add(Track.PLAYED, self.ssrc, self._next_ts, pcm)
        self.send_payload(
            g711.encode(pcm, self.codec),
            payload_type=self.codec.payload_type,
            marker=marker,
            advance=len(pcm) // 2,
        )

    def stop_playback(self) -> None:
        """End any prompt or DTMF being sent (its `play` returns early)."""
        self._playback_generation += 1

    async def play(self, pcm: bytes) -> bool:
        """Send PCM as 20 ms frames paced on the loop clock; False when stopped before the end."""
        self.stop_playback()
        generation = self._playback_generation
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            if generation != self._playback_generation or self._transport is None:
                return False
            frame = pcm[offset : offset + FRAME_BYTES]
            if len(frame) < FRAME_BYTES:
                frame += bytes(FRAME_BYTES - len(frame))
            self.send_audio_frame(frame, marker=index == 0)
            deadline += FRAME_SECONDS
            delay = deadline - loop.time()
            if delay < -0.1:
                deadline = loop.time()  # the loop stalled; resynchronise instead of bursting
            await asyncio.sleep(max(delay, 0))
        return generation == self._playback_generation

    async def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Send one key press as RFC 4733 events, paced at 20 ms."""
        if self.dtmf_payload_type is None:
            return
        for payload, marker in event_payloads(digit, duration_ms):
            # Every packet of one event carries the event's start timestamp (RFC 4733 §2.5.1.2).
            self.send_payload(payload, payload_type=self.dtmf_payload_type, marker=marker)
            await asyncio.sleep(FRAME_SECONDS)
        self._next_ts = (self._next_ts + max(FRAME_SAMPLES, duration_ms * 8)) & 0xFFFFFFFF

    # -- relay --------------------------------------------------------------------------------

    def _relay_out(
        self, data: bytes, source: RtpSession, second: int, seq: int, ts: int, ssrc: int
    ) -> None:
        """Forward a packet received by `source` out of this leg, in this leg's stream space.

        The caller already unpacked the fixed header (this runs for every relayed packet).
        """
        if self._transport is None or self.remote is None:
            return
        if not self._may_send:
            self.stats.held += 1  # the peer put itself on hold: its phone takes nothing now
            return
        if data[0] == 0x80:  # the usual packet: no CSRC, extension or padding
            payload = data[RTP_HEADER.size :]
        else:
            bounds = payload_bounds(data)
            if bounds is None:
                return
            payload = data[bounds[0] : bounds[1]]
        payload_type = second & 0x7F
        if payload_type == source.codec.payload_type:
            payload = g711.transcode(payload, source.codec, self.codec)
            payload_type = self.codec.payload_type
        elif payload_type == source.dtmf_payload_type and self.dtmf_payload_type is not None:
            payload_type = self.dtmf_payload_type
        else:
            return  # comfort noise or a codec this leg never agreed to
        rewriter = self._rewriter
        marker = second & 0x80
        if rewriter.source_ssrc != ssrc:
            # A new input stream continues where this leg's own stream left off, so the far end
            # sees one SSRC with continuous sequence numbers and timestamps.
            rewriter.source_ssrc = ssrc
            rewriter.seq_offset = (self._next_seq - seq) & 0xFFFF
            rewriter.ts_offset = (self._next_ts - ts) & 0xFFFFFFFF
            marker = 0x80
        out_seq = (seq + rewriter.seq_offset) & 0xFFFF
        out_ts = (ts + rewriter.ts_offset) & 0xFFFFFFFF
        self._next_seq = (out_seq + 1) & 0xFFFF
        self._next_ts = (out_ts + FRAME_SAMPLES) & 0xFFFFFFFF
        header = RTP_HEADER.pack(0x80, marker | payload_type, out_seq, out_ts, self.ssrc)
        self._transport.sendto(header + payload, self.remote)
        self.stats.packets_relayed += 1
        if self.call_recorder is not None and payload_type == self.codec.payload_type:
            self.call_recorder.add(
                Track.PLAYED, self.ssrc, out_ts, g711.decode(payload, self.codec)
            )

    def close(self) -> None:
        """Close the socket."""
        self.stop_playback()
        self._relay_peer = None
        if self._transport is not None:
            self._transport.close()


class RtpRelay:
    """B2BUA media bridge between two legs: each leg's packets go out of the other leg's socket.

    Each direction keeps the receiving phone's view consistent: one SSRC, continuous sequence
    numbers and timestamps across prompts and relayed audio, G.711 law converted if the legs
    negotiated different codecs, and telephone-event payload types mapped.
    """

    def __init__(self, first: RtpSession, second: RtpSession) -> None:
        self.first = first
        self.second = second

    def start(self) -> None:
        """Start relaying (any prompt playing on either leg stops)."""
        for session in (self.first, self.second):
            session.stop_playback()
            session._rewriter = _Rewriter()
        self.first._relay_peer = self.second
        self.second._relay_peer = self.first

    def stop(self) -> None:
        """Stop relaying; both sockets stay open."""
        self.first._relay_peer = None
        self.second._relay_peer = None

    @property
    def packets_relayed(self) -> int:
        """Packets relayed in both directions."""
        return self.first.stats.packets_relayed + self.second.stats.packets_relayed
