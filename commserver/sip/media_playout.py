"""Prompt and music playout for every call of an endpoint on one shared 20 ms clock.

A task per playing call, each sleeping 20 ms between frames, costs a timer, a future and a task
step per frame per call; with hundreds of callers in menus and queues that is most of the
server's media work. Here one timer fires every 20 ms while anything plays and sends the next
frame of every prompt, so a frame costs a slice, the G.711 encoding and one `sendto`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .media import FRAME_BYTES
from .rtp import FRAME_SECONDS, RtpSession

# A busy loop wakes the clock late, often by more than a frame; the frames due since go out
# together (a few packets early for the phone's jitter buffer), so a prompt is not stretched
# by the load. Behind by more than this (a real stall), the clock starts again from now: a
# late prompt goes on late rather than in a burst the phone would have to drop.
_MAX_LAG = 0.1
_MAX_FRAMES_PER_TICK = 5


@dataclass(eq=False, slots=True)
class _Stream:
    """One prompt being played on one RTP session."""

    session: RtpSession
    pcm: bytes
    done: asyncio.Future[bool]
    offset: int = 0


class Playout:
    """Plays PCM on RTP sessions, 20 ms frames, all streams paced by one timer."""

    def __init__(self) -> None:
        self._streams: dict[RtpSession, _Stream] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._next_tick = 0.0

    @property
    def playing(self) -> int:
        """How many prompts are playing now."""
        return len(self._streams)

    async def play(self, session: RtpSession, pcm: bytes) -> bool:
        """Play 8 kHz 16-bit PCM on `session`; True when it played to the end.

        A new prompt on a session ends the one playing there (which then returns False), as
        does `stop` or cancelling the caller.
        """
        loop = asyncio.get_running_loop()
        self.stop(session)
        if not pcm:
            return True
        stream = _Stream(session, pcm, loop.create_future())
        self._streams[session] = stream
        if self._timer is None:
            # The first frame goes out on the next tick: every stream keeps 20 ms spacing.
            self._next_tick = loop.time() + FRAME_SECONDS
            self._timer = loop.call_at(self._next_tick, self._tick)
        try:
            return await stream.done
        finally:
            if self._streams.get(session) is stream:
                del self._streams[session]

    def stop(self, session: RtpSession) -> None:
        """End the prompt playing on `session`, if any (its `play` returns False)."""
        stream = self._streams.pop(session, None)
        if stream is not None and not stream.done.done():
            stream.done.set_result(False)

    def close(self) -> None:
        """End every prompt and stop the clock."""
        for session in list(self._streams):
            self.stop(session)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        late = loop.time() - self._next_tick
        if late > _MAX_LAG:
            self._next_tick += late  # stalled: start again from now
            late = 0.0
        frames = min(1 + int(late / FRAME_SECONDS), _MAX_FRAMES_PER_TICK)
        finished: list[_Stream] = []
        for stream in list(self._streams.values()):
            if stream.done.done():  # its caller was cancelled
                finished.append(stream)
                continue
            for _ in range(frames):
                if stream.offset >= len(stream.pcm):
                    # The last frame went out a tick ago: it has now been played out.
                    stream.done.set_result(True)
                    finished.append(stream)
                    break
                frame = stream.pcm[stream.offset : stream.offset + FRAME_BYTES]
                if len(frame) < FRAME_BYTES:
                    frame += bytes(FRAME_BYTES - len(frame))
                stream.session.send_audio_frame(frame, marker=stream.offset == 0)
                stream.offset += FRAME_BYTES
        for stream in finished:
            if self._streams.get(stream.session) is stream:
                del self._streams[stream.session]
        if not self._streams:
            return
        self._next_tick += frames * FRAME_SECONDS
        self._timer = loop.call_at(self._next_tick, self._tick)
