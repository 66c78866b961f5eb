"""Audio at rest: WAV prompts in, recordings out (8 kHz, 16-bit, mono PCM)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import io
import os
import wave
from array import array
from collections import deque
from collections.abc import Callable
from pathlib import Path

from . import g711
from .errors import MediaError

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2


def read_wav(data: bytes) -> bytes:
    """16-bit mono 8 kHz PCM from a WAV file's bytes; raises `MediaError` for other formats."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise MediaError(f"not a readable WAV file: {exc}") from exc
    if (channels, width, rate) != (1, 2, SAMPLE_RATE):
        # Resampling belongs to the prompt cache (rendered once), not to the media path.
        raise MediaError(
            "prompts must be 8 kHz 16-bit mono WAV",
            channels=channels,
            sample_width=width,
            rate=rate,
        )
    return frames


async def load_wav(path: Path) -> bytes:
    """Read a prompt off the event loop and return its PCM."""
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise MediaError(f"cannot read prompt: {exc}", path=str(path)) from exc
    return read_wav(data)


def wav_bytes(pcm: bytes) -> bytes:
    """A WAV file holding 16-bit mono 8 kHz PCM."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return buffer.getvalue()


async def save_wav(path: Path, pcm: bytes) -> None:
    """Write a recording durably (written to a temporary name, fsynced, renamed) off the loop."""

    def write() -> None:
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as handle:
            handle.write(wav_bytes(pcm))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)

    try:
        await asyncio.to_thread(write)
    except OSError as exc:
        raise MediaError(f"cannot write recording: {exc}", path=str(path)) from exc


def mean_level(pcm: bytes) -> float:
    """Mean absolute sample value of a frame (0..32768): cheap energy for silence detection."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if not samples:
        return 0.0
    return sum(abs(s) for s in samples) / len(samples)


class Recording:
    """Incoming audio of one call collected as PCM, placed by RTP timestamp.

    Gaps (loss, silence suppression) become silence so the duration is true; the length is
    capped so a stuck stream cannot grow memory without bound.
    """

    def __init__(self, max_seconds: float, silence_level: float = 200.0) -> None:
        self.max_bytes = int(max_seconds * SAMPLE_RATE) * 2
        self.silence_level = silence_level
        self.pcm = bytearray()
        self.trailing_silence_samples = 0
        self.full = asyncio.Event()
        self.updated = asyncio.Event()
        self._next_timestamp: int | None = None

    @property
    def seconds(self) -> float:
        """Recorded length."""
        return len(self.pcm) / 2 / SAMPLE_RATE

    @property
    def trailing_silence(self) -> float:
        """Seconds of silence at the end so far."""
        return self.trailing_silence_samples / SAMPLE_RATE

    def add(self, timestamp: int, pcm: bytes) -> None:
        """Append one decoded frame received with this RTP timestamp."""
        if self.full.is_set():
            return
        if self._next_timestamp is not None:
            gap = (timestamp - self._next_timestamp) & 0xFFFFFFFF
            # A forward gap under 2 s is loss or suppressed silence; anything else is a jump
            # (new source, reordering) and is not padded.
            if 0 < gap < 2 * SAMPLE_RATE:
                self._append(bytes(gap * 2), silent=True)
        self._next_timestamp = (timestamp + len(pcm) // 2) & 0xFFFFFFFF
        self._append(pcm, silent=mean_level(pcm) < self.silence_level)
        self.updated.set()

    def _append(self, pcm: bytes, *, silent: bool) -> None:
        room = self.max_bytes - len(self.pcm)
        self.pcm += pcm[: max(room, 0)]
        if silent:
            self.trailing_silence_samples += len(pcm) // 2
        else:
            self.trailing_silence_samples = 0
        if len(self.pcm) >= self.max_bytes:
            self.full.set()


class Track(enum.IntEnum):
    """The two sides of one leg's conversation, as a call recording keeps them."""

    HEARD = 0  # what the leg's phone sent us: the caller's own voice
    PLAYED = 1  # what we sent the leg's phone: the agent (relayed), prompts, music


# A track more than 200 ms behind the wall clock (our own silence between prompts, a pause in
# the peer's stream) jumps forward to it; one more than 2 s ahead (a new timestamp base) too.
_LAG_SAMPLES = SAMPLE_RATE // 5
_LEAD_SAMPLES = 2 * SAMPLE_RATE
_SPILL_BYTES = 160_000  # 10 s of a track in memory before it goes to disk


class _TrackBuffer:
    """One direction of a recorded call: PCM placed by RTP timestamp, anchored on arrival time."""

    __slots__ = ("anchor_position", "anchor_timestamp", "buffer", "end", "ssrc")

    def __init__(self) -> None:
        self.ssrc: int | None = None
        self.anchor_timestamp = 0
        self.anchor_position = 0
        self.end = 0  # samples placed so far (on disk and in `buffer`)
        self.buffer = bytearray()

    def place(self, ssrc: int, timestamp: int, now: int, pcm: bytes, limit: int) -> None:
        count = len(pcm) // 2
        position = -1
        if ssrc == self.ssrc:
            delta = (timestamp - self.anchor_timestamp) & 0xFFFFFFFF
            if delta < 0x80000000:
                position = self.anchor_position + delta
            elif 0x100000000 - delta <= _LEAD_SAMPLES:
                return  # a little older than where the stream started: a late packet
        if position >= 0 and position + count <= self.end:
            return  # already placed: a duplicate or a packet that came too late
        if position < 0 or now - position > _LAG_SAMPLES or position - now > _LEAD_SAMPLES:
            # A new stream, a jump or a stream out of step with the clock: start from now.
            self.ssrc, self.anchor_timestamp, self.anchor_position = ssrc, timestamp, now
            position = now
        if position < self.end:
            # Overlap (reordering, a re-anchor backwards): the track is append-only.
            skip = self.end - position
            if skip >= count:
                return
            pcm, position, count = pcm[skip * 2 :], self.end, count - skip
        room = limit - self.end
        if room <= 0:
            return
        gap = min(position - self.end, room)
        if gap > 0:
            self.buffer += bytes(gap * 2)
            self.end += gap
            room -= gap
        take = min(count, room)
        self.buffer += pcm[: take * 2]
        self.end += take


class CallRecorder:
    """A whole conversation (both directions of one leg) recorded to a mono WAV.

    `add` is called from the media socket's callbacks for every audio packet; each direction
    is placed by its RTP timestamps, anchored to the arrival time so the two line up. Ten
    seconds at a time go to temporary files off the loop, so memory stays small on long calls;
    `run` mixes both tracks into the WAV (fsynced, renamed) once `stop` is called.
    """

    def __init__(self, path: Path, *, max_seconds: float, clock: Callable[[], float]) -> None:
        self.path = path
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self._clock = clock
        self._started = clock()
        self._tracks = (_TrackBuffer(), _TrackBuffer())
        self._spilled: deque[tuple[Track, bytes]] = deque()
        self._wake = asyncio.Event()
        self.stopping = False

    def add(self, track: Track, ssrc: int, timestamp: int, pcm: bytes) -> None:
        """Place one decoded frame of one direction (synchronous, cheap)."""
        if self.stopping:
            return
        now = int((self._clock() - self._started) * SAMPLE_RATE)
        buffer = self._tracks[track]
        buffer.place(ssrc, timestamp, now, pcm, self.max_samples)
        if len(buffer.buffer) >= _SPILL_BYTES:
            self._spilled.append((track, bytes(buffer.buffer)))
            buffer.buffer.clear()
            self._wake.set()

    def stop(self) -> None:
        """End the recording; `run` then writes the WAV and returns."""
        self.stopping = True
        self._wake.set()

    def _raw_paths(self) -> tuple[Path, Path]:
        return (
            self.path.with_name(f"{self.path.name}.heard.raw"),
            self.path.with_name(f"{self.path.name}.played.raw"),
        )

    async def run(self) -> float:
        """Spill audio to disk until stopped, then mix the WAV; returns its length in seconds."""
        raw = self._raw_paths()
        try:
            await asyncio.to_thread(_start_tracks, raw)
            while True:
                await self._wake.wait()
                self._wake.clear()
                chunks = list(self._spilled)
                self._spilled.clear()
                if chunks:
                    await asyncio.to_thread(_append_chunks, raw, chunks)
                if self.stopping:
                    break
            last = [(track, bytes(self._tracks[track].buffer)) for track in Track]
            await asyncio.to_thread(_append_chunks, raw, last)
            return await asyncio.to_thread(_mix_to_wav, raw, self.path)
        except OSError as exc:
            raise MediaError(f"cannot write call recording: {exc}", path=str(self.path)) from exc
        finally:
            for path in raw:
                with contextlib.suppress(OSError):
                    path.unlink()


def _start_tracks(raw: tuple[Path, Path]) -> None:
    for path in raw:
        path.write_bytes(b"")


def _append_chunks(raw: tuple[Path, Path], chunks: list[tuple[Track, bytes]]) -> None:
    for track, data in chunks:
        if data:
            with open(raw[track], "ab") as handle:
                handle.write(data)


def _mix_to_wav(raw: tuple[Path, Path], path: Path) -> float:
    """Mix the two raw tracks chunk by chunk into `path` durably; returns the seconds."""
    total = max(p.stat().st_size for p in raw)
    tmp = path.with_name(path.name + ".part")
    with open(raw[0], "rb") as heard, open(raw[1], "rb") as played, open(tmp, "wb") as handle:
        with wave.open(handle, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            remaining = total
            while remaining > 0:
                size = min(remaining, 65536)
                first = heard.read(size).ljust(size, b"\0")
                second = played.read(size).ljust(size, b"\0")
                wav.writeframes(g711.mix(first, second))
                remaining -= size
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return total / 2 / SAMPLE_RATE
