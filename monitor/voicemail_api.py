"""HTTP of voicemail: one's messages, playback and "heard" marks, and the desk's voicemail
callbacks, all over the voicemail service (`services.get(VOICEMAIL)`).

Who hears which box is decided in `monitor/voicemail.py`; a message outside one's boxes is
answered exactly like a message that does not exist (404). A voicemail callback (a contact
dialled ``voicemail:<id>``) is ended from the desk with `POST /api/desktop/callback/done`.
"""

from __future__ import annotations

import logging

from aiohttp import web

from commserver.keys import CALLS, VOICEMAIL
from ivr.voicemail import MAX_PAGE, VoicemailMessage
from monitor.accounts import Role
from monitor.api import SERVICES_APP_KEY, to_json
from monitor.apidoc import BOOLEAN, INTEGER, STRING, Param, array, nullable, obj, operation
from monitor.auth import Access, add_route, current_session, read_json, text_field
from monitor.context import WEB, WebFrontUnavailable
from monitor.domain_errors import (
    InvalidRequest,
    NoAgentLinked,
    NoSuchAgent,
    NoSuchContactRecord,
    NoSuchVoicemail,
)
from monitor.voicemail import (
    MAX_OFFSET,
    Listener,
    VoicemailDesk,
    callback_message_of,
)

log = logging.getLogger(__name__)

MESSAGE_PATH = {"message_id": "the message's id (as listed)"}


def desk_of(request: web.Request) -> VoicemailDesk:
    """The voicemail service behind the routes; 503 while it is not registered."""
    services = request.app[SERVICES_APP_KEY]
    if VOICEMAIL not in services:
        raise WebFrontUnavailable("voicemail is unavailable: no voicemail service is running")
    return VoicemailDesk(services.get(VOICEMAIL))


def listener_of(request: web.Request, desk: VoicemailDesk) -> Listener:
    """The signed-in user as a listener: their boxes and the callback they are on."""
    principal = current_session(request).principal
    floor = request.app[WEB].floor
    if principal.role.includes(Role.SUPERVISOR):
        return Listener(principal.name, None)
    agent_id = principal.agent_id
    if agent_id is None:
        return Listener(principal.name, frozenset())
    try:
        served = floor.boxes_of(agent_id) & set(floor.queue_names())
        contact = floor.contact(floor.agent(agent_id).contact_id)
    except NoSuchAgent:  # an agent id missing from the configuration: configured boxes only
        return Listener(principal.name, desk.boxes_of_agent(agent_id, ()))
    callback = callback_message_of(contact.dialed) if contact is not None else None
    return Listener(principal.name, desk.boxes_of_agent(agent_id, served), callback)


def _query_int(request: web.Request, name: str, default: int, high: int, low: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 6 or not low <= int(raw) <= high:
        raise InvalidRequest(f"'{name}' must be a whole number {low}-{high}", field=name)
    return int(raw)


@operation(
    "The voicemail messages one may hear, newest first", tags=("voicemail",),
    description="Agents: the boxes the voicemail configuration gives them (`agent`) and their"
                " queues' boxes; supervisors: every box. `total` and `unheard` count every"
                " message of those boxes, not just this page.",
    query=(
        Param("box", STRING, "only this box"),
        Param("unheard", {"type": "string", "enum": ["true", "false"]},
              "only messages nobody has heard yet"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
              "page size (default 100)"),
        Param("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
              "messages to skip"),
    ),
    returns=obj(["boxes", "messages", "total", "unheard"], boxes=array(STRING),
                messages=array(VoicemailMessage), total=INTEGER, unheard=INTEGER),
    errors=(400,),
)
async def list_messages(request: web.Request) -> web.Response:
    """GET /api/voicemail: messages in one's boxes, a page at a time."""
    desk = desk_of(request)
    unheard = request.query.get("unheard", "false")
    if unheard not in ("true", "false"):
        raise InvalidRequest("'unheard' must be true or false", field="unheard")
    page = await desk.page(
        listener_of(request, desk),
        box=request.query.get("box") or None,
        unheard_only=unheard == "true",
        limit=_query_int(request, "limit", 100, MAX_PAGE, 1),
        offset=_query_int(request, "offset", 0, MAX_OFFSET, 0),
    )
    return web.json_response(
        {
            "boxes": page.boxes,
            "messages": [to_json(m) for m in page.messages],
            "total": page.total,
            "unheard": page.unheard,
        }
    )


@operation(
    "Play one message (audio/wav)", tags=("voicemail",),
    path=MESSAGE_PATH,
    produces={"audio/wav": {"type": "string", "contentMediaType": "audio/wav"}},
    errors=(404,),
)
async def play_message(request: web.Request) -> web.StreamResponse:
    """GET /api/voicemail/{message_id}: the WAV file, for the page's audio player."""
    desk = desk_of(request)
    message, path = await desk.recording(
        listener_of(request, desk), request.match_info["message_id"]
    )
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="voicemail-{message.id}.wav"',
        },
    )


@operation(
    "Mark a message as heard", tags=("voicemail",),
    description="The first listener is kept. A callback the message was waiting to become is"
                " withdrawn while no agent has it yet.",
    path=MESSAGE_PATH, returns=VoicemailMessage, errors=(404,),
)
async def mark_heard(request: web.Request) -> web.Response:
    """POST /api/voicemail/{message_id}/heard: remember who listened first."""
    desk = desk_of(request)
    message = await desk.mark_heard(listener_of(request, desk), request.match_info["message_id"])
    return web.json_response(to_json(message))


def _own_agent(request: web.Request) -> str:
    agent_id = current_session(request).principal.agent_id
    if agent_id is None:
        raise NoAgentLinked("this account is not linked to an agent; ask an admin")
    return agent_id


@operation(
    "The voicemail callback one is on, with its message", tags=("desktop", "voicemail"),
    description="`callback` is null unless one's current contact is a voicemail callback"
                " (dialled `voicemail:<id>`): call the customer back from one's phone, then"
                " end it with `POST /api/desktop/callback/done`.",
    returns=obj(["callback"], callback=nullable(obj(
        ["contact_id", "state", "number", "message"], contact_id=STRING, state=STRING,
        number=STRING, message=nullable(VoicemailMessage),
    ))),
    errors=(403, 404),
)
async def current_callback(request: web.Request) -> web.Response:
    """GET /api/desktop/callback: one's current voicemail callback, if any."""
    floor = request.app[WEB].floor
    contact = floor.contact(floor.agent(_own_agent(request)).contact_id)
    reference = callback_message_of(contact.dialed) if contact is not None else None
    if contact is None or reference is None:
        return web.json_response({"callback": None})
    desk = desk_of(request)
    listener = listener_of(request, desk)
    try:
        message: VoicemailMessage | None = await desk.message(listener, str(reference))
    except NoSuchVoicemail:  # the message is gone: the callback still shows, without it
        message = None
    return web.json_response({
        "callback": {
            "contact_id": contact.id,
            "state": contact.state.value,
            "number": contact.caller,
            "message": to_json(message) if message is not None else None,
        }
    })


@operation(
    "Done with a voicemail callback", tags=("desktop", "voicemail"),
    description="The agent has called the customer back: the callback ends, the message"
                " records who called back, and the agent wraps up as after a call. Agents"
                " end their own callback only; supervisors any voicemail callback.",
    body=obj(["contact_id"], contact_id=STRING),
    returns=obj(["contact_id", "ended"], contact_id=STRING, ended=BOOLEAN),
    errors=(403, 404),
)
async def callback_done(request: web.Request) -> web.Response:
    """POST /api/desktop/callback/done {"contact_id"}: `CallController.end_callback`."""
    state = request.app[WEB]
    body = await read_json(request)
    contact_id = text_field(body, "contact_id")
    principal = current_session(request).principal
    contact = state.floor.contact(contact_id)
    if contact is None or callback_message_of(contact.dialed) is None:
        raise NoSuchContactRecord("no voicemail callback with this id", contact_id=contact_id)
    if not principal.role.includes(Role.SUPERVISOR) and contact.agent_id != _own_agent(request):
        # Someone else's callback is answered like one that does not exist.
        raise NoSuchContactRecord("no voicemail callback with this id", contact_id=contact_id)
    services = request.app[SERVICES_APP_KEY]
    if CALLS not in services:
        raise WebFrontUnavailable("calls are unavailable: no call controller is running")
    if not services.get(CALLS).end_callback(contact_id):
        raise NoSuchContactRecord("this callback has already ended", contact_id=contact_id)
    log.info("%s ended voicemail callback %s", principal.name, contact_id)
    state.feed.mark_dirty()
    return web.json_response({"contact_id": contact_id, "ended": True})


def setup_voicemail_routes(app: web.Application) -> None:
    """Voicemail routes (any signed-in role; boxes are checked per user)."""
    add_route(app, "GET", "/api/voicemail", list_messages, Access.AGENT)
    add_route(app, "GET", "/api/voicemail/{message_id}", play_message, Access.AGENT)
    add_route(app, "POST", "/api/voicemail/{message_id}/heard", mark_heard, Access.AGENT)
    add_route(app, "GET", "/api/desktop/callback", current_callback, Access.AGENT)
    add_route(app, "POST", "/api/desktop/callback/done", callback_done, Access.AGENT)
