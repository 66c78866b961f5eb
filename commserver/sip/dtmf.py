"""RFC 4733 telephone-event payloads: parse, detect digits once per event, and build events."""

from __future__ import annotations

import struct
from dataclasses import dataclass

EVENT_CODES = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")


def digit_to_event(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit; raises ValueError for anything else."""
    index = EVENT_CODES.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload (RFC 4733 §2.3)."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent | None:
        """Parse a payload; None when it is too short to be an event."""
        if len(payload) < 4:
            return None
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def to_bytes(self) -> bytes:
        """The 4-byte payload."""
        return _EVENT.pack(
            self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), self.duration
        )

    @property
    def digit(self) -> str | None:
        """The DTMF digit, or None for non-DTMF events (flash, tones)."""
        return EVENT_CODES[self.event] if self.event < len(EVENT_CODES) else None


class DtmfDetector:
    """Turns a stream of telephone-event packets into one digit per key press.

    A press is one RTP timestamp (all packets of an event share it, end packets are sent three
    times); reporting on the first packet seen means a lost end packet never loses a digit.
    """

    def __init__(self) -> None:
        self._last_key: tuple[int, int] | None = None
        self.digits_detected = 0

    def feed(self, ssrc: int, timestamp: int, payload: bytes) -> str | None:
        """Feed one packet's identity and payload; returns a digit when a new press starts."""
        event = TelephoneEvent.parse(payload)
        if event is None or event.digit is None:
            return None
        key = (ssrc, timestamp)
        if key == self._last_key:
            return None
        self._last_key = key
        self.digits_detected += 1
        return event.digit


def event_payloads(
    digit: str, duration_ms: int = 100, volume: int = 10
) -> list[tuple[bytes, bool]]:
    """The payloads of one key press at 20 ms packets: (payload, marker), end sent three times."""
    code = digit_to_event(digit)
    step = 160  # 20 ms at 8 kHz
    total = max(step, duration_ms * 8)
    out: list[tuple[bytes, bool]] = []
    elapsed = step
    while elapsed < total:
        out.append((TelephoneEvent(code, False, volume, elapsed).to_bytes(), not out))
        elapsed += step
    end = TelephoneEvent(code, True, volume, total).to_bytes()
    out.extend([(end, not out), (end, False), (end, False)])
    return out
