"""What integrators plug into: the typed event stream, Prometheus metrics and API tokens.

* `GET /api/events` (an API token or an admin's session): every event on the bus as
  Server-Sent Events, `event:` being the event's `kind` and `data:` its fields as JSON.
  Each stream has its own bounded subscription: a client that reads too slowly loses the
  oldest events (and is told how many in an `event: dropped` message), never delays anyone.
* `GET /metrics` (the same access): Prometheus text format (`monitor/prometheus.py`).
* `GET/POST /api/tokens`, `DELETE /api/tokens/{token_id}` (admin): the integrators' tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from aiohttp import web

from commserver.clock import utcnow
from commserver.events import Event, EventBus, Subscription
from commserver.keys import CALLS, EVENT_BUS
from monitor.api import SERVICES_APP_KEY, to_json
from monitor.apidoc import DATE_TIME, INTEGER, STRING, Param, array, obj, operation
from monitor.auth import Access, add_route, read_json, text_field
from monitor.context import API_TOKEN, SESSION, WEB, WebFrontState, WebFrontUnavailable
from monitor.domain_errors import InvalidRequest
from monitor.prometheus import CONTENT_TYPE, HTTP_STATS, Exposition, agent_state_samples
from monitor.tokens import ApiToken

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
WRITE_TIMEOUT = 10.0
STREAM_QUEUE = 1000
MAX_KINDS = 20
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


def event_kinds() -> set[str]:
    """Every event kind the server's code defines."""
    kinds: set[str] = set()
    pending: list[type[Event]] = [Event]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not Event:
            kinds.add(cls.kind)
    return kinds


def event_json(event: Event) -> dict[str, Any]:
    """An event as integrators receive it: its kind and its fields."""
    body = to_json(event)
    assert isinstance(body, dict)
    return {"kind": event.kind, **body}


class EventStreams:
    """The integrators' open streams, each with its own bounded bus subscription."""

    def __init__(self) -> None:
        self._open: dict[Subscription[Event], str | None] = {}
        self._bus: EventBus | None = None
        self.dropped_closed = 0

    def open(self, bus: EventBus, session_id: str | None) -> Subscription[Event]:
        """A new stream's subscription to every event."""
        self._bus = bus
        subscription = bus.subscribe(maxsize=STREAM_QUEUE)
        self._open[subscription] = session_id
        return subscription

    def close(self, subscription: Subscription[Event]) -> None:
        """A stream ended."""
        if self._open.pop(subscription, "gone") != "gone":
            self.dropped_closed += subscription.dropped
        if self._bus is not None:
            self._bus.unsubscribe(subscription)

    def close_session(self, session_id: str) -> None:
        """End the streams of a session that signed out."""
        for subscription, owner in list(self._open.items()):
            if owner == session_id:
                subscription.close()

    def close_all(self) -> None:
        """End every stream (shutdown)."""
        for subscription in list(self._open):
            subscription.close()

    @property
    def clients(self) -> int:
        """Streams open now."""
        return len(self._open)

    @property
    def dropped(self) -> int:
        """Events dropped for slow streams since start."""
        return self.dropped_closed + sum(s.dropped for s in self._open)


def _kinds(request: web.Request) -> frozenset[str] | None:
    raw = request.query.get("kinds")
    if not raw:
        return None
    wanted = frozenset(k.strip() for k in raw.split(",") if k.strip())
    known = event_kinds()
    unknown = sorted(k for k in wanted if k not in known)
    if len(wanted) > MAX_KINDS or unknown:
        raise InvalidRequest(
            f"unknown event kind(s) {', '.join(unknown)[:200]}; known: {', '.join(sorted(known))}",
            field="kinds",
        )
    return wanted


def _bus(request: web.Request) -> EventBus:
    services = request.app[SERVICES_APP_KEY]
    if EVENT_BUS not in services:
        raise WebFrontUnavailable("the event stream is unavailable: no event bus is running")
    return services.get(EVENT_BUS)


async def _still_allowed(request: web.Request, state: WebFrontState) -> bool:
    """A stream lives only while its session or token does."""
    session = request.get(SESSION)
    if request.get(API_TOKEN) is not None:
        _, _, secret = request.headers.get("Authorization", "").partition(" ")
        return await state.tokens.check(secret.strip()) is not None
    return session is not None and state.sessions.get(session.id) is not None


@operation(
    "Every event on the bus, as Server-Sent Events", tags=("integration",),
    description="`event:` is the event's kind (agent-state-changed, contact-state-changed,"
                " call-record-stored), `data:` its fields as JSON with `kind` and `at`, `id:` a"
                " sequence number of this stream. A slow client loses the oldest events and"
                " gets `event: dropped` with the count. `: keepalive` every 15 s.",
    query=(Param("kinds", STRING, "comma-separated kinds to receive (default: all)"),),
    produces={"text/event-stream": STRING},
)
async def event_stream(request: web.Request) -> web.StreamResponse:
    """GET /api/events: the integrators' event stream."""
    state: WebFrontState = request.app[WEB]
    kinds = _kinds(request)
    bus = _bus(request)
    session = request.get(SESSION)
    subscription = state.streams.open(bus, session.id if session is not None else None)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    sequence = 0
    reported = 0
    loop = asyncio.get_running_loop()
    checked = loop.time()
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        while True:
            event: Event | None
            try:
                async with asyncio.timeout(KEEPALIVE):
                    event = await subscription.get()
            except TimeoutError:
                event = None
            except StopAsyncIteration:
                break  # shutdown, or the session signed out
            if loop.time() - checked >= KEEPALIVE:
                # A revoked token or an expired session ends the stream within KEEPALIVE.
                if not await _still_allowed(request, state):
                    break
                checked = loop.time()
            if event is None:
                frame = b": keepalive\n\n"
            elif kinds is not None and event.kind not in kinds:
                continue
            else:
                parts = []
                if subscription.dropped > reported:
                    payload = json.dumps({"dropped": subscription.dropped - reported})
                    parts.append(f"event: dropped\ndata: {payload}\n\n")
                    reported = subscription.dropped
                sequence += 1
                body = json.dumps(event_json(event), separators=(",", ":"), default=str)
                parts.append(f"id: {sequence}\nevent: {event.kind}\ndata: {body}\n\n")
                frame = "".join(parts).encode()
            async with asyncio.timeout(WRITE_TIMEOUT):
                await response.write(frame)
    except TimeoutError:
        log.info("event stream to %s stalled for %.0f s: dropped", request.remote, WRITE_TIMEOUT)
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:
        pass
    finally:
        state.streams.close(subscription)
    return response


@operation(
    "Prometheus metrics", tags=("integration",),
    description="Text exposition format 0.0.4: contacts offered, answered, abandoned and"
                " overflowed per queue (since start), waiting contacts, agents per state,"
                " event-bus drops, HTTP requests. Scrape with an API token.",
    produces={"text/plain": STRING},
)
async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the server's metrics for Prometheus."""
    state: WebFrontState = request.app[WEB]
    services = request.app[SERVICES_APP_KEY]
    floor = state.floor
    out = Exposition()
    lifetime = floor.stats.lifetime
    queues = [*floor.queue_names(), *sorted(set(lifetime) - set(floor.queue_names()))]
    for name, what in (
        ("offered", "finished in the queue (answered, abandoned or overflowed)"),
        ("answered", "answered by an agent"),
        ("answered_within", "answered within the queue's service-level threshold"),
        ("abandoned", "abandoned by the caller before being answered"),
        ("overflowed", "sent out of the queue (voicemail, limit, transfer, failure)"),
    ):
        out.metric(
            f"caruso_contacts_{name}_total", "counter",
            f"Contacts {what}, per queue, since the server started.",
            [({"queue": q}, getattr(lifetime[q], name) if q in lifetime else 0) for q in queues],
        )
    views = floor.queues()
    out.metric("caruso_queue_waiting", "gauge", "Contacts waiting in the queue now.",
               [({"queue": v.name}, v.waiting) for v in views])
    now = utcnow()
    out.metric(
        "caruso_queue_longest_wait_seconds", "gauge", "Wait of the longest-waiting contact.",
        [({"queue": v.name}, round((now - v.oldest_queued_at).total_seconds(), 3)
          if v.oldest_queued_at else 0.0) for v in views],
    )
    out.metric(
        "caruso_queue_service_level_today", "gauge",
        "Today's service level (0-1) by the configured formula; absent while undefined.",
        [({"queue": v.name}, v.service_level_today) for v in views
         if v.service_level_today is not None],
    )
    out.metric("caruso_agents", "gauge", "Agents per state.",
               agent_state_samples(a.state for a in floor.agents()))
    live = len(services.get(CALLS).live_contacts) if CALLS in services else 0
    out.metric("caruso_contacts_live", "gauge", "Contacts on the line or in wrap-up now.",
               [({}, live)])
    bus = services.get(EVENT_BUS) if EVENT_BUS in services else None
    out.metric("caruso_event_bus_published_total", "counter", "Events published on the bus.",
               [({}, bus.published if bus is not None else 0)])
    history = state.history
    out.metric(
        "caruso_event_bus_dropped_total", "counter",
        "Events the bus dropped because a subscriber of the web front fell behind.",
        [
            ({"subscriber": "live-feed"}, state.feed.bus_dropped),
            ({"subscriber": "history"}, history.dropped if history is not None else 0),
            ({"subscriber": "event-stream"}, state.streams.dropped),
        ],
    )
    out.metric("caruso_history_rows_written_total", "counter",
               "Agent-state and contact-event rows written for reports.",
               [({}, history.written if history is not None else 0)])
    out.metric("caruso_history_rows_failed_total", "counter",
               "Agent-state and contact-event rows storage refused.",
               [({}, history.failed if history is not None else 0)])
    out.metric("caruso_web_stream_clients", "gauge", "Open event streams per kind.",
               [({"stream": "monitor"}, len(state.feed.monitor_clients)),
                ({"stream": "desktop"}, state.feed.clients - len(state.feed.monitor_clients)),
                ({"stream": "events"}, state.streams.clients)])
    stats = request.app[HTTP_STATS]
    out.metric(
        "caruso_http_requests_total", "counter", "HTTP requests by method, route and status.",
        [({"method": m, "route": r, "status": str(s)}, n)
         for (m, r, s), n in sorted(stats.requests.items())],
    )
    out.summary(
        "caruso_http_request_duration_seconds", "Time to answer (streams: their lifetime).",
        [({"method": m, "route": r}, total, count)
         for (m, r), (total, count) in sorted(stats.seconds.items())],
    )
    return web.Response(text=out.text(), headers={"Content-Type": CONTENT_TYPE})


TOKEN_SCHEMA = obj(["id", "name", "created_by", "created_at"], id=INTEGER, name=STRING,
                   created_by=STRING, created_at=DATE_TIME)


def _token_json(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "created_by": token.created_by,
            "created_at": token.created_at.isoformat()}


@operation("Integrators' API tokens (never their secrets)", tags=("integration",),
           returns=obj(["tokens"], tokens=array(TOKEN_SCHEMA)))
async def list_tokens(request: web.Request) -> web.Response:
    """GET /api/tokens: tokens that still work."""
    tokens = await request.app[WEB].tokens.list()
    return web.json_response({"tokens": [_token_json(t) for t in tokens]})


@operation(
    "Create an API token", tags=("integration",),
    description="The secret is in this answer only; store it in the integrator's"
                " configuration (e.g. Prometheus' credentials_file).",
    body=obj(["name"], name=STRING),
    returns=obj(["token", "secret"], token=TOKEN_SCHEMA, secret=STRING), status=201,
)
async def create_token(request: web.Request) -> web.Response:
    """POST /api/tokens {"name"}: a new token for an integrator."""
    state: WebFrontState = request.app[WEB]
    name = text_field(await read_json(request), "name")
    session = request[SESSION]
    token, secret = await state.tokens.create(name, session.principal.name)
    log.info("admin %s created API token %r", session.principal.name, token.name)
    return web.json_response({"token": _token_json(token), "secret": secret}, status=201)


@operation("Revoke an API token", tags=("integration",),
           returns=obj(["revoked"], revoked=INTEGER), errors=(404,))
async def revoke_token(request: web.Request) -> web.Response:
    """DELETE /api/tokens/{token_id}: the token stops working, open streams included."""
    raw = request.match_info["token_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidRequest("a token id is a whole number", field="token_id")
    token = await request.app[WEB].tokens.revoke(int(raw))
    log.info("admin %s revoked API token %r", request[SESSION].principal.name, token.name)
    return web.json_response({"revoked": token.id})


def setup_integration_routes(app: web.Application) -> None:
    """The event stream, /metrics and API tokens."""
    add_route(app, "GET", "/api/events", event_stream, Access.INTEGRATOR)
    add_route(app, "GET", "/metrics", metrics, Access.INTEGRATOR)
    add_route(app, "GET", "/api/tokens", list_tokens, Access.ADMIN)
    add_route(app, "POST", "/api/tokens", create_token, Access.ADMIN)
    add_route(app, "DELETE", "/api/tokens/{token_id}", revoke_token, Access.ADMIN)
