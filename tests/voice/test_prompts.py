"""Text-to-speech prompts through espeak-ng, the cache, the tone fallback and the resampler."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import shutil
import struct
import wave
from pathlib import Path

import pytest

from commserver.config import MenuSettings
from ivr import Menu
from ivr.prompts import (
    DEFAULT_PROMPTS,
    SOUNDS,
    PromptCache,
    music_on_hold,
    resample,
    tone,
    write_wav,
)

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)


def samples(pcm: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(pcm) // 2}h", pcm)


def frequency_of(pcm: bytes, rate: int = 8000) -> float:
    values = samples(pcm)
    crossings = sum(1 for a, b in itertools.pairwise(values) if (a < 0) != (b < 0))
    return crossings / 2 / (len(values) / rate)


def rms(pcm: bytes) -> float:
    values = samples(pcm)
    return math.sqrt(sum(v * v for v in values) / len(values))


def sine(frequency: float, rate: int, seconds: float, amplitude: int = 10000) -> bytes:
    count = int(rate * seconds)
    return struct.pack(
        f"<{count}h",
        *(int(amplitude * math.sin(2 * math.pi * frequency * n / rate)) for n in range(count)),
    )


@needs_espeak
async def test_text_is_rendered_once_to_an_8khz_mono_wav_and_then_served_from_the_cache(
    tmp_path: Path,
) -> None:
    cache = PromptCache(tmp_path, shipped=None)
    first = await cache.render("For billing, press two.")
    second = await cache.render("  For billing,   press two. ")  # same words, same prompt
    with wave.open(str(first)) as wav:
        shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        seconds = wav.getnframes() / wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    assert first == second == tmp_path / f"{cache.key('For billing, press two.')}.wav"
    assert cache.rendered == 1
    assert shape == (8000, 1, 2)
    assert 0.8 < seconds < 4.0
    assert rms(pcm) > 500  # speech, not silence
    # No temporary espeak-ng output is left behind: the cache holds the one prompt.
    assert os.listdir(tmp_path) == [first.name]


@needs_espeak
async def test_concurrent_requests_for_one_text_render_it_once(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, shipped=None)
    paths = await asyncio.gather(*(cache.render("Please hold.") for _ in range(5)))
    assert len(set(paths)) == 1
    assert cache.rendered == 1


@needs_espeak
async def test_a_prompt_that_looks_like_an_option_is_still_spoken(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, shipped=None)
    path = await cache.render("--help me")
    with wave.open(str(path)) as wav:
        assert wav.getnframes() > 2000


def test_the_key_depends_on_voice_and_speed(tmp_path: Path) -> None:
    keys = {
        PromptCache(tmp_path, voice="en-us").key("Hello"),
        PromptCache(tmp_path, voice="de").key("Hello"),
        PromptCache(tmp_path, words_per_minute=120).key("Hello"),
    }
    assert len(keys) == 3


async def test_without_espeak_a_tone_plays_and_the_problem_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = PromptCache(tmp_path, espeak="no-such-espeak-binary", shipped=None)
    with caplog.at_level(logging.WARNING, logger="ivr.prompts"):
        first = await cache.render("Welcome.")
        second = await cache.render("Goodbye.")
    warnings = [r for r in caplog.records if "espeak-ng is not installed" in r.getMessage()]
    assert len(warnings) == 1
    assert first == second
    with wave.open(str(first)) as wav:
        pcm = wav.readframes(wav.getnframes())
        assert wav.getframerate() == 8000
    assert 380 < frequency_of(pcm) < 470


async def test_a_shipped_prompt_wins_over_rendering(tmp_path: Path) -> None:
    shipped = tmp_path / "sounds"
    cache = PromptCache(tmp_path / "cache", espeak=None, shipped=shipped)
    write_wav(shipped / f"{cache.key('Welcome.')}.wav", tone(600.0, 0.2))
    assert await cache.render("Welcome.") == shipped / f"{cache.key('Welcome.')}.wav"


def test_every_default_prompt_is_shipped_as_an_8khz_mono_wav_under_its_key(
    tmp_path: Path,
) -> None:
    cache = PromptCache(tmp_path)
    for text in DEFAULT_PROMPTS:
        path = SOUNDS / f"{cache.key(text)}.wav"
        assert path.is_file(), f"{text!r} is not shipped: run python -m ivr.prompts"
        with wave.open(str(path)) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
    assert len(list(SOUNDS.glob("*.wav"))) == len(DEFAULT_PROMPTS)  # nothing stale


def test_the_default_menu_speaks_from_the_shipped_set() -> None:
    menu = Menu(prompt=MenuSettings().prompt, choices={})
    for text in (menu.prompt, menu.invalid_prompt, menu.no_input_prompt):
        assert text in DEFAULT_PROMPTS


async def test_the_default_menu_needs_no_espeak(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, espeak=None)
    path = await cache.render(MenuSettings().prompt)
    assert path.parent == SOUNDS


def test_resampling_keeps_speech_band_tones_and_removes_what_8khz_cannot_carry() -> None:
    kept = resample(sine(1000, 22050, 0.5), 22050, 8000)
    folded = resample(sine(5500, 22050, 0.5), 22050, 8000)  # would alias to 2500 Hz
    assert len(samples(kept)) == 4000
    assert 980 < frequency_of(kept) < 1020
    assert rms(kept) > 0.6 * 10000 / math.sqrt(2)
    assert rms(folded) < 0.02 * 10000


def test_resampling_the_same_rate_is_identity() -> None:
    pcm = sine(440, 8000, 0.1)
    assert resample(pcm, 8000, 8000) == pcm


def test_music_on_hold_loops_without_a_click() -> None:
    pcm = music_on_hold()
    values = samples(pcm)
    assert len(values) == pytest.approx(8 * 8000, rel=0.01)
    assert abs(values[0]) < 200  # starts from silence...
    assert abs(values[-1]) < 2000  # ...and ends decayed, so the loop has no seam
    assert 1000 < rms(pcm) < 12000
