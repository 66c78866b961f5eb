"""The live feed: floor changes pushed to every browser over Server-Sent Events.

One bus subscription feeds one coalescing loop: events mark the floor dirty, and at most every
`interval` seconds (leading edge: the first change after a quiet spell goes out at once) the
loop renders the floor once and hands the result to every connected browser.

* Monitor clients get one delta frame per push (what changed since the previous revision),
  serialized once and shared by every client. A client that falls behind overflows its own
  small mailbox: its queued deltas are dropped and its next frame is a full snapshot, so a
  slow browser costs only itself.
* Desktop clients get their own agent's view whenever it changes (always a full view, so a
  dropped frame needs no repair).

Each browser's frames wait in its own bounded `FeedClient`; the HTTP handler drains it with a
write timeout. Nothing the feed does waits on a browser.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commserver.agents import AgentStateChanged
from commserver.clock import utcnow
from commserver.contacts import ContactStateChanged
from commserver.contacts.events import CallRecordStored
from commserver.events import Event, Subscription
from commserver.keys import EVENT_BUS
from commserver.supervision import SpyEnded, SpyStarted
from commserver.tasks import TaskSet
from monitor.api import to_json
from monitor.floor import ContactView, Floor
from monitor.screen_pop import LOOKUP_TIMEOUT, ScreenPops
from service_manager import ServiceManager

log = logging.getLogger(__name__)

PUSH_INTERVAL = 0.1
#: Even without events the floor is re-rendered this often, as a safety net; unchanged
#: renders send nothing.
REFRESH_INTERVAL = 5.0
MAILBOX_SIZE = 16
BUS_QUEUE = 10_000

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE message, already encoded."""

    revision: int
    data: bytes


def sse(event: str, payload: Json, revision: int) -> bytes:
    """Encode one Server-Sent Events message (JSON never contains a raw newline)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"id: {revision}\nevent: {event}\ndata: {body}\n\n".encode()


class FeedClient:
    """One browser's bounded mailbox of frames."""

    def __init__(
        self,
        *,
        agent_id: str | None,
        resync: Callable[[], Frame] | None,
        session_id: str | None = None,
        maxsize: int = MAILBOX_SIZE,
    ) -> None:
        self.agent_id = agent_id
        self.session_id = session_id
        self.dropped = 0
        self.last_desktop: bytes | None = None
        self._resync_source = resync
        self._needs_resync = resync is not None
        self._frames: deque[Frame] = deque()
        self._maxsize = maxsize
        self._wake = asyncio.Event()
        self._closed = False
        if self._needs_resync:
            self._wake.set()

    @property
    def closed(self) -> bool:
        """Whether the feed has let go of this client."""
        return self._closed

    def offer(self, frame: Frame) -> None:
        """Queue a frame; never blocks. On overflow, drop and (monitor) resync later."""
        if self._closed:
            return
        if len(self._frames) >= self._maxsize:
            if self._resync_source is not None:
                self.dropped += len(self._frames)
                self._frames.clear()
                self._needs_resync = True
            else:
                self._frames.popleft()
                self.dropped += 1
        if not self._needs_resync:
            self._frames.append(frame)
        self._wake.set()

    async def next(self, timeout: float) -> Frame | None:
        """The next frame to send, or None after `timeout` seconds (time for a keepalive)."""
        if not self._frames and not self._needs_resync and not self._closed:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                return None
        if self._closed:
            return None
        if self._needs_resync and self._resync_source is not None:
            self._needs_resync = False
            return self._resync_source()
        return self._frames.popleft() if self._frames else None

    def close(self) -> None:
        """Stop: the handler's next `next()` returns None and it sees `closed`."""
        self._closed = True
        self._frames.clear()
        self._wake.set()


class LiveFeed:
    """Coalesced pushes of the floor to monitor and desktop clients."""

    def __init__(
        self,
        floor: Floor,
        services: ServiceManager,
        *,
        interval: float = PUSH_INTERVAL,
        lookup_timeout: float = LOOKUP_TIMEOUT,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.floor = floor
        self.interval = interval
        self.revision = 0
        self.pushes = 0
        self._services = services
        self._now = now
        self.pops = ScreenPops(
            services, caller_of=self._caller_of, on_ready=self.mark_dirty, timeout=lookup_timeout
        )
        self._monitors: set[FeedClient] = set()
        self._desktops: set[FeedClient] = set()
        self._snapshot: dict[str, dict[str, Json]] | None = None
        self._full: Frame | None = None
        self._dirty = asyncio.Event()
        self._tasks = TaskSet("live-feed")
        self._subscription: Subscription[Event] | None = None

    # -- clients ---------------------------------------------------------------------------

    def connect_monitor(self, session_id: str | None = None) -> FeedClient:
        """A new monitor browser: its first frame is a full snapshot."""
        client = FeedClient(agent_id=None, resync=self.full_frame, session_id=session_id)
        self._monitors.add(client)
        return client

    def connect_desktop(self, agent_id: str, session_id: str | None = None) -> FeedClient:
        """A new desktop browser for one agent: its first frame is the agent's view."""
        view = self.desktop_view(agent_id)
        client = FeedClient(agent_id=agent_id, resync=None, session_id=session_id, maxsize=4)
        client.last_desktop = _comparable(view)
        client.offer(self._desktop_frame(view))
        self._desktops.add(client)
        return client

    def disconnect(self, client: FeedClient) -> None:
        """Forget a browser that went away."""
        client.close()
        self._monitors.discard(client)
        self._desktops.discard(client)

    def close_session(self, session_id: str) -> None:
        """End the streams of a session that signed out."""
        for client in list(self._monitors | self._desktops):
            if client.session_id == session_id:
                self.disconnect(client)

    @property
    def monitor_clients(self) -> tuple[FeedClient, ...]:
        """The monitor browsers connected now."""
        return tuple(self._monitors)

    @property
    def bus_dropped(self) -> int:
        """Events the bus dropped before the feed could take them (a stalled feed)."""
        return self._subscription.dropped if self._subscription is not None else 0

    @property
    def clients(self) -> int:
        """Browsers connected now."""
        return len(self._monitors) + len(self._desktops)

    def _caller_of(self, contact_id: str) -> str | None:
        contact = self.floor.contact(contact_id)
        return contact.caller if contact is not None else None

    def mark_dirty(self) -> None:
        """Something changed: push soon (coalesced)."""
        self._dirty.set()

    # -- rendering -------------------------------------------------------------------------

    def render(self) -> dict[str, dict[str, Json]]:
        """The floor as JSON-ready maps keyed by id."""
        return {
            "agents": {a.id: to_json(a) for a in self.floor.agents()},
            "contacts": {c.id: to_json(c) for c in self.floor.waiting()},
            "queues": {q.name: to_json(q) for q in self.floor.queues()},
        }

    def full_frame(self) -> Frame:
        """The whole floor at the current revision (rendered at most once per revision)."""
        if self._snapshot is None:
            self._snapshot = self.render()
            self.revision += 1
            self._full = None
        if self._full is None or self._full.revision != self.revision:
            payload: Json = {"rev": self.revision, "now": self._now().isoformat()}
            payload.update(self._snapshot)
            self._full = Frame(self.revision, sse("full", payload, self.revision))
        return self._full

    def desktop_view(self, agent_id: str) -> Json:
        """What one agent's desktop shows: their state and the contact they are on."""
        agent = self.floor.agent(agent_id)
        contact = self.floor.contact(agent.contact_id)
        shown: Json | None = None
        if contact is not None:
            shown = to_json(ContactView.of(contact))
            pop = self.pops.get(contact.id)
            shown["pop"] = to_json(pop) if pop is not None else None
        return {"agent": to_json(agent), "contact": shown}

    def _desktop_frame(self, view: Json) -> Frame:
        """One agent's desktop view as a frame, with the server clock in `now`."""
        payload = {**view, "now": self._now().isoformat()}
        return Frame(self.revision, sse("desktop", payload, self.revision))

    def push(self) -> None:
        """Render once and hand every client what changed."""
        self.pushes += 1
        if self._monitors:
            self._push_monitors()
        else:
            self._snapshot = None  # nobody watching: the next monitor starts from scratch
        if self._desktops:
            self._push_desktops()

    def _push_monitors(self) -> None:
        previous = self._snapshot
        current = self.render()
        if previous is None:
            self._snapshot = current
            self.revision += 1
            frame = self.full_frame()
            for client in list(self._monitors):
                client.offer(frame)
            return
        delta: Json = {}
        for section, items in current.items():
            before = previous[section]
            changed = {k: v for k, v in items.items() if before.get(k) != v}
            gone = [k for k in before if k not in items]
            if changed:
                delta[section] = changed
            if gone:
                delta[f"{section}_gone"] = gone
        if not delta:
            return
        self._snapshot = current
        self.revision += 1
        delta.update(rev=self.revision, base=self.revision - 1, now=self._now().isoformat())
        frame = Frame(self.revision, sse("delta", delta, self.revision))
        for client in list(self._monitors):
            client.offer(frame)

    def _push_desktops(self) -> None:
        rendered: dict[str, tuple[bytes, Frame]] = {}
        for client in list(self._desktops):
            agent_id = client.agent_id
            assert agent_id is not None
            if agent_id not in rendered:
                try:
                    view = self.desktop_view(agent_id)
                except Exception:
                    log.exception("cannot render the desktop of agent %s", agent_id)
                    continue
                rendered[agent_id] = (_comparable(view), self._desktop_frame(view))
            comparable, frame = rendered[agent_id]
            if comparable != client.last_desktop:
                client.last_desktop = comparable
                client.offer(frame)

    # -- running ---------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LiveFeed]:
        """Consume the bus and push until exit; then let every client go."""
        bus = self._services.get(EVENT_BUS) if EVENT_BUS in self._services else None
        subscription = (
            bus.subscribe(
                AgentStateChanged, ContactStateChanged, CallRecordStored, SpyStarted, SpyEnded,
                maxsize=BUS_QUEUE,
            )
            if bus is not None
            else None
        )
        self._subscription = subscription
        if subscription is not None:
            self._tasks.spawn(self._consume(subscription), name="live-feed-events")
        self._tasks.spawn(self._push_loop(), name="live-feed-push")
        self._tasks.spawn(self._refresh_loop(), name="live-feed-refresh")
        try:
            yield self
        finally:
            self.close_clients()
            if bus is not None and subscription is not None:
                bus.unsubscribe(subscription)
            await self._tasks.cancel_all()
            await self.pops.close()

    def close_clients(self) -> None:
        """Release every browser (at shutdown their streams end)."""
        for client in list(self._monitors | self._desktops):
            self.disconnect(client)

    async def _consume(self, subscription: AsyncIterator[Event]) -> None:
        async for event in subscription:
            if isinstance(event, ContactStateChanged):
                self.floor.stats.apply(event)
                self.pops.on_contact(event)
            self._dirty.set()

    async def _push_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = -self.interval
        while True:
            await self._dirty.wait()
            delay = last + self.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._dirty.clear()
            last = loop.time()
            try:
                self.push()
            except Exception:
                # A rendering bug must not end the feed for everyone; it is logged and the
                # next change tries again.
                log.exception("live feed push failed")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            self._dirty.set()


def _comparable(view: Json) -> bytes:
    """A view's canonical bytes, to tell whether it changed."""
    return json.dumps(view, sort_keys=True).encode()
