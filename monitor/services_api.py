"""REST endpoints of the service manager: list, register (remote) and remove services.

GET /api/services lists services (`?check=1` pings them first). POST and DELETE need
`Authorization: Bearer <token>` with the token from `services.registration_token`; without a
configured token remote registration is refused. Errors are JSON
`{"error": <code>, "message": ..., "details": {...}}`.
"""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web

from monitor.apidoc import BOOLEAN, INTEGER, STRING, Param, array, obj, operation
from service_manager import ServiceManager
from service_manager.descriptors import parse_descriptor
from service_manager.errors import (
    DescriptorPersistenceError,
    DuplicateService,
    InterfaceMismatch,
    InvalidArguments,
    InvalidServiceDescriptor,
    NoSuchMethod,
    NoSuchService,
    ServiceError,
    ServiceNotRemovable,
    ServiceTimeout,
    ServiceUnavailable,
    UnknownInterface,
)
from service_manager.info import ServiceKind

log = logging.getLogger(__name__)

_MAX_BODY = 16 * 1024

#: HTTP status for each service-manager error; anything unlisted is a 500.
STATUS_BY_ERROR: dict[type[ServiceError], int] = {
    InvalidServiceDescriptor: 400,
    UnknownInterface: 400,
    InvalidArguments: 400,
    NoSuchService: 404,
    NoSuchMethod: 404,
    DuplicateService: 409,
    InterfaceMismatch: 409,
    ServiceNotRemovable: 409,
    ServiceUnavailable: 503,
    DescriptorPersistenceError: 503,
    ServiceTimeout: 504,
}


def error_response(
    status: int, code: str, message: str, details: dict[str, object] | None = None
) -> web.Response:
    """The API's error body."""
    return web.json_response(
        {"error": code, "message": message, "details": details or {}}, status=status
    )


def service_error_response(exc: ServiceError) -> web.Response:
    """Map a domain error onto its HTTP status."""
    status = next(
        (s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 500
    )
    return error_response(status, exc.code, exc.message, _jsonable(exc.details))


def _jsonable(details: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in details.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = str(value)
        out[key] = value
    return out


class ServicesHandler:
    """Handlers for /api/services, bound to one manager and one registration token."""

    def __init__(
        self,
        manager: ServiceManager,
        *,
        registration_token: str | None,
        token_config_key: str = "services.registration_token",
    ) -> None:
        self.manager = manager
        self._token = registration_token or None
        self._token_config_key = token_config_key

    def _refuse(self, request: web.Request) -> web.Response | None:
        """A 403 answer unless the request carries the configured bearer token."""
        if self._token is None:
            log.warning("refused %s %s from %s: no registration token is configured",
                        request.method, request.path, request.remote)
            return error_response(
                403, "remote-registration-disabled",
                "remote service registration is disabled: set"
                f" '{self._token_config_key}' in the configuration file to enable it",
                {"config_key": self._token_config_key},
            )
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._token.encode()
        ):
            # Never log what was presented: it may be a near-miss of the real token.
            log.warning("refused %s %s from %s: missing or wrong bearer token",
                        request.method, request.path, request.remote)
            return error_response(
                403, "forbidden",
                "a valid 'Authorization: Bearer <token>' header is required"
                f" (the token is '{self._token_config_key}' in Caruso's configuration)",
            )
        return None

    @operation(
        "Registered services (in-process and remote)", tags=("services",),
        query=(Param("check", STRING, "1: ping every service first"),),
        returns=obj(["services"], services=array({"type": "object"})),
    )
    async def list_services(self, request: web.Request) -> web.Response:
        """GET /api/services[?check=1]."""
        check = request.query.get("check", "").lower() in ("1", "true", "yes")
        infos = await self.manager.health() if check else self.manager.list()
        return web.json_response({"services": [info.to_json() for info in infos]})

    @operation(
        "Register (or re-register) a remote service", tags=("services",),
        body=obj(["name", "interface", "base_url"], name=STRING, interface=STRING,
                 base_url=STRING, version=STRING),
        returns=obj(["service", "created"], service={"type": "object"}, created=BOOLEAN),
        status=201, also=(200,), errors=(403, 409, 413, 503),
    )
    async def register_service(self, request: web.Request) -> web.Response:
        """POST /api/services with {"name", "interface", "base_url", "version"}."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        if request.content_length is not None and request.content_length > _MAX_BODY:
            return error_response(413, "request-too-large",
                                  f"a service descriptor is at most {_MAX_BODY} bytes")
        raw = await _read_body(request, _MAX_BODY)
        if raw is None:
            return error_response(413, "request-too-large",
                                  f"a service descriptor is at most {_MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "invalid-json", "the body must be a JSON object")
        try:
            descriptor = parse_descriptor(body)
            info, created = await self.manager.register_remote(descriptor)
        except ServiceError as exc:
            log.info("service registration refused: %s", exc.message)
            return service_error_response(exc)
        return web.json_response(
            {"service": info.to_json(), "created": created}, status=201 if created else 200
        )

    @operation(
        "Remove a remote service (after draining its calls)", tags=("services",),
        path={"name": "the service"},
        returns=obj(["removed", "drained", "abandoned_calls"], removed=STRING,
                    drained=BOOLEAN, abandoned_calls=INTEGER),
        errors=(403, 404, 409),
    )
    async def remove_service(self, request: web.Request) -> web.Response:
        """DELETE /api/services/{name}: remote services only."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        name = request.match_info["name"]
        try:
            if self.manager.kind_of(name) is not ServiceKind.REMOTE:
                raise ServiceNotRemovable(
                    f"service {name!r} runs in-process; it is wired by the server's"
                    " configuration and cannot be removed over HTTP", service=name,
                )
            report = await self.manager.remove(name)
        except ServiceError as exc:
            return service_error_response(exc)
        return web.json_response(
            {"removed": name, "drained": report.drained, "abandoned_calls": report.abandoned}
        )


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None once it grows past `limit` bytes (chunked bodies included)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def setup_service_routes(
    app: web.Application,
    manager: ServiceManager,
    *,
    registration_token: str | None,
    token_config_key: str = "services.registration_token",
) -> None:
    """Add GET/POST /api/services and DELETE /api/services/{name} to `app`."""
    handler = ServicesHandler(
        manager, registration_token=registration_token, token_config_key=token_config_key
    )
    app.router.add_get("/api/services", handler.list_services)
    app.router.add_post("/api/services", handler.register_service)
    app.router.add_delete("/api/services/{name}", handler.remove_service)
