"""REST endpoints of the foundation: health and the call log."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any

from aiohttp import web

from commserver import __version__
from commserver.contacts import CallRecord
from commserver.keys import CALL_LOG
from monitor.apidoc import INTEGER, STRING, Param, array, nullable, obj, operation
from service_manager import ServiceManager

SERVICES_APP_KEY = web.AppKey("services", ServiceManager)
MAX_PAGE = 500


def to_json(value: Any) -> Any:
    """Plain JSON for dataclasses, enums and datetimes (ISO 8601, UTC)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    return value


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"'{name}' must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"'{name}' must be between {low} and {high}, not {value}")
    return value


@operation(
    "Liveness: the server's version and every registered service's status", tags=("server",),
    returns=obj(["status", "version", "services"], status=STRING, version=STRING,
                services=array({"type": "object"})),
)
async def health(request: web.Request) -> web.Response:
    """Every registered service and its status; 200 while the server is up."""
    services = request.app[SERVICES_APP_KEY]
    infos = await services.health()
    body = {
        "status": "ok",
        "version": __version__,
        "services": [to_json(info) for info in infos],
    }
    return web.json_response(body)


@operation(
    "Stored call records, newest first", tags=("server",),
    query=(
        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "page size"),
        Param("offset", {"type": "integer", "minimum": 0, "maximum": 10**9}, "records to skip"),
    ),
    returns=obj(["calls", "total", "limit", "offset", "next"], calls=array(CallRecord),
                total=INTEGER, limit=INTEGER, offset=INTEGER, next=nullable(STRING)),
)
async def calls(request: web.Request) -> web.Response:
    """Stored call records, newest first, `limit`/`offset` paging with a `next` link."""
    limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    page = await request.app[SERVICES_APP_KEY].get(CALL_LOG).recent(limit=limit, offset=offset)
    following = offset + len(page.records)
    next_url = (
        str(request.rel_url.with_query(limit=limit, offset=following))
        if following < page.total
        else None
    )
    body = {
        "calls": [to_json(r) for r in page.records],
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "next": next_url,
    }
    return web.json_response(body)


def setup_api_routes(app: web.Application) -> None:
    """Mount the foundation's endpoints."""
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/calls", calls)
