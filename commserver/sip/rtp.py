"""RTP (RFC 3550) media sessions on asyncio UDP: G.711 audio, RFC 4733 DTMF, playback, recording.

One `RtpSession` is one call leg's media socket. It latches onto the peer's real source address
(symmetric RTP, so phones behind NAT work), detects DTMF, feeds a recording, plays prompts at
20 ms pacing, and can be joined to another leg's session by `RtpRelay` (B2BUA media).

The relay is the hot path (180 calls are 18,000 packets/s): a relayed packet of the usual kind
costs one `recvfrom_into` the loop's receive buffer, one header check, one `struct` unpack
and pack in place and one `sendto`, with everything else worked out when the legs' state changes
(`RtpSession._refresh_route`). `caruso bench rtp` measures it against a plain forwarder.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import math
import secrets
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from time import monotonic as _monotonic
from typing import Any

from . import g711
from .dtmf import DtmfDetector, event_payloads
from .media import FRAME_BYTES, FRAME_SAMPLES, CallRecorder, Recording, Track
from .sdp import Codec, Direction, MediaOffer

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
RTP_VERSION = 2
FRAME_SECONDS = 0.02
_SEQ_TS_SSRC = struct.Struct("!HII")  # the fixed header after its first two bytes
_FIXED_HEADER = struct.Struct("!HHII")  # first two bytes as one word, sequence, timestamp, SSRC
_RECEIVE_BYTES = 4096  # G.711 at 120 ms per packet is under 1 KB; a datagram never needs more


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
    """Counters of one media session (a snapshot: `RtpSession.stats` makes a new one)."""

    packets_received: int = 0
    packets_sent: int = 0
    packets_relayed: int = 0
    bytes_received: int = 0
    rejected: int = 0
    held: int = 0
    """Packets not sent because the peer is on hold (its SDP says it does not receive)."""
    send_failed: int = 0
    """Packets the socket refused (send buffer full, network error): RTP is never queued."""
    jitter_ms: float = 0.0


class _Rewriter:
    """One relay direction into a leg: the input stream's mapping onto the leg's own stream.

    It maps the relayed input stream onto this leg's SSRC, sequence and timestamp space, and it
    carries what the sending leg's fast path needs (the socket's bound `sendto`, the phone's
    address, the audio payload type it may pass on unchanged), worked out once by
    `RtpSession._refresh_route` whenever the two legs' state changes, never per packet.
    """

    __slots__ = (
        "first_word",
        "out",
        "out_ssrc",
        "remote",
        "rewrite",
        "sendto",
        "seq_offset",
        "source_ssrc",
        "ts_offset",
    )

    def __init__(self, out: RtpSession) -> None:
        self.out = out
        self.source_ssrc: int | None = None
        self.seq_offset = 0
        self.ts_offset = 0
        self.out_ssrc = out.ssrc
        self.rewrite = True
        """False when the input stream is passed on as it is (offsets 0, same SSRC)."""
        self.sendto: Callable[[memoryview, tuple[str, int]], int] = _unrouted
        self.remote: tuple[str, int] = ("", 0)
        self.first_word = -1
        """First 16 header bits of an input packet the fast path takes: version 2 and nothing
        else set (no padding, extension, CSRC, marker), the source leg's audio payload type."""


_buffers = threading.local()


def _receive_buffer() -> tuple[bytearray, memoryview]:
    """The receive buffer all sessions of this thread's event loop share.

    A packet is relayed from it, or copied out of it, before the callback returns, so one
    buffer per loop is enough; it stays in the CPU cache where one per session would not.
    """
    pair: tuple[bytearray, memoryview] | None = getattr(_buffers, "pair", None)
    if pair is None:
        buffer = bytearray(_RECEIVE_BYTES)
        pair = _buffers.pair = (buffer, memoryview(buffer))
    return pair


def _unrouted(packet: memoryview, remote: tuple[str, int]) -> int:
    raise OSError(errno.EDESTADDRREQ, "relay direction not routed")


def _not_open(buffer: bytearray) -> tuple[int, Any]:
    raise OSError(errno.EBADF, "RTP session not open")


class RtpSession:
    """The media socket of one call leg (a UDP socket read on the event loop).

    The socket is read with `add_reader` and `recvfrom_into` a buffer shared by the loop's
    sessions and written with the socket's `sendto`: one system call in, one out per relayed
    packet, no per-packet transport or protocol objects. A packet of the common kind on a relayed,
    latched, unrecorded leg (audio in the codec both legs share, no marker, the expected SSRC)
    takes the fast path in `_readable`; everything else (latching, DTMF, recording,
    transcoding, a new input stream, bad or stray packets) goes through `_handle_packet`.
    """

    def __init__(self, codec: Codec = Codec.PCMU, dtmf_payload_type: int | None = 101) -> None:
        self._codec = codec
        self.dtmf_payload_type = dtmf_payload_type
        self._remote: tuple[str, int] | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self._recording: Recording | None = None
        self._call_recorder: CallRecorder | None = None
        self._may_send = True
        self._direction = Direction.SENDRECV
        self.ssrc = secrets.randbits(32)
        self._next_seq = secrets.randbits(16)
        self._next_ts = secrets.randbits(32)
        self._sent_any = False
        self._latched = False
        self._signalled: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._recvfrom_into: Callable[[bytearray], tuple[int, Any]] = _not_open
        self._local: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer, self._view = _receive_buffer()
        self._detector = DtmfDetector()
        self._relay_peer: RtpSession | None = None
        self._rewriter = _Rewriter(self)
        self._route: _Rewriter | None = None
        """The peer's rewriter when this leg's packets may take the fast path, else None."""
        self._playback_generation = 0
        # Counters are plain ints on the session (`stats` snapshots them).
        self._received = 0
        self._bytes_received = 0
        self._sent = 0
        self._relayed = 0
        self._rejected = 0
        self._held = 0
        self._send_failed = 0
        # RFC 3550 §6.4.1 interarrival jitter, in timestamp units (8 kHz).
        self._jitter = 0.0
        self._transit = math.inf
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
        family, address = await _bind_address(loop, host)
        candidates: Iterable[int] = (0,) if ports is None else ports.candidates()
        for port in candidates:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if port == 0 or exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                continue  # taken by another call or another program: try the next one
            session = cls(codec, dtmf_payload_type)
            session._attach(loop, sock)
            return session
        raise OSError(errno.EADDRINUSE, f"no free RTP port in {ports}")

    def _attach(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._loop = loop
        self._sock = sock
        self._recvfrom_into = sock.recvfrom_into
        self._buffer, self._view = _receive_buffer()  # this loop's thread's
        sockname = sock.getsockname()
        self._local = (str(sockname[0]), int(sockname[1]))
        loop.add_reader(sock.fileno(), self._readable)

    # -- receiving ----------------------------------------------------------------------------

    def _readable(self) -> None:
        """One datagram is waiting: relay it on the fast path, or hand it to `_handle_packet`."""
        buffer = self._buffer
        try:
            size, addr = self._recvfrom_into(buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # an ICMP error, or the socket closed under us
            self._socket_error(exc)
            return
        route = self._route
        if route is not None and size >= 12 and addr == self._remote:
            first, seq, ts, ssrc = _FIXED_HEADER.unpack_from(buffer)
            if first == route.first_word and ssrc == route.source_ssrc:
                self._received += 1
                self._bytes_received += size
                transit = _monotonic() * 8000.0 - ts  # as in _update_jitter
                delta = abs(transit - self._transit)
                self._transit = transit
                if delta < 80000.0:
                    self._jitter += (delta - self._jitter) * 0.0625
                out = route.out
                if route.rewrite:
                    seq = (seq + route.seq_offset) & 0xFFFF
                    ts = (ts + route.ts_offset) & 0xFFFFFFFF
                    _SEQ_TS_SSRC.pack_into(buffer, 2, seq, ts, route.out_ssrc)
                out._next_seq = (seq + 1) & 0xFFFF
                out._next_ts = (ts + FRAME_SAMPLES) & 0xFFFFFFFF
                try:
                    route.sendto(self._view[:size], route.remote)
                except OSError as exc:
                    out._send_error(exc)
                    return
                out._relayed += 1
                return
        self._handle_packet(self._view[:size].tobytes(), addr)

    def _handle_packet(self, data: bytes, addr: tuple[str, int]) -> None:
        """Any packet: latch, count, relay (general path), detect DTMF, record audio."""
        if len(data) < RTP_HEADER.size or data[0] >> 6 != RTP_VERSION:
            self._rejected += 1
            return
        if addr != self._remote:
            if addr == self._signalled:
                # The address the peer gave in its SDP always wins: whatever latched first from
                # another port of that host (a NAT mapping, or a stranger's race) gives way.
                self._remote = addr
            elif self._latched or (self._remote is not None and addr[0] != self._remote[0]):
                # Only the peer's own host may move its port once (NAT); nobody else injects.
                self._rejected += 1
                return
            else:
                self._remote = addr
            self._latched = True
            self._media_changed()
        elif not self._latched:
            self._latched = True
            self._media_changed()
        self._received += 1
        self._bytes_received += len(data)
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
        elif payload_type == self._codec.value and (
            self._recording is not None or self._call_recorder is not None
        ):
            bounds = payload_bounds(data)
            if bounds is not None:
                pcm = g711.decode(data[bounds[0] : bounds[1]], self._codec)
                if self._recording is not None:
                    self._recording.add(timestamp, pcm)
                if self._call_recorder is not None:
                    self._call_recorder.add(Track.HEARD, ssrc, timestamp, pcm)

    def _update_jitter(self, timestamp: int) -> None:
        # RFC 3550 §6.4.1: D is the change in relative transit time (arrival minus RTP timestamp,
        # both in 8 kHz units). Beyond 10 s it is a new stream, a wrap or a long gap: skipped.
        transit = _monotonic() * 8000.0 - timestamp
        delta = abs(transit - self._transit)
        self._transit = transit
        if delta < 80000.0:
            self._jitter += (delta - self._jitter) * 0.0625

    def _socket_error(self, exc: OSError) -> None:
        """ICMP errors (peer gone) are normal on UDP; log quietly."""
        log.debug("rtp socket error: %s", exc)

    def _send_error(self, exc: OSError) -> None:
        self._send_failed += 1
        if not isinstance(exc, BlockingIOError | InterruptedError):
            self._socket_error(exc)

    # -- state the fast path depends on -----------------------------------------------------

    def _media_changed(self) -> None:
        """Work out again which of the two relay directions may take the fast path."""
        self._refresh_route()
        peer = self._relay_peer
        if peer is not None:
            peer._refresh_route()

    def _refresh_route(self) -> None:
        """Packets from our phone take the fast path only when nothing but relaying is asked."""
        peer = self._relay_peer
        if (
            peer is None
            or self._sock is None
            or not self._latched
            or self._remote is None
            or self._recording is not None
            or self._call_recorder is not None
            or peer._sock is None
            or peer._remote is None
            or not peer._may_send
            or peer._call_recorder is not None
            or peer._codec is not self._codec
        ):
            self._route = None
            return
        rewriter = peer._rewriter
        rewriter.sendto = peer._sock.sendto
        rewriter.remote = peer._remote
        rewriter.first_word = 0x8000 | self._codec.value
        self._route = rewriter

    @property
    def stats(self) -> RtpStats:
        """This session's counters, now."""
        return RtpStats(
            packets_received=self._received,
            packets_sent=self._sent,
            packets_relayed=self._relayed,
            bytes_received=self._bytes_received,
            rejected=self._rejected,
            held=self._held,
            send_failed=self._send_failed,
            jitter_ms=self._jitter / 8,
        )

    @property
    def remote(self) -> tuple[str, int] | None:
        """Where our phone's media goes: its SDP address, or the address it latched from."""
        return self._remote

    @property
    def codec(self) -> Codec:
        """The negotiated audio codec."""
        return self._codec

    @property
    def recording(self) -> Recording | None:
        """Where the caller's audio is being recorded (voicemail), if anywhere."""
        return self._recording

    @recording.setter
    def recording(self, recording: Recording | None) -> None:
        self._recording = recording
        self._media_changed()

    @property
    def call_recorder(self) -> CallRecorder | None:
        """The whole-call recording this leg feeds (both directions), if any."""
        return self._call_recorder

    @call_recorder.setter
    def call_recorder(self, recorder: CallRecorder | None) -> None:
        self._call_recorder = recorder
        self._media_changed()

    # -- configuration ----------------------------------------------------------------------

    @property
    def local_address(self) -> tuple[str, int]:
        """Our bound host and port."""
        assert self._local is not None, "session not open"
        return self._local

    def configure(self, offer: MediaOffer) -> None:
        """Apply the negotiated codec, DTMF payload type and peer address."""
        self._codec = offer.codec
        self.dtmf_payload_type = offer.dtmf_payload_type
        remote = (offer.address, offer.port)
        if not offer.is_hold:
            self._signalled = remote
        if not self._latched or self._remote is None or self._remote[0] != offer.address:
            # A re-INVITE to a new address moves the stream; latching starts over.
            self._remote = remote if not offer.is_hold else self._remote
            self._latched = False
        self._media_changed()

    @property
    def direction(self) -> Direction:
        """What flows on this leg from our side (negotiated by SDP): we send only if it sends."""
        return self._direction

    @direction.setter
    def direction(self, direction: Direction) -> None:
        self._direction = direction
        self._may_send = direction.sends
        self._media_changed()

    @property
    def digits_detected(self) -> int:
        """How many DTMF key presses were detected."""
        return self._detector.digits_detected

    # -- sending ------------------------------------------------------------------------------

    def _send(self, packet: bytes, remote: tuple[str, int]) -> bool:
        """Send now or never: a real-time packet that cannot leave at once is dropped."""
        assert self._sock is not None
        try:
            self._sock.sendto(packet, remote)
        except OSError as exc:
            self._send_error(exc)
            return False
        self._sent_any = True
        return True

    def send_payload(
        self, payload: bytes, *, payload_type: int, marker: bool = False, advance: int = 0
    ) -> None:
        """Send one packet with our SSRC/sequence; the timestamp then advances by `advance`."""
        if self._sock is None or self._remote is None:
            return
        if not self._may_send:
            self._held += 1
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
        if self._send(header + payload, self._remote):
            self._sent += 1

    def send_audio_frame(self, pcm: bytes, *, marker: bool = False) -> None:
        """Encode and send one frame of 16-bit PCM."""
        if self._call_recorder is not None and self._may_send:
            self._call_recorder.add(Track.PLAYED, self.ssrc, self._next_ts, pcm)
        self.send_payload(
            g711.encode(pcm, self._codec),
            payload_type=self._codec.payload_type,
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
            if generation != self._playback_generation or self._sock is None:
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

        The general path: transcoding, DTMF payload types, a new input stream, recording. The
        caller already unpacked the fixed header.
        """
        if self._sock is None or self._remote is None:
            return
        if not self._may_send:
            self._held += 1  # the peer put itself on hold: its phone takes nothing now
            return
        if data[0] == 0x80:  # the usual packet: no CSRC, extension or padding
            payload = data[RTP_HEADER.size :]
        else:
            bounds = payload_bounds(data)
            if bounds is None:
                return
            payload = data[bounds[0] : bounds[1]]
        payload_type = second & 0x7F
        if payload_type == source._codec.value:
            payload = g711.transcode(payload, source._codec, self._codec)
            payload_type = self._codec.value
        elif payload_type == source.dtmf_payload_type and self.dtmf_payload_type is not None:
            payload_type = self.dtmf_payload_type
        else:
            return  # comfort noise or a codec this leg never agreed to
        rewriter = self._rewriter
        marker = second & 0x80
        if rewriter.source_ssrc != ssrc:
            if not self._sent_any:
                # Nothing ever left this leg: its stream simply becomes the input stream, which
                # then passes on unchanged (no header rewriting on the fast path).
                self.ssrc = ssrc
                self._next_seq = seq
                self._next_ts = ts
            # A new input stream continues where this leg's own stream left off, so the far end
            # sees one SSRC with continuous sequence numbers and timestamps.
            rewriter.source_ssrc = ssrc
            rewriter.seq_offset = (self._next_seq - seq) & 0xFFFF
            rewriter.ts_offset = (self._next_ts - ts) & 0xFFFFFFFF
            rewriter.out_ssrc = self.ssrc
            rewriter.rewrite = bool(rewriter.seq_offset or rewriter.ts_offset or self.ssrc != ssrc)
            marker = 0x80
        out_seq = (seq + rewriter.seq_offset) & 0xFFFF
        out_ts = (ts + rewriter.ts_offset) & 0xFFFFFFFF
        self._next_seq = (out_seq + 1) & 0xFFFF
        self._next_ts = (out_ts + FRAME_SAMPLES) & 0xFFFFFFFF
        header = RTP_HEADER.pack(0x80, marker | payload_type, out_seq, out_ts, self.ssrc)
        if not self._send(header + payload, self._remote):
            return
        self._relayed += 1
        if self._call_recorder is not None and payload_type == self._codec.value:
            self._call_recorder.add(
                Track.PLAYED, self.ssrc, out_ts, g711.decode(payload, self._codec)
            )

    def close(self) -> None:
        """Close the socket (at once: no packet is queued to be sent later)."""
        self.stop_playback()
        peer = self._relay_peer
        self._relay_peer = None
        self._route = None
        sock, self._sock = self._sock, None
        self._recvfrom_into = _not_open
        if peer is not None:
            peer._refresh_route()
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self.closed.set()


async def _bind_address(loop: asyncio.AbstractEventLoop, host: str) -> tuple[int, str]:
    """The address family and numeric address to bind `host` on (resolved only if a name)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host}") from None
        family, _, _, _, sockaddr = infos[0]
        return family, str(sockaddr[0])
    return (socket.AF_INET6 if address.version == 6 else socket.AF_INET), host


class RtpRelay:
    """B2BUA media bridge between two legs: each leg's packets go out of the other leg's socket.

    Each direction keeps the receiving phone's view consistent: one SSRC, continuous sequence
    numbers and timestamps across prompts and relayed audio, G.711 law converted if the legs
    negotiated different codecs, and telephone-event payload types mapped. A leg that never sent
    anything takes the input stream's numbering as its own, so that direction passes packets on
    without rewriting them.
    """

    def __init__(self, first: RtpSession, second: RtpSession) -> None:
        self.first = first
        self.second = second

    def start(self) -> None:
        """Start relaying (any prompt playing on either leg stops)."""
        for session in (self.first, self.second):
            session.stop_playback()
            session._rewriter = _Rewriter(session)
        self.first._relay_peer = self.second
        self.second._relay_peer = self.first
        self.first._media_changed()

    def stop(self) -> None:
        """Stop relaying; both sockets stay open."""
        for session in (self.first, self.second):
            session._relay_peer = None
            session._route = None

    @property
    def packets_relayed(self) -> int:
        """Packets relayed in both directions."""
        return self.first._relayed + self.second._relayed
