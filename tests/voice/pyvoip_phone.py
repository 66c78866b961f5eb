"""pyVoIP 1.6.8 as an in-process agent phone, run in its own threads (it is a blocking library).

pyVoIP answers, talks (a steady tone) and listens (counting frames that are not silence) until
the server hangs up. It sends its SIP replies to the server address it registered with, and
costs about four threads per phone: a handful per test, never a load generator.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

with warnings.catch_warnings():
    # pyVoIP imports audioop, which warns about its removal in Python 3.13.
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyVoIP.VoIP import CallState, VoIPPhone

_SILENCE = 128  # pyVoIP's audio is 8-bit unsigned
_TALK_LIMIT = 30.0


def _tone_frame() -> bytes:
    # 400 Hz at 8 kHz: 20 samples a period, so 160 samples hold whole periods and loop cleanly.
    return bytes(int(_SILENCE + 60 * math.sin(2 * math.pi * 400 * n / 8000)) for n in range(160))


@dataclass
class PyVoipAgent:
    """An auto-answering agent phone; its counters are read after the call."""

    server: tuple[str, int]
    extension: str
    password: str
    sip_port: int
    rtp_port: int
    answered: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    heard_frames: int = 0
    sent_frames: int = 0
    errors: list[BaseException] = field(default_factory=list)
    phone: Any = None

    def start(self) -> None:
        """Register (blocking: call it in a thread)."""
        self.phone = VoIPPhone(
            self.server[0],
            self.server[1],
            self.extension,
            self.password,
            myIP="127.0.0.1",
            callCallback=self._on_call,
            sipPort=self.sip_port,
            rtpPortLow=self.rtp_port,
            rtpPortHigh=self.rtp_port,
        )
        self.phone.start()

    def stop(self) -> None:
        """Unregister and close its sockets (blocking: call it in a thread)."""
        if self.phone is not None:
            self.phone.stop()

    def _on_call(self, call: Any) -> None:
        # Runs in a pyVoIP timer thread; any failure is kept for the test to report.
        try:
            call.answer()
            self.answered.set()
            tone = _tone_frame()
            deadline = time.monotonic() + _TALK_LIMIT
            while call.state == CallState.ANSWERED and time.monotonic() < deadline:
                call.write_audio(tone)
                self.sent_frames += 1
                frame = call.read_audio(160, blocking=False)
                if any(abs(sample - _SILENCE) > 8 for sample in frame):
                    self.heard_frames += 1
                time.sleep(0.02)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.finished.set()

    async def wait_finished(self, timeout: float) -> None:
        """Wait (without blocking the loop) until its call has ended."""
        if not await asyncio.to_thread(self.finished.wait, timeout):
            raise TimeoutError(f"the pyVoIP call did not end within {timeout} s")
