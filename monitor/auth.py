"""The web edge of accounts: sign-in, sessions, CSRF, role checks and security headers.

Every route carries an access rule (`Access`) in the application's access table; `build_app`
refuses to start if any route lacks one, so nothing is reachable by accident. The middleware
then, for each request:

1. finds the session from the `caruso_session` cookie (HttpOnly, SameSite=Strict);
2. refuses a missing session (401 for the API, a redirect to /login for pages) or a role below
   the route's (403);
3. on every state-changing method, refuses a cross-site `Origin` and a missing or wrong
   `X-CSRF-Token` header: the session's token, or before sign-in the `caruso_csrf` cookie's
   (double submit). Bearer-token routes (remote service registration) carry no cookie and
   are checked by their own handler.
"""

from __future__ import annotations

import enum
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from monitor.accounts import Principal, Role, normalize_name
from monitor.apidoc import BOOLEAN, STRING, nullable, obj, operation
from monitor.context import API_TOKEN, SESSION, WEB, WebFrontState
from monitor.domain_errors import STATUS_BY_CODE, InvalidRequest, MonitorError
from monitor.errors import error_response
from monitor.sessions import Session, new_token, tokens_match

log = logging.getLogger(__name__)

SESSION_COOKIE = "caruso_session"
LOGIN_CSRF_COOKIE = "caruso_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_JSON_BODY = 64 * 1024

#: Strict policy: everything from Caruso itself, no inline script or style, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class Access(enum.Enum):
    """Who may call a route."""

    PUBLIC = "public"
    BEARER = "bearer"  # machine-to-machine; the handler checks the token
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    INTEGRATOR = "integrator"  # an API token (Authorization: Bearer), or an admin's session

    @property
    def role(self) -> Role | None:
        """The least role this rule needs, or None for public and bearer routes."""
        return _ROLE_OF.get(self)


_ROLE_OF = {
    Access.AGENT: Role.AGENT,
    Access.SUPERVISOR: Role.SUPERVISOR,
    Access.ADMIN: Role.ADMIN,
    Access.INTEGRATOR: Role.ADMIN,
}

AccessTable = dict[tuple[str, str], Access]
ACCESS = web.AppKey("access-rules", dict[tuple[str, str], Access])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def allow(app: web.Application, method: str, path: str, access: Access) -> None:
    """Declare who may call `method path` (for routes added by other modules too)."""
    app[ACCESS][(method.upper(), path)] = access


def add_route(
    app: web.Application, method: str, path: str, handler: Handler, access: Access
) -> None:
    """Add a route together with its access rule."""
    app.router.add_route(method, path, handler)
    allow(app, method, path, access)


def _rule_of(request: web.Request) -> Access | None:
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return None
    method = "GET" if route.method == "HEAD" else route.method
    return request.app[ACCESS].get((method, resource.canonical))


def check_every_route_guarded(app: web.Application) -> None:
    """Refuse to build an application with a route nobody declared an access rule for."""
    missing = []
    for route in app.router.routes():
        if route.resource is None:
            continue
        method = "GET" if route.method == "HEAD" else route.method
        if (method, route.resource.canonical) not in app[ACCESS]:
            missing.append(f"{route.method} {route.resource.canonical}")
    if missing:
        raise RuntimeError(f"routes without an access rule: {', '.join(sorted(missing))}")


def principal_json(principal: Principal) -> dict[str, Any]:
    """The signed-in user as the browser sees them."""
    return {
        "name": principal.name,
        "role": principal.role.value,
        "agent_id": principal.agent_id,
        "home": home_of(principal),
    }


def home_of(principal: Principal) -> str:
    """Where a user lands after sign-in."""
    return "/monitor" if principal.role.includes(Role.SUPERVISOR) else "/desktop"


def _is_api(request: web.Request) -> bool:
    # /metrics is for scrapers: a refusal is a 401, never a redirect to the sign-in page.
    return request.path.startswith("/api/") or request.path == "/metrics"


def _same_origin(request: web.Request) -> bool:
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    # Compared by host:port only, so a TLS-terminating proxy in front does not break it.
    return origin != "null" and urlsplit(origin).netloc == request.host


def _refuse(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    if _is_api(request):
        return error_response(status, code, message)
    if status == 401:
        target = request.path_qs
        raise web.HTTPFound(f"/login?next={quote(target, safe='/')}")
    return web.Response(status=status, text=f"{status}: {message}\n", content_type="text/plain")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Session lookup, role check and CSRF check for every routed request."""
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404/405: nothing to protect
    access = _rule_of(request)
    if access is None:
        log.error("no access rule for %s %s: refused", request.method, request.path)
        return _refuse(request, 403, "forbidden", "this route has no access rule")
    if access is Access.BEARER:
        return await handler(request)
    state = request.app[WEB]
    if access is Access.INTEGRATOR and _bearer(request) is not None:
        # A token carries no ambient credential (no cookie), so there is no CSRF to check.
        token = await state.tokens.check(_bearer(request) or "")
        if token is None:
            log.warning("refused %s %s from %s: unknown or revoked API token",
                        request.method, request.path, request.remote)
            return error_response(401, "invalid-token", "unknown or revoked API token")
        request[API_TOKEN] = token
        return await handler(request)
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        request[SESSION] = session
    needed = access.role
    if needed is not None:
        if session is None:
            return _refuse(request, 401, "not-signed-in", "sign in first")
        if not session.principal.role.includes(needed):
            log.warning(
                "refused %s %s to %s (%s): needs %s",
                request.method, request.path, session.principal.name,
                session.principal.role.value, needed.value,
            )
            return _refuse(request, 403, "forbidden", f"this needs the {needed.value} role")
    if request.method not in SAFE_METHODS:
        refusal = _csrf_refusal(request, session)
        if refusal is not None:
            log.warning("refused %s %s from %s: %s",
                        request.method, request.path, request.remote, refusal)
            return error_response(403, "csrf-check-failed", refusal)
    return await handler(request)


def _bearer(request: web.Request) -> str | None:
    """The bearer token of the request's Authorization header, if it has one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _csrf_refusal(request: web.Request, session: Session | None) -> str | None:
    if not _same_origin(request):
        return "cross-site request refused"
    given = request.headers.get(CSRF_HEADER)
    expected = session.csrf_token if session is not None else request.cookies.get(
        LOGIN_CSRF_COOKIE
    )
    if expected is None or not tokens_match(given, expected):
        return f"missing or wrong {CSRF_HEADER} header; reload the page"
    return None


@web.middleware
async def monitor_error_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """The web front's own domain errors as JSON error bodies."""
    try:
        return await handler(request)
    except MonitorError as exc:
        status = STATUS_BY_CODE.get(exc.code, 503 if exc.code == "service-unavailable" else 500)
        return error_response(status, exc.code, exc.message, exc.details)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every answer carries (set just before it is sent, streams included)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if _is_api(request):
        headers.setdefault("Cache-Control", "no-store")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or `InvalidRequest`."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise InvalidRequest(f"the body must be at most {MAX_JSON_BODY} bytes")
    raw = await request.read()  # bounded by the application's client_max_size
    if len(raw) > MAX_JSON_BODY:
        raise InvalidRequest(f"the body must be at most {MAX_JSON_BODY} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def text_field(body: dict[str, Any], name: str, *, default: str | None = None) -> str:
    """A string field of a JSON body."""
    value = body.get(name, default)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", field=name)
    return value


# -- handlers ---------------------------------------------------------------------------------


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        name, value, path="/", httponly=True, samesite="Strict", secure=request.secure or None
    )


USER = obj(["name", "role", "agent_id", "home"], name=STRING,
           role={"type": "string", "enum": ["agent", "supervisor", "admin"]},
           agent_id=nullable(STRING), home=STRING)


@operation(
    "Who is signed in, and the CSRF token for the next requests", tags=("session",),
    returns=obj(["authenticated", "csrf_token"], authenticated=BOOLEAN, user=USER,
                csrf_token=STRING),
)
async def session_info(request: web.Request) -> web.Response:
    """GET /api/session: who is signed in and their CSRF token (or a sign-in token)."""
    session = request.get(SESSION)
    if session is not None:
        return web.json_response(
            {
                "authenticated": True,
                "user": principal_json(session.principal),
                "csrf_token": session.csrf_token,
            }
        )
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    response = web.json_response({"authenticated": False, "csrf_token": token})
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token)
    return response


@operation(
    "Sign in (sets the session cookie)", tags=("session",),
    body=obj(["name", "password"], name=STRING, password=STRING),
    returns=obj(["user", "csrf_token"], user=USER, csrf_token=STRING), errors=(401, 429),
)
async def login(request: web.Request) -> web.StreamResponse:
    """POST /api/login {"name", "password"}: a new session, throttled on failures."""
    state: WebFrontState = request.app[WEB]
    body = await read_json(request)
    name, password = text_field(body, "name"), text_field(body, "password")
    key = normalize_name(name)[:200]
    address = request.remote or "unknown"
    lockout = state.throttle.check(key, address)
    if lockout is not None:
        log.warning("sign-in throttled (%s) for %r from %s", lockout.key_kind, key, address)
        response = error_response(
            429, "login-throttled",
            f"too many failed sign-ins; try again in {math.ceil(lockout.retry_after)} s",
            {"retry_after": math.ceil(lockout.retry_after)},
        )
        response.headers["Retry-After"] = str(math.ceil(lockout.retry_after))
        return response
    principal = await state.accounts.authenticate(name, password)
    if principal is None:
        state.throttle.failed(key, address)
        log.warning("failed sign-in for %r from %s", key, address)
        return error_response(401, "invalid-credentials", "wrong user name or password")
    state.throttle.succeeded(key)
    previous = request.get(SESSION)
    if previous is not None:
        state.sessions.end(previous)
        state.feed.close_session(previous.id)
    session = state.sessions.create(principal)
    log.info("%s (%s) signed in from %s", principal.name, principal.role.value, address)
    response = web.json_response(
        {"user": principal_json(principal), "csrf_token": session.csrf_token}
    )
    _set_cookie(request, response, SESSION_COOKIE, session.id)
    return response


@operation("Sign out (ends the session and its event streams)", tags=("session",),
           returns=obj(["signed_out"], signed_out=BOOLEAN))
async def logout(request: web.Request) -> web.Response:
    """POST /api/logout: end this session (its event streams close too)."""
    session = request.get(SESSION)
    if session is not None:
        request.app[WEB].sessions.end(session)
        request.app[WEB].feed.close_session(session.id)
        request.app[WEB].streams.close_session(session.id)
    response = web.json_response({"signed_out": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def current_session(request: web.Request) -> Session:
    """The session of a request that passed a role check."""
    return request[SESSION]


def setup_auth_routes(app: web.Application) -> None:
    """Sign-in, sign-out and session routes."""
    add_route(app, "GET", "/api/session", session_info, Access.PUBLIC)
    add_route(app, "POST", "/api/login", login, Access.PUBLIC)
    add_route(app, "POST", "/api/logout", logout, Access.AGENT)
