"""The OpenAPI 3.1 document of the JSON API, built from the routes themselves.

Each API handler carries its description (`@operation(...)` from `monitor/apidoc.py`, next to
its code): summary, parameters, body and answer schemas. `build_document` walks the
application's route table, takes the path parameters from the route pattern, the security from
the route's access rule (`monitor/auth.py`) and the description from the handler, so a route
cannot exist without appearing in the document, and its access rule cannot drift from what
the document says. A route under /api/ with no description is listed with
`x-undocumented: true` (the tests refuse that).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from commserver import __version__
from monitor.apidoc import ERROR, Components, Operation, Schema, described, operation
from monitor.auth import ACCESS, SAFE_METHODS, Access, add_route

_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")
_REASONS = {
    200: "OK", 201: "created", 400: "bad request: the message says which field",
    401: "not signed in (or no valid token)", 403: "forbidden: role, CSRF or origin",
    404: "not found", 409: "conflict with the current state", 410: "gone",
    413: "body too large", 429: "too many failed sign-ins", 503: "a component is not running",
}


# -- the document -----------------------------------------------------------------------------

SECURITY_SCHEMES = {
    "session": {
        "type": "apiKey", "in": "cookie", "name": "caruso_session",
        "description": "the session cookie set by POST /api/login",
    },
    "csrf": {
        "type": "apiKey", "in": "header", "name": "X-CSRF-Token",
        "description": "the session's CSRF token (GET /api/session); every POST, PUT, PATCH"
                       " and DELETE with a session must carry it",
    },
    "apiToken": {
        "type": "http", "scheme": "bearer",
        "description": "an integrator's API token (POST /api/tokens)",
    },
    "registrationToken": {
        "type": "http", "scheme": "bearer",
        "description": "services.registration_token from the configuration",
    },
}


def _security(access: Access | None, method: str) -> list[dict[str, list[str]]]:
    if access is None or access is Access.PUBLIC:
        return [] if method in SAFE_METHODS else [{"csrf": []}]
    if access is Access.BEARER:
        return [{"registrationToken": []}]
    session: dict[str, list[str]] = (
        {"session": [], "csrf": []} if method not in SAFE_METHODS else {"session": []}
    )
    if access is Access.INTEGRATOR:
        return [{"apiToken": []}, session]
    return [session]


def _error_statuses(op: Operation, access: Access | None, method: str, params: bool) -> set[int]:
    statuses = set(op.errors)
    if access is not None and access.role is not None:
        statuses |= {401, 403}
    if method not in SAFE_METHODS:
        statuses.add(403)
    if op.body is not None or params:
        statuses.add(400)
    return statuses


def _render(
    components: Components, op: Operation, path: str, method: str, access: Access | None
) -> Schema:
    parameters: list[Schema] = [
        {
            "name": name, "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1},
            "description": op.path.get(name, name.replace("_", " ")),
        }
        for name in _PATH_PARAM.findall(path)
    ]
    parameters += [
        {"name": p.name, "in": "query", "required": p.required, "schema": p.schema,
         "description": p.description}
        for p in op.query
    ]
    content: dict[str, Schema] = {}
    if op.returns is not None:
        content["application/json"] = {"schema": components.schema_of(op.returns)}
    for media, schema in op.produces.items():
        content[media] = {"schema": schema}
    responses: dict[str, Schema] = {
        str(status): {"description": _REASONS.get(status, "OK"),
                      **({"content": content} if content else {})}
        for status in (op.status, *op.also)
    }
    for status in sorted(_error_statuses(op, access, method, bool(parameters))):
        responses[str(status)] = {
            "description": _REASONS.get(status, "error"),
            "content": {"application/json": {"schema": ERROR}},
        }
    rendered: Schema = {
        "summary": op.summary,
        "tags": list(op.tags),
        "operationId": f"{method.lower()}{_operation_name(path)}",
        "security": _security(access, method),
        "responses": responses,
        "x-caruso-access": access.value if access is not None else "none",
    }
    if op.description:
        rendered["description"] = op.description
    if parameters:
        rendered["parameters"] = parameters
    if op.body is not None:
        rendered["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": components.schema_of(op.body)}},
        }
    return rendered


def _operation_name(path: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", _PATH_PARAM.sub(r"by_\1", path))
    return "".join(w[:1].upper() + w[1:] for w in words if w and w != "api")


def documented_path(path: str) -> bool:
    """Whether a route belongs in the API document."""
    return path.startswith("/api/") or path == "/metrics"


def build_document(app: web.Application) -> Schema:
    """The OpenAPI 3.1 document of every /api/ route (and /metrics) of the application."""
    components = Components()
    paths: dict[str, dict[str, Schema]] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        path = resource.canonical
        if not documented_path(path):
            continue
        access = app[ACCESS].get((route.method, path))
        op = described(route.handler)
        if op is None:
            entry: Schema = {
                "summary": "(undocumented)", "x-undocumented": True,
                "security": _security(access, route.method),
                "responses": {"default": {"description": "undocumented"}},
            }
        else:
            entry = _render(components, op, path, route.method, access)
        paths.setdefault(path, {})[route.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Caruso API",
            "version": __version__,
            "description": "The contact-center server's REST API: live floor, agent desktop,"
                           " reports, voicemail, accounts, services and integrators' event"
                           " stream. Errors are {error, message, details}; see docs/web.md.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components.schemas, "securitySchemes": SECURITY_SCHEMES},
    }


OPENAPI = web.AppKey("openapi-document", dict[str, Any])


def setup_openapi(app: web.Application) -> None:
    """Serve the document at /api/openapi.json (public: it holds no data)."""
    app[OPENAPI] = {}  # filled at the first request, once the route table is complete
    add_route(app, "GET", "/api/openapi.json", openapi_document, Access.PUBLIC)


@operation("This OpenAPI document", tags=("api",), returns={"type": "object"})
async def openapi_document(request: web.Request) -> web.Response:
    """GET /api/openapi.json: the OpenAPI document of this server."""
    cache = request.app[OPENAPI]
    if not cache:
        cache.update(build_document(request.app))
    return web.json_response(cache)
