"""Prompts as telephone audio: text-to-speech through espeak-ng, rendered once and cached.

Every prompt a telephony backend plays is an 8 kHz, 16-bit, mono WAV (what G.711 carries).
`PromptCache.render(text)` returns such a file: one shipped with Caruso (`ivr/sounds/`), one
rendered earlier (`<data_dir>/prompts/<key>.wav`, the key a hash of voice, speed and text), or
one espeak-ng renders now in a subprocess, off the event loop, resampled from its 22.05 kHz.
Without espeak-ng the cache logs that once and answers with a short tone, so calls still work.

Music on hold is synthesized here too (`music_on_hold`): a soft arpeggio that loops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import logging
import math
import os
import shutil
import wave
from array import array
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SOUNDS = Path(__file__).with_name("sounds")
"""Prompts shipped with Caruso, named by the same key as the cache (the default menu set)."""

DEFAULT_PROMPTS = (
    "Welcome. For support press 1, for billing press 2.",
    "Sorry, that is not a valid choice.",
    "Sorry, I did not hear a choice.",
    "Please hold. The next available agent will take your call.",
    "Thank you for calling. Goodbye.",
)
"""Texts shipped pre-rendered in `SOUNDS` (the default menu), so a site speaks without espeak-ng.
Regenerate with `python -m ivr.prompts` after changing them or the default voice."""

DEFAULT_VOICE = "en-us"
DEFAULT_WORDS_PER_MINUTE = 160
_RENDER_TIMEOUT = 30.0


class PromptCache:
    """Text to cached 8 kHz WAV files; concurrent requests for one text render it once."""

    def __init__(
        self,
        directory: Path,
        *,
        voice: str = DEFAULT_VOICE,
        words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
        espeak: str | None = "espeak-ng",
        shipped: Path | None = SOUNDS,
    ) -> None:
        self.directory = directory
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.espeak = shutil.which(espeak) if espeak else None
        self.shipped = shipped
        self.rendered = 0
        """How many prompts this cache rendered with espeak-ng (for tests and the log)."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._warned = False

    def key(self, text: str) -> str:
        """The cache key of a text in this voice: stable across runs and machines."""
        material = f"espeak-ng\0{self.voice}\0{self.words_per_minute}\0{text}"
        return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]

    def path_for(self, text: str) -> Path:
        """Where the rendering of `text` is (or will be) cached."""
        return self.directory / f"{self.key(text)}.wav"

    async def render(self, text: str) -> Path:
        """An 8 kHz mono 16-bit WAV of `text` (shipped, cached, rendered now, or a tone)."""
        text = " ".join(text.split())
        if not text:
            return await self._generated("silence", bytes(SAMPLE_RATE // 5 * 2))
        key = self.key(text)
        if self.shipped is not None and (shipped := self.shipped / f"{key}.wav").is_file():
            return shipped
        cached = self.directory / f"{key}.wav"
        if cached.is_file():
            return cached
        if self.espeak is None:
            if not self._warned:
                self._warned = True
                log.warning(
                    "espeak-ng is not installed: text prompts play as a short tone "
                    "(apt-get install espeak-ng)"
                )
            return await self._generated("fallback-tone", tone(425.0, 0.4))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if cached.is_file():  # rendered by whoever held the lock before us
                return cached
            try:
                await self._synthesize(text, cached)
            except PromptRenderError as exc:
                log.error("cannot render prompt %r: %s; playing a tone instead", text[:60], exc)
                return await self._generated("fallback-tone", tone(425.0, 0.4))
            finally:
                self._locks.pop(key, None)
        return cached

    async def _synthesize(self, text: str, target: Path) -> None:
        assert self.espeak is not None
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        raw = target.with_name(f"{target.stem}.{os.getpid()}.espeak.wav")
        # Text goes in on stdin, never as an argument, so a prompt starting with '-' is text.
        process = await asyncio.create_subprocess_exec(
            self.espeak,
            "-v",
            self.voice,
            "-s",
            str(self.words_per_minute),
            "-w",
            str(raw),
            "--stdin",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(_RENDER_TIMEOUT):
                _, err = await process.communicate(text.encode("utf-8"))
        except BaseException:
            # Cancelled or too slow: end our own child (by its handle) before leaving.
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            with contextlib.suppress(OSError):
                raw.unlink()
            raise
        try:
            if process.returncode != 0:
                message = err.decode("utf-8", "replace").strip()[:200]
                raise PromptRenderError(f"espeak-ng exited {process.returncode}: {message}")
            await asyncio.to_thread(_convert_file, raw, target)
        finally:
            with contextlib.suppress(OSError):
                raw.unlink()
        self.rendered += 1
        log.info("rendered prompt %r to %s", text[:60], target.name)

    async def _generated(self, name: str, pcm: bytes) -> Path:
        path = self.directory / f"{name}.wav"
        if not path.is_file():
            await asyncio.to_thread(write_wav, path, pcm)
        return path


class PromptRenderError(Exception):
    """espeak-ng failed or produced audio we cannot use."""

    code = "prompt-render-failed"


def _convert_file(source: Path, target: Path) -> None:
    try:
        pcm, rate = read_wav_any(source.read_bytes())
    except (OSError, wave.Error, EOFError, ValueError) as exc:
        raise PromptRenderError(f"unreadable espeak-ng output: {exc}") from exc
    write_wav(target, resample(pcm, rate, SAMPLE_RATE))


def read_wav_any(data: bytes) -> tuple[bytes, int]:
    """16-bit mono PCM and its rate from a 16-bit WAV (stereo is mixed down)."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"expected 16-bit samples, got {8 * width}-bit")
    if channels == 1:
        return frames, rate
    samples = array("h")
    samples.frombytes(frames)
    mono = array(
        "h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels))
    )
    return mono.tobytes(), rate


def write_wav(path: Path, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit mono PCM as a WAV, atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    with wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    tmp.replace(path)


# -- resampling -------------------------------------------------------------------------------

_HALF_WIDTH = 8  # filter half-width in output samples: enough for telephone audio


@functools.lru_cache(maxsize=8)
def _polyphase(up: int, down: int) -> tuple[int, tuple[tuple[float, ...], ...]]:
    """Windowed-sinc low-pass filters, one per output phase, for a rate change of up/down."""
    # Cut at 45 % of the lower rate: below its Nyquist frequency with room for the slope.
    cutoff = 0.45 * min(1.0, up / down)  # as a fraction of the input rate
    half = max(2, math.ceil(_HALF_WIDTH * down / up))  # in input samples
    phases = []
    for phase in range(up):
        frac = phase / up
        taps = []
        for m in range(-half + 1, half + 1):
            t = frac - m
            x = 2 * cutoff * t
            sinc = 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)
            u = t / half
            window = 0.42 + 0.5 * math.cos(math.pi * u) + 0.08 * math.cos(2 * math.pi * u)
            taps.append(2 * cutoff * sinc * (window if abs(u) < 1 else 0.0))
        phases.append(tuple(reversed(taps)))
    return half, tuple(phases)


def resample(pcm: bytes, rate_in: int, rate_out: int = SAMPLE_RATE) -> bytes:
    """Change the sample rate of 16-bit mono PCM with a band-limited (windowed-sinc) filter."""
    if rate_in == rate_out:
        return pcm
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    half, phases = _polyphase(up, down)
    source = array("h")
    source.frombytes(pcm[: len(pcm) // 2 * 2])
    padded: Sequence[float] = [0.0] * half + list(source) + [0.0] * half
    count = len(source) * up // down
    out = array("h", bytes(2 * count))
    for n in range(count):
        position = n * down
        i, phase = divmod(position, up)
        taps = phases[phase]
        # Taps are stored reversed so the window of input is read forwards.
        window = padded[i + 1 : i + 1 + 2 * half]
        value = sum(map(float.__mul__, taps, window))
        out[n] = -32768 if value < -32768 else 32767 if value > 32767 else int(value)
    return out.tobytes()


# -- generated sounds -------------------------------------------------------------------------


def tone(frequency: float, seconds: float, level: float = 0.25) -> bytes:
    """A sine tone with 10 ms fades (no clicks), as 8 kHz 16-bit PCM."""
    count = int(seconds * SAMPLE_RATE)
    fade = min(80, count // 2)
    samples = array("h", bytes(2 * count))
    for n in range(count):
        envelope = min(1.0, n / fade if fade else 1.0, (count - n) / fade if fade else 1.0)
        value = level * envelope * math.sin(2 * math.pi * frequency * n / SAMPLE_RATE)
        samples[n] = int(32767 * value)
    return samples.tobytes()


@functools.cache
def music_on_hold(seconds: float = 8.0) -> bytes:
    """A gentle arpeggio (C major, F major, G major, C major) that loops without a seam."""
    chords = ((261.63, 329.63, 392.0), (349.23, 440.0, 523.25), (392.0, 493.88, 587.33))
    sequence = [*chords, chords[0]]
    note_seconds = seconds / (len(sequence) * 4)
    note_samples = int(note_seconds * SAMPLE_RATE)
    out = array("h")
    for chord in sequence:
        for index in range(4):
            frequency = (chord[0], chord[1], chord[2], chord[1])[index]
            for n in range(note_samples):
                # A soft attack and exponential decay per note; a quiet octave adds warmth.
                envelope = min(1.0, n / 160) * math.exp(-3.0 * n / note_samples)
                phase = 2 * math.pi * frequency * n / SAMPLE_RATE
                value = 0.18 * envelope * (math.sin(phase) + 0.3 * math.sin(2 * phase))
                out.append(int(32767 * value))
    return out.tobytes()


async def _ship_defaults() -> None:
    """Render `DEFAULT_PROMPTS` into the shipped folder (run by maintainers, not at run time)."""
    cache = PromptCache(SOUNDS, shipped=None)
    if cache.espeak is None:
        raise SystemExit("espeak-ng is needed to render the shipped prompts")
    for text in DEFAULT_PROMPTS:
        print(await cache.render(text), text)


if __name__ == "__main__":
    asyncio.run(_ship_defaults())
