"""The web front's controller: builds the aiohttp application and owns its listening socket.

`build_app` wires every route with its access rule (see `monitor/auth.py`) and its OpenAPI
description, the shared state (`monitor/context.py`) and the start-up/shutdown of the parts
that run: accounts, API tokens and dispositions over storage, today's queue
figures, the history recorder (agent states and contact events for reports) and the live
feed. Components are found through the service manager (`CALLS`, `EVENT_BUS`, `STORAGE`,
optionally `customer-directory`); a web front built without them still serves, and what needs
them answers 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import date
from types import TracebackType

from aiohttp import web

from commserver.clock import utcnow
from commserver.keys import EVENT_BUS, STORAGE
from commserver.tasks import TaskSet
from monitor.accounts import MODEL_FILE, AccountStore
from monitor.api import SERVICES_APP_KEY, setup_api_routes
from monitor.auth import (
    ACCESS,
    Access,
    allow,
    auth_middleware,
    check_every_route_guarded,
    monitor_error_middleware,
    security_headers,
    setup_auth_routes,
)
from monitor.context import WEB, WebFrontState
from monitor.desktop_api import setup_desktop_routes
from monitor.dispositions import Dispositions
from monitor.errors import error_middleware
from monitor.feed import PUSH_INTERVAL, LiveFeed
from monitor.floor import Floor
from monitor.floor_api import setup_floor_routes
from monitor.history import HistoryRecorder
from monitor.integrations_api import EventStreams, setup_integration_routes
from monitor.openapi import setup_openapi
from monitor.pages import setup_pages
from monitor.prometheus import HTTP_STATS, HttpStats, count_requests
from monitor.queue_stats import SERVICE_LEVEL_SECONDS, QueueDayStats
from monitor.report_data import bind_reports, load_today
from monitor.reports_api import setup_report_routes
from monitor.scripts_api import setup_script_routes
from monitor.scripts_doc import describe_script_routes
from monitor.sessions import SessionStore
from monitor.supervision_api import setup_supervision_routes
from monitor.throttle import LoginThrottle
from monitor.tokens import TokenStore
from monitor.users_api import setup_user_routes
from monitor.voicemail_api import setup_voicemail_routes
from service_manager import ServiceManager
from storage import StorageError

log = logging.getLogger(__name__)

SESSION_SWEEP_INTERVAL = 300.0
#: The web front's business-object model (accounts), for the composition root's model list.
WEB_MODEL = MODEL_FILE


def build_app(
    services: ServiceManager,
    *,
    registration_token: str | None,
    service_level_seconds: float = SERVICE_LEVEL_SECONDS,
    push_interval: float = PUSH_INTERVAL,
    sessions: SessionStore | None = None,
    throttle: LoginThrottle | None = None,
) -> web.Application:
    """The aiohttp application with every route of the web front."""
    from monitor.services_api import setup_service_routes

    app = web.Application(
        middlewares=[count_requests, error_middleware, monitor_error_middleware, auth_middleware],
        client_max_size=1024**2,
    )
    app[SERVICES_APP_KEY] = services
    app[ACCESS] = {}
    app[HTTP_STATS] = HttpStats()
    floor = Floor(services, QueueDayStats(today=date.today(), sl_seconds=service_level_seconds))
    app[WEB] = WebFrontState(
        sessions=sessions or SessionStore(),
        throttle=throttle or LoginThrottle(),
        floor=floor,
        feed=LiveFeed(floor, services, interval=push_interval),
        streams=EventStreams(),
    )

    setup_api_routes(app)
    allow(app, "GET", "/api/health", Access.PUBLIC)  # liveness probes carry no session
    allow(app, "GET", "/api/calls", Access.SUPERVISOR)  # caller numbers are customer data
    setup_service_routes(app, services, registration_token=registration_token)
    allow(app, "GET", "/api/services", Access.ADMIN)
    allow(app, "POST", "/api/services", Access.BEARER)
    allow(app, "DELETE", "/api/services/{name}", Access.BEARER)
    setup_auth_routes(app)
    setup_floor_routes(app)
    setup_desktop_routes(app)
    setup_supervision_routes(app)
    setup_user_routes(app)
    setup_script_routes(app)
    describe_script_routes(app)
    setup_report_routes(app)
    setup_voicemail_routes(app)
    setup_integration_routes(app)
    setup_openapi(app)
    setup_pages(app)
    check_every_route_guarded(app)

    app.on_response_prepare.append(security_headers)
    app.cleanup_ctx.append(_running)
    app.on_shutdown.append(_release_streams)
    return app


async def _running(app: web.Application) -> AsyncIterator[None]:
    """Start what runs behind the routes; stop it when the application stops."""
    state = app[WEB]
    services = app[SERVICES_APP_KEY]
    floor = state.floor
    storage = services.get(STORAGE) if STORAGE in services else None
    bus = services.get(EVENT_BUS) if EVENT_BUS in services else None
    if floor.available:
        floor.configure_stats()
    if storage is not None:
        state.storage_manager = storage
        state.accounts_store = AccountStore(storage)
        state.tokens_store = TokenStore(storage)
        state.dispositions_store = Dispositions(storage, floor.contact)
        bind_reports(storage)
        if floor.available:
            try:
                await load_today(storage, floor.stats, floor.queue_names(), now=utcnow())
            except StorageError as exc:
                log.warning("today's queue figures start from zero: %s", exc.message)
    else:
        log.warning("no storage registered: signing in and reports are unavailable")
    tasks = TaskSet("web-front")
    tasks.spawn(_sweep_sessions(state.sessions), name="session-sweep")
    try:
        async with AsyncExitStack() as stack:
            if storage is not None and bus is not None:
                recorder = HistoryRecorder(
                    storage, bus, agent_states=lambda: {a.id: a.state.value for a in floor.agents()}
                )
                state.history = await stack.enter_async_context(recorder.running())
            if state.dispositions_store is not None:
                await stack.enter_async_context(state.dispositions_store.running(bus))
            await stack.enter_async_context(state.feed.running())
            yield
    finally:
        await tasks.cancel_all()


async def _sweep_sessions(sessions: SessionStore) -> None:
    while True:
        await asyncio.sleep(SESSION_SWEEP_INTERVAL)
        sessions.sweep()


async def _release_streams(app: web.Application) -> None:
    """Before connections are closed at shutdown: end every event stream."""
    app[WEB].feed.close_clients()
    app[WEB].streams.close_all()


class WebFront:
    """Start/stop of the HTTP listener; `url` is known once it is ready (port 0 works)."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
        self.url = ""

    async def __aenter__(self) -> WebFront:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        self.url = f"http://{self.host}:{port}"
        log.info("web front listening on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._runner.cleanup()
