"""The HTTP edge of the error taxonomy: domain errors in, JSON error bodies with a status out.

Every component's base error carries a kebab-case `code` and `details`; this module maps them
to a status (by code, falling back by kind) so no domain module knows about HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

log = logging.getLogger(__name__)

STATUS_BY_CODE: Mapping[str, int] = {
    # commserver
    "invalid-configuration": 400,
    "invalid-transition": 409,
    "no-such-contact": 404,
    "no-such-agent": 404,
    "call-gone": 410,
    "invalid-phone-number": 400,
    "unknown-extension": 400,
    "not-supported-by-backend": 409,
    "agent-not-on-call": 409,
    "no-supervisor-phone": 409,
    "spy-failed": 409,
    "no-such-spy-session": 404,
    # service_manager
    "no-such-service": 404,
    "no-such-method": 404,
    "unknown-interface": 400,
    "invalid-service-descriptor": 400,
    "invalid-service-arguments": 400,
    "service-interface-mismatch": 409,
    "duplicate-service": 409,
    "service-not-removable": 409,
    "service-unavailable": 503,
    "service-timeout": 504,
    "remote-service-error": 502,
    "remote-protocol-error": 502,
    "service-call-failed": 502,
    # storage
    "no-such-object": 404,
    "storage-conflict": 409,
    "invalid-attribute-value": 400,
    "invalid-storage-query": 400,
    "storage-unavailable": 503,
}


def error_response(status: int, code: str, message: str, details: object = None) -> web.Response:
    """A JSON error body every API client can rely on: `error`, `message`, `details`."""
    body = {"error": code, "message": message, "details": details or {}}
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, default=str))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors and aiohttp's own HTTP errors into JSON error bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code = exc.reason.lower().replace(" ", "-")
        return error_response(exc.status, code, exc.text or exc.reason)
    except Exception as exc:
        domain_code = getattr(exc, "code", None)
        if isinstance(domain_code, str) and domain_code in STATUS_BY_CODE:
            details = getattr(exc, "details", {})
            return error_response(STATUS_BY_CODE[domain_code], domain_code, str(exc), details)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal-error", "internal error; see the server log")
