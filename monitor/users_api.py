"""HTTP of account administration (admin only): list and create users."""

from __future__ import annotations

import logging

from aiohttp import web

from monitor.accounts import Role
from monitor.apidoc import STRING, array, nullable, obj, operation
from monitor.auth import Access, add_route, current_session, principal_json, read_json, text_field
from monitor.context import WEB
from monitor.domain_errors import InvalidRequest

log = logging.getLogger(__name__)


USER = obj(["name", "role", "agent_id", "home"], name=STRING, role=STRING,
           agent_id=nullable(STRING), home=STRING)


@operation("Every account (never a password hash)", tags=("accounts",),
           returns=obj(["users"], users=array(USER)))
async def list_users(request: web.Request) -> web.Response:
    """GET /api/users: every enabled account (never a hash)."""
    users = await request.app[WEB].accounts.list()
    return web.json_response({"users": [principal_json(u) for u in users]})


@operation(
    "Create an account", tags=("accounts",),
    body=obj(["name", "password", "role"], name=STRING, password=STRING,
             role={"type": "string", "enum": [r.value for r in Role]},
             agent_id=nullable(STRING)),
    returns=obj(["user"], user=USER), status=201, errors=(409,),
)
async def create_user(request: web.Request) -> web.Response:
    """POST /api/users {"name", "password", "role", "agent_id"?}: a new account."""
    body = await read_json(request)
    raw_role = text_field(body, "role")
    try:
        role = Role(raw_role)
    except ValueError:
        raise InvalidRequest(
            f"role must be one of {', '.join(r.value for r in Role)}, not {raw_role!r}",
            field="role",
        ) from None
    agent_id = body.get("agent_id")
    if agent_id is not None and not isinstance(agent_id, str):
        raise InvalidRequest("'agent_id' must be a string", field="agent_id")
    user = await request.app[WEB].accounts.add(
        text_field(body, "name"), text_field(body, "password"), role, agent_id or None
    )
    log.info("admin %s created user %s (%s)", current_session(request).principal.name,
             user.name, user.role.value)
    return web.json_response({"user": principal_json(user)}, status=201)


def setup_user_routes(app: web.Application) -> None:
    """Account administration routes."""
    add_route(app, "GET", "/api/users", list_users, Access.ADMIN)
    add_route(app, "POST", "/api/users", create_user, Access.ADMIN)
