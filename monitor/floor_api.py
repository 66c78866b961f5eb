"""HTTP of the live monitor and the agent desktop: snapshots, event streams and agent actions.

* `GET /api/monitor` and the stream `GET /api/monitor/events` (supervisor): the whole floor.
* `POST /api/agents/{agent_id}/state` (supervisor): force ready, pause (with a reason), logout.
* `PUT /api/agents/{agent_id}/skills` (supervisor): edit an agent's skills live.
* `GET /api/desktop` and the stream `GET /api/desktop/events` (agent): one's own agent and
  contact with its screen pop; `POST /api/desktop/state`: ready, pause, logout oneself;
  `POST /api/desktop/wrap-up`: a contact's disposition, and the end of the wrap-up.

Streams are Server-Sent Events. Each browser drains its own bounded mailbox (see `feed.py`);
a write that cannot complete within `WRITE_TIMEOUT` drops that browser, never anyone else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from commserver.agents import AgentState
from monitor.api import to_json
from monitor.apidoc import BOOLEAN, DATE_TIME, STRING, array, nullable, obj, operation
from monitor.auth import Access, add_route, current_session, read_json, text_field
from monitor.context import WEB, WebFrontState
from monitor.dispositions import MAX_DISPOSITION
from monitor.domain_errors import InvalidRequest, NoAgentLinked
from monitor.feed import FeedClient
from monitor.floor import MAX_REASON, AgentView, ContactView, QueueView
from monitor.sessions import Session

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
WRITE_TIMEOUT = 10.0
RECONNECT_MS = 2000


def _state_of(body: dict[str, Any]) -> tuple[AgentState, str]:
    raw = text_field(body, "state")
    try:
        state = AgentState(raw)
    except ValueError:
        raise InvalidRequest(f"unknown agent state {raw!r}", field="state") from None
    return state, text_field(body, "reason", default="")


STATE_BODY = obj(
    ["state"],
    state={"type": "string", "enum": ["ready", "paused", "logged-out"]},
    reason={"type": "string", "maxLength": MAX_REASON,
            "description": "the pause reason (required with paused)"},
)
AGENT_ANSWER = obj(["agent"], agent=AgentView)
DESKTOP_VIEW = obj(["agent", "contact"], agent=AgentView, contact=nullable(ContactView),
                   now=DATE_TIME)


@operation(
    "The floor now: agents, waiting contacts, queues with today's figures",
    tags=("monitor",),
    returns=obj(["agents", "contacts", "queues"], agents=array(AgentView),
                contacts=array(ContactView), queues=array(QueueView)),
)
async def monitor_snapshot(request: web.Request) -> web.Response:
    """GET /api/monitor: agents, waiting contacts and queues now."""
    floor = request.app[WEB].floor
    return web.json_response(
        {
            "agents": [to_json(a) for a in floor.agents()],
            "contacts": [to_json(c) for c in floor.waiting()],
            "queues": [to_json(q) for q in floor.queues()],
        }
    )


@operation(
    "Force an agent ready, paused (with a reason) or logged out", tags=("monitor",),
    path={"agent_id": "the agent"}, body=STATE_BODY, returns=AGENT_ANSWER, errors=(404, 409),
)
async def set_agent_state(request: web.Request) -> web.Response:
    """POST /api/agents/{agent_id}/state {"state", "reason"}: a supervisor's action."""
    state: WebFrontState = request.app[WEB]
    new, reason = _state_of(await read_json(request))
    agent_id = request.match_info["agent_id"]
    view = state.floor.set_agent_state(agent_id, new, reason)
    log.info("supervisor %s set agent %s to %s", current_session(request).principal.name,
             agent_id, new.value)
    state.feed.mark_dirty()
    return web.json_response({"agent": to_json(view)})


def _own_agent(request: web.Request) -> str:
    agent_id = current_session(request).principal.agent_id
    if agent_id is None:
        raise NoAgentLinked("this account is not linked to an agent; ask an admin")
    return agent_id


@operation(
    "Edit an agent's skills live", tags=("monitor",),
    description="Replaces the agent's skills (name -> level 1-100). The ACD routes with them"
                " at once: a waiting contact the agent can now serve may be offered right"
                " away. Contacts in progress are unaffected.",
    path={"agent_id": "the agent"},
    body=obj(["skills"], skills={"type": "object", "additionalProperties": {
        "type": "integer", "minimum": 1, "maximum": 100}}),
    returns=AGENT_ANSWER, errors=(404, 409),
)
async def set_agent_skills(request: web.Request) -> web.Response:
    """PUT /api/agents/{agent_id}/skills {"skills": {name: level}}: a supervisor's action."""
    state: WebFrontState = request.app[WEB]
    body = await read_json(request)
    skills = body.get("skills")
    if not isinstance(skills, dict):
        raise InvalidRequest("'skills' must be an object of skill name -> level",
                             field="skills")
    agent_id = request.match_info["agent_id"]
    view = state.floor.set_skills(agent_id, skills)
    log.info("supervisor %s set agent %s's skills to %s",
             current_session(request).principal.name, agent_id,
             ", ".join(f"{k} {v}" for k, v in sorted(view.skills.items())) or "none")
    state.feed.mark_dirty()
    return web.json_response({"agent": to_json(view)})


@operation("One's own agent and current contact with its screen pop", tags=("desktop",),
           returns=DESKTOP_VIEW)
async def desktop_snapshot(request: web.Request) -> web.Response:
    """GET /api/desktop: one's own agent and current contact."""
    return web.json_response(request.app[WEB].feed.desktop_view(_own_agent(request)))


@operation("Go ready, pause (with a reason) or log off oneself", tags=("desktop",),
           body=STATE_BODY, returns=AGENT_ANSWER, errors=(409,))
async def set_own_state(request: web.Request) -> web.Response:
    """POST /api/desktop/state {"state", "reason"}: ready, pause or log out oneself."""
    state: WebFrontState = request.app[WEB]
    new, reason = _state_of(await read_json(request))
    view = state.floor.set_agent_state(_own_agent(request), new, reason)
    state.feed.mark_dirty()
    return web.json_response({"agent": to_json(view)})


@operation(
    "Wrap up a contact: note its disposition, and say when one is done", tags=("desktop",),
    description="The disposition is stored on the contact's call record (at once if the"
                " record is written, else when the call ends; `stored` says which). With"
                " `done`, the wrap-up ends: the agent is ready again (or paused, if a pause"
                " was asked for during the call).",
    body=obj(["contact_id"], contact_id=STRING,
             disposition=nullable({"type": "string", "maxLength": MAX_DISPOSITION}),
             done=BOOLEAN),
    returns=obj(["agent", "stored"], agent=AgentView, stored=nullable(BOOLEAN)),
    errors=(404, 409),
)
async def wrap_up(request: web.Request) -> web.Response:
    """POST /api/desktop/wrap-up {"contact_id", "disposition"?, "done"?}."""
    state: WebFrontState = request.app[WEB]
    body = await read_json(request)
    agent_id = _own_agent(request)
    contact_id = text_field(body, "contact_id")
    disposition = body.get("disposition")
    done = body.get("done", False)
    if disposition is not None and not isinstance(disposition, str):
        raise InvalidRequest("'disposition' must be a string", field="disposition")
    if not isinstance(done, bool):
        raise InvalidRequest("'done' must be true or false", field="done")
    stored: bool | None = None
    if disposition is not None:
        stored = await state.dispositions.set(contact_id, agent_id, disposition)
    view = state.floor.end_wrap_up(agent_id) if done else state.floor.agent(agent_id)
    state.feed.mark_dirty()
    return web.json_response({"agent": to_json(view), "stored": stored})


async def _stream(
    request: web.Request, session: Session, client: FeedClient
) -> web.StreamResponse:
    """Send a client's frames as Server-Sent Events until it, its session or the server ends."""
    state: WebFrontState = request.app[WEB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
        while True:
            frame = await client.next(KEEPALIVE)
            # An open page counts as use of the session (a wallboard may sit untouched for
            # hours); sign-out, expiry at its maximum age and shutdown end the stream.
            if client.closed or state.sessions.get(session.id) is None:
                break
            async with asyncio.timeout(WRITE_TIMEOUT):
                await response.write(frame.data if frame is not None else b": keepalive\n\n")
    except TimeoutError:
        # The browser stopped reading: drop its connection, do not wait for it any longer.
        log.info("event stream to %s stalled for %.0f s: dropped", request.remote, WRITE_TIMEOUT)
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:
        pass  # the browser went away
    finally:
        state.feed.disconnect(client)
    return response


@operation(
    "The floor as Server-Sent Events", tags=("monitor",),
    description="`event: full` (rev, now, agents, contacts, queues keyed by id), then"
                " `event: delta` (rev, base, now, changed entries, *_gone lists). See"
                " docs/web.md.",
    produces={"text/event-stream": STRING},
)
async def monitor_events(request: web.Request) -> web.StreamResponse:
    """GET /api/monitor/events: the floor as a stream (full snapshot, then deltas)."""
    session = current_session(request)
    return await _stream(request, session, request.app[WEB].feed.connect_monitor(session.id))


@operation("One's desktop view as Server-Sent Events (`event: desktop`)",
           tags=("desktop",), produces={"text/event-stream": STRING})
async def desktop_events(request: web.Request) -> web.StreamResponse:
    """GET /api/desktop/events: one's own desktop view whenever it changes."""
    session = current_session(request)
    client = request.app[WEB].feed.connect_desktop(_own_agent(request), session.id)
    return await _stream(request, session, client)


def setup_floor_routes(app: web.Application) -> None:
    """The monitor's and the desktop's routes."""
    add_route(app, "GET", "/api/monitor", monitor_snapshot, Access.SUPERVISOR)
    add_route(app, "GET", "/api/monitor/events", monitor_events, Access.SUPERVISOR)
    add_route(app, "POST", "/api/agents/{agent_id}/state", set_agent_state, Access.SUPERVISOR)
    add_route(app, "GET", "/api/desktop", desktop_snapshot, Access.AGENT)
    add_route(app, "GET", "/api/desktop/events", desktop_events, Access.AGENT)
    add_route(app, "POST", "/api/desktop/state", set_own_state, Access.AGENT)
    add_route(app, "PUT", "/api/agents/{agent_id}/skills", set_agent_skills, Access.SUPERVISOR)
    add_route(app, "POST", "/api/desktop/wrap-up", wrap_up, Access.AGENT)
