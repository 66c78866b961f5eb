"""The server side of the remote-service protocol, for integrators writing Python services.

`service_app(spec, impl)` is an aiohttp application that serves `impl` the way Caruso calls
remote services: `POST /{method}` with `{"args": {...}}` and `GET /health`. Any language
will do for a remote service; this is a convenience, and what the shipped example uses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from service_manager.codecs import CodecError, JSONValue
from service_manager.errors import InvalidArguments, ServiceError
from service_manager.interfaces import InterfaceSpec

log = logging.getLogger(__name__)

_MAX_BODY = 256 * 1024


def error_response(status: int, code: str, message: str) -> web.Response:
    """A protocol error answer: `{"error": {"code", "message"}}`."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def service_app(
    spec: InterfaceSpec,
    impl: object,
    *,
    health: Callable[[], Awaitable[object]] | None = None,
) -> web.Application:
    """An aiohttp app serving `impl` under the remote-service protocol for `spec`."""
    spec.check_implementation(impl, service=spec.name)
    app = web.Application(client_max_size=_MAX_BODY)

    async def call(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        method_spec = spec.method(method)
        if method_spec is None:
            return error_response(
                404, "no-such-method", f"{spec.id} has no method {method[:60]!r}"
            )
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "invalid-json", "the body must be a JSON object")
        if not isinstance(body, dict) or not isinstance(body.get("args", {}), dict):
            return error_response(400, "invalid-request", 'the body must be {"args": {...}}')
        try:
            values = method_spec.decode_arguments(body.get("args", {}))
        except InvalidArguments as exc:
            return error_response(400, exc.code, exc.message)
        try:
            result = await getattr(impl, method)(**values)
        except ServiceError as exc:
            return error_response(422, exc.code, exc.message)
        except Exception:
            log.exception("%s.%s failed", spec.id, method)
            return error_response(500, "internal-error", f"{method} failed; see the service's log")
        try:
            encoded: JSONValue = method_spec.result.encode(result, "result")
        except CodecError as exc:
            log.error("%s.%s returned a value that does not match its spec: %s", spec.id, method,
                      exc)
            return error_response(500, "internal-error", f"{method} returned an invalid result")
        return web.json_response({"result": encoded})

    async def health_check(request: web.Request) -> web.Response:
        detail = ""
        if health is not None:
            try:
                verdict: Any = await health()
            except Exception as exc:
                return web.json_response({"status": "down", "detail": str(exc)[:200]}, status=503)
            if verdict is False:
                return web.json_response({"status": "down", "detail": "unhealthy"}, status=503)
            detail = verdict if isinstance(verdict, str) else ""
        return web.json_response({"status": "up", "interface": spec.id, "detail": detail})

    app.router.add_get("/health", health_check)
    app.router.add_post("/{method}", call)
    return app

