"""HTTP of supervisors on agents' calls: listen, whisper and barge from the live monitor.

* `GET /api/supervision`: what the backend supports (`modes`), the phone that rings for the
  signed-in supervisor by default, and the sessions running now.
* `POST /api/agents/{agent_id}/spy` {"mode", "extension"?, "external_number"?}: ring the
  supervisor's phone into the call the agent is talking on; answers once it was answered.
* `DELETE /api/supervision/sessions/{session_id}`: hang up a session's phone (the call goes on).

All are supervisor-only (CSRF-checked like every state-changing route). The supervisor's phone
is the one the request names, else the phone of the agent their account is linked to.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from commserver.errors import NoSupervisorPhone
from commserver.telephony.base import AgentEndpoint, SpyMode
from monitor.api import to_json
from monitor.apidoc import array, nullable, obj, operation
from monitor.auth import Access, add_route, current_session, read_json, text_field
from monitor.context import WEB, WebFrontState
from monitor.domain_errors import InvalidRequest
from monitor.floor import SpyView
from monitor.sessions import Session

log = logging.getLogger(__name__)

EXTENSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_NUMBER = 40
PHONE = obj(
    [],
    extension=nullable({"type": "string", "maxLength": 32}),
    external_number=nullable({"type": "string", "maxLength": MAX_NUMBER}),
)
SPY_BODY = obj(
    ["mode"],
    mode={"type": "string", "enum": [m.value for m in SpyMode]},
    extension={"type": "string", "maxLength": 32,
               "description": "the supervisor's extension to ring (default: their agent's)"},
    external_number={"type": "string", "maxLength": MAX_NUMBER,
                     "description": "an external number to ring instead (the site's dial-out"
                                    " pattern applies)"},
)
SESSION_ANSWER = obj(["session"], session=SpyView)


def _phone_json(phone: AgentEndpoint | None) -> dict[str, str | None] | None:
    if phone is None or not (phone.extension or phone.external_number):
        return None
    return {"extension": phone.extension, "external_number": phone.external_number}


def _supervisor_phone(
    state: WebFrontState, session: Session, body: dict[str, Any]
) -> AgentEndpoint:
    """The phone the request names, else the one of the agent the account is linked to."""
    principal = session.principal
    holder = principal.agent_id or f"supervisor:{principal.name}"
    extension = text_field(body, "extension", default="").strip()
    number = text_field(body, "external_number", default="").strip()
    if extension and number:
        raise InvalidRequest("give an extension or an external number, not both",
                             field="extension")
    if extension:
        if not EXTENSION.match(extension):
            raise InvalidRequest("an extension is 1-32 letters, digits, '_', '-' or '.'",
                                 field="extension")
        return AgentEndpoint(holder, extension=extension)
    if number:
        if len(number) > MAX_NUMBER:
            raise InvalidRequest("'external_number' must be a phone number",
                                 field="external_number")
        return AgentEndpoint(holder, external_number=number)
    phone = state.floor.spy_phone(principal.agent_id)
    if phone is None or not (phone.extension or phone.external_number):
        raise NoSupervisorPhone(
            "no phone to ring for you: enter your extension or number, or ask an admin to link"
            " your account to an agent with a phone",
            supervisor=principal.name,
        )
    return phone


def _mode_of(body: dict[str, Any]) -> SpyMode:
    raw = text_field(body, "mode")
    try:
        return SpyMode(raw)
    except ValueError:
        raise InvalidRequest(
            f"mode must be one of {', '.join(m.value for m in SpyMode)}", field="mode"
        ) from None


@operation(
    "Listen / whisper / barge: what the backend supports, your phone, the sessions now",
    tags=("monitor",),
    description="`modes` lists what the running telephony backend supports (none on the sip"
                " backend); the monitor offers only those. `phone` is what rings for you by"
                " default (the phone of the agent your account is linked to), null if none.",
    returns=obj(["modes", "phone", "sessions"],
                modes=array({"type": "string", "enum": [m.value for m in SpyMode]}),
                phone=nullable(PHONE), sessions=array(SpyView)),
)
async def supervision_info(request: web.Request) -> web.Response:
    """GET /api/supervision: modes, one's default phone, running sessions."""
    floor = request.app[WEB].floor
    principal = current_session(request).principal
    return web.json_response({
        "modes": [m.value for m in floor.spy_modes()],
        "phone": _phone_json(floor.spy_phone(principal.agent_id)),
        "sessions": [to_json(s) for s in floor.spy_sessions()],
    })


@operation(
    "Listen to, whisper to or barge into the call an agent is talking on", tags=("monitor",),
    description="Rings the supervisor's phone (the extension or number given, else the phone"
                " of the agent their account is linked to) into the agent's call and answers"
                " once it was answered. listen: hear both sides; whisper: speak to the agent"
                " only; barge: speak to both. 409 `not-supported-by-backend` when the backend"
                " cannot (sip), `agent-not-on-call` when the agent is not talking,"
                " `no-supervisor-phone` when there is no phone to ring, `spy-failed` when the"
                " phone did not answer.",
    path={"agent_id": "the agent to listen to"}, body=SPY_BODY, returns=SESSION_ANSWER,
    status=201, errors=(400, 404, 409),
)
async def start_spy(request: web.Request) -> web.Response:
    """POST /api/agents/{agent_id}/spy {"mode", "extension"?, "external_number"?}."""
    state: WebFrontState = request.app[WEB]
    session = current_session(request)
    body = await read_json(request)
    mode = _mode_of(body)
    agent_id = request.match_info["agent_id"]
    phone = _supervisor_phone(state, session, body)
    view = await state.floor.spy(agent_id, mode, supervisor=session.principal.name, phone=phone)
    state.feed.mark_dirty()
    return web.json_response({"session": to_json(view)}, status=201)


@operation(
    "Stop listening: hang up a listen / whisper / barge session's phone", tags=("monitor",),
    description="The call goes on. Any supervisor may stop any session.",
    path={"session_id": "the session (from the agent's `spies` or GET /api/supervision)"},
    returns=SESSION_ANSWER, errors=(404,),
)
async def stop_spy(request: web.Request) -> web.Response:
    """DELETE /api/supervision/sessions/{session_id}."""
    state: WebFrontState = request.app[WEB]
    by = current_session(request).principal.name
    view = await state.floor.stop_spy(request.match_info["session_id"], by=by)
    state.feed.mark_dirty()
    return web.json_response({"session": to_json(view)})


def setup_supervision_routes(app: web.Application) -> None:
    """Listen / whisper / barge routes (supervisor only)."""
    add_route(app, "GET", "/api/supervision", supervision_info, Access.SUPERVISOR)
    add_route(app, "POST", "/api/agents/{agent_id}/spy", start_spy, Access.SUPERVISOR)
    add_route(app, "DELETE", "/api/supervision/sessions/{session_id}", stop_spy,
              Access.SUPERVISOR)
