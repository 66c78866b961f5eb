"""G.711 µ-law and A-law (ITU-T G.711) between 16-bit little-endian PCM and 8-bit codes.

`audioop` (C, fast) is used when present; it is gone in Python 3.13, so the same conversions
exist as lookup tables built from the G.711 reference algorithm, and tests hold them equal.
"""

from __future__ import annotations

import sys
import warnings
from array import array
from types import ModuleType

from .sdp import Codec


def _load_audioop() -> ModuleType | None:
    # audioop warns on import from 3.11 on; the warning is about the future, not a defect here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


_audioop = _load_audioop()
_LITTLE_ENDIAN = sys.byteorder == "little"


def _ulaw_encode_sample(sample: int) -> int:
    # The 14-bit form of the reference encoder (what audioop does): shift, bias, find segment.
    value = sample >> 2
    mask = 0x7F if value < 0 else 0xFF
    magnitude = min(-value if value < 0 else value, 8159) + 0x21
    segment = 0
    while segment < 8 and magnitude > (0x40 << segment) - 1:
        segment += 1
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) ^ mask


def _ulaw_decode_sample(code: int) -> int:
    code = ~code & 0xFF
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -sample if sign else sample


def _alaw_encode_sample(sample: int) -> int:
    # A-law works on 13-bit magnitudes; audioop truncates the low 3 bits the same way.
    sign = 0x80 if sample >= 0 else 0
    magnitude = sample if sample >= 0 else -sample - 1
    magnitude >>= 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
        if exponent > 7:
            code = 0x7F
    return (sign | code) ^ 0x55


def _alaw_decode_sample(code: int) -> int:
    code ^= 0x55
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    sample = (mantissa << 4) + 8 if exponent == 0 else (mantissa << 4) + 264 << exponent - 1
    return sample if sign else -sample


def _encode_table(encode: object) -> bytes:
    assert callable(encode)
    # Indexed by the unsigned 16-bit view of a sample.
    return bytes(encode(value - 65536 if value >= 32768 else value) for value in range(65536))


ULAW_DECODE: tuple[int, ...] = tuple(_ulaw_decode_sample(c) for c in range(256))
ALAW_DECODE: tuple[int, ...] = tuple(_alaw_decode_sample(c) for c in range(256))
_ULAW_ENCODE = _encode_table(_ulaw_encode_sample)
_ALAW_ENCODE = _encode_table(_alaw_encode_sample)
# Transcoding between the two laws is a byte translation (used by the RTP relay).
ULAW_TO_ALAW = bytes(_ALAW_ENCODE[ULAW_DECODE[c] & 0xFFFF] for c in range(256))
ALAW_TO_ULAW = bytes(_ULAW_ENCODE[ALAW_DECODE[c] & 0xFFFF] for c in range(256))


def _samples(pcm: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if not _LITTLE_ENDIAN:
        samples.byteswap()
    return samples


def _pcm(samples: array[int]) -> bytes:
    if not _LITTLE_ENDIAN:
        samples.byteswap()
    return samples.tobytes()


def table_encode(pcm: bytes, codec: Codec) -> bytes:
    """Encode 16-bit LE PCM with the lookup tables (the path used without audioop)."""
    table = _ULAW_ENCODE if codec is Codec.PCMU else _ALAW_ENCODE
    return bytes(table[s & 0xFFFF] for s in _samples(pcm))


def table_decode(payload: bytes, codec: Codec) -> bytes:
    """Decode G.711 bytes to 16-bit LE PCM with the lookup tables."""
    table = ULAW_DECODE if codec is Codec.PCMU else ALAW_DECODE
    return _pcm(array("h", (table[b] for b in payload)))


def encode(pcm: bytes, codec: Codec) -> bytes:
    """Encode 16-bit little-endian PCM as µ-law or A-law."""
    if _audioop is not None and _LITTLE_ENDIAN:
        if codec is Codec.PCMU:
            return bytes(_audioop.lin2ulaw(pcm, 2))
        return bytes(_audioop.lin2alaw(pcm, 2))
    return table_encode(pcm, codec)


def decode(payload: bytes, codec: Codec) -> bytes:
    """Decode µ-law or A-law bytes to 16-bit little-endian PCM."""
    if _audioop is not None and _LITTLE_ENDIAN:
        if codec is Codec.PCMU:
            return bytes(_audioop.ulaw2lin(payload, 2))
        return bytes(_audioop.alaw2lin(payload, 2))
    return table_decode(payload, codec)


def transcode(payload: bytes, source: Codec, target: Codec) -> bytes:
    """Convert G.711 bytes between the two laws (identity when they match)."""
    if source is target:
        return payload
    return payload.translate(ULAW_TO_ALAW if source is Codec.PCMU else ALAW_TO_ULAW)


def has_audioop() -> bool:
    """Whether the C implementation is in use."""
    return _audioop is not None


def mix(first: bytes, second: bytes) -> bytes:
    """Sum two equally long 16-bit LE PCM buffers sample by sample, clipped (a two-party mix)."""
    if len(first) != len(second):
        raise ValueError("mix needs buffers of equal length")
    if _audioop is not None and _LITTLE_ENDIAN:
        return bytes(_audioop.add(first, second, 2))
    a, b = _samples(first), _samples(second)
    out = array("h", (max(-32768, min(32767, x + y)) for x, y in zip(a, b, strict=True)))
    return _pcm(out)
