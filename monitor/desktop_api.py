"""HTTP of the agent's own phone on the desktop: where calls ring, and click-to-dial.

* `GET /api/desktop/phone`, `PUT /api/desktop/phone`: the phone the agent's calls ring at —
  the configured one, another extension, or an external number reached through the trunk.
* `POST /api/desktop/dial`: ring the agent's phone, then call a customer and connect them.
* `POST /api/desktop/hangup`: end that call.

Only a signed-in agent's own session reaches these (toll fraud: no API token, no other
agent); numbers must match `telephony.outbound_number_pattern`, and each dial is logged with
the number masked to its last four digits.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from commserver.dialling import mask
from commserver.telephony.base import AgentEndpoint, BackendCapability
from monitor.api import to_json
from monitor.apidoc import BOOLEAN, STRING, nullable, obj, operation
from monitor.auth import Access, add_route, current_session, read_json
from monitor.context import WEB, WebFrontState
from monitor.domain_errors import InvalidRequest
from monitor.floor import AgentView
from monitor.floor_api import _own_agent

log = logging.getLogger(__name__)

PHONE_KINDS = ("configured", "extension", "external")
MAX_FIELD = 40

PHONE = obj(
    ["kind", "extension", "external_number"],
    kind={"type": "string", "enum": list(PHONE_KINDS)},
    extension=nullable(STRING),
    external_number=nullable(STRING),
)
PHONE_ANSWER = obj(
    ["phone", "configured", "external_allowed", "dial_out"],
    phone=PHONE,
    configured=PHONE,
    external_allowed=BOOLEAN,
    dial_out=BOOLEAN,
)


def _phone_json(phone: AgentEndpoint, configured: AgentEndpoint) -> dict[str, Any]:
    if phone == configured:
        kind = "configured"
    else:
        kind = "external" if phone.external_number else "extension"
    return {"kind": kind, "extension": phone.extension, "external_number": phone.external_number}


def _answer(state: WebFrontState, agent_id: str) -> web.Response:
    phone, configured = state.floor.phone(agent_id)
    capabilities = state.floor.capabilities()
    return web.json_response(
        {
            "phone": _phone_json(phone, configured),
            "configured": _phone_json(configured, configured),
            "external_allowed": BackendCapability.EXTERNAL_PHONES in capabilities,
            "dial_out": BackendCapability.DIAL_OUT in capabilities,
        }
    )


def _short_text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_FIELD:
        raise InvalidRequest(f"'{name}' must be 1-{MAX_FIELD} characters", field=name)
    return value.strip()


@operation("Where one's calls ring: the phone chosen at login", tags=("desktop",),
           returns=PHONE_ANSWER)
async def get_phone(request: web.Request) -> web.Response:
    """GET /api/desktop/phone."""
    return _answer(request.app[WEB], _own_agent(request))


@operation(
    "Choose where one's calls ring", tags=("desktop",),
    description="`configured` (the phone in the site's configuration), `extension` (another"
                " extension the site knows: an agent's, or a phone registered now) or"
                " `external` (a home or mobile number reached through the trunk; it must"
                " match the site's number pattern and the backend must reach outside"
                " numbers). Refused while one is on a call.",
    body=obj(["kind"], kind={"type": "string", "enum": list(PHONE_KINDS)},
             extension={"type": "string", "maxLength": MAX_FIELD},
             external_number={"type": "string", "maxLength": MAX_FIELD}),
    returns=PHONE_ANSWER, errors=(400, 409),
)
async def set_phone(request: web.Request) -> web.Response:
    """PUT /api/desktop/phone {"kind", "extension"?, "external_number"?}."""
    state: WebFrontState = request.app[WEB]
    agent_id = _own_agent(request)
    body = await read_json(request)
    kind = body.get("kind")
    if kind not in PHONE_KINDS:
        raise InvalidRequest(f"'kind' must be one of {', '.join(PHONE_KINDS)}", field="kind")
    extension = _short_text(body, "extension") if kind == "extension" else None
    external = _short_text(body, "external_number") if kind == "external" else None
    state.floor.set_phone(agent_id, extension=extension, external_number=external)
    state.feed.mark_dirty()
    return _answer(state, agent_id)


@operation(
    "Dial a customer: one's phone rings first, then the customer's", tags=("desktop",),
    description="Click-to-dial. Allowed when one is ready or paused and has no other"
                " outbound call; the number must match the site's pattern. Answers at once"
                " with the outbound contact; the call shows on the desktop like an inbound"
                " one (screen pop by the dialled number), then wrap-up.",
    body=obj(["number"], number={"type": "string", "maxLength": MAX_FIELD}),
    returns=obj(["contact_id", "number"], contact_id=STRING, number=STRING),
    status=202, errors=(400, 409),
)
async def dial(request: web.Request) -> web.Response:
    """POST /api/desktop/dial {"number"}."""
    state: WebFrontState = request.app[WEB]
    agent_id = _own_agent(request)
    number = _short_text(await read_json(request), "number")
    contact = state.floor.dial(agent_id, number)
    log.info("user %s (agent %s) dials %s", current_session(request).principal.name,
             agent_id, mask(contact.caller))
    state.feed.mark_dirty()
    return web.json_response({"contact_id": contact.id, "number": contact.caller}, status=202)


@operation("Hang up one's outbound call (ringing or connected)", tags=("desktop",),
           returns=obj(["agent"], agent=AgentView), errors=(409,))
async def hang_up(request: web.Request) -> web.Response:
    """POST /api/desktop/hangup."""
    state: WebFrontState = request.app[WEB]
    view = state.floor.hang_up(_own_agent(request))
    state.feed.mark_dirty()
    return web.json_response({"agent": to_json(view)})


def setup_desktop_routes(app: web.Application) -> None:
    """The desktop's phone and dialling routes."""
    add_route(app, "GET", "/api/desktop/phone", get_phone, Access.AGENT)
    add_route(app, "PUT", "/api/desktop/phone", set_phone, Access.AGENT)
    add_route(app, "POST", "/api/desktop/dial", dial, Access.AGENT)
    add_route(app, "POST", "/api/desktop/hangup", hang_up, Access.AGENT)
