"""The pages: static HTML shells whose scripts fetch data from the API (no server templating,
so no customer data is ever pasted into HTML). Every asset is served from `monitor/static/`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from monitor.auth import Access, add_route, allow, home_of
from monitor.context import SESSION

STATIC = Path(__file__).with_name("static")


def _page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC / name

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    page.__doc__ = f"The {name} page."
    return page


async def root(request: web.Request) -> web.Response:
    """GET /: the signed-in user's home, or the sign-in page."""
    session = request.get(SESSION)
    raise web.HTTPFound(home_of(session.principal) if session is not None else "/login")


def setup_pages(app: web.Application) -> None:
    """Pages and static assets."""
    add_route(app, "GET", "/", root, Access.PUBLIC)
    add_route(app, "GET", "/login", _page("login.html"), Access.PUBLIC)
    add_route(app, "GET", "/monitor", _page("monitor.html"), Access.SUPERVISOR)
    add_route(app, "GET", "/desktop", _page("desktop.html"), Access.AGENT)
    add_route(app, "GET", "/reports", _page("reports.html"), Access.SUPERVISOR)
    app.router.add_static("/static/", STATIC, append_version=False)
    allow(app, "GET", "/static", Access.PUBLIC)
