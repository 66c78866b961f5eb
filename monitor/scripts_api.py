"""HTTP of dialog scripts: the agent desktop's script pane, the public self-service page and
per-step analytics. Channels only render a step and submit answers; the `ScriptRunner`
(registered under `SCRIPTS`) does everything else.

Both come from the `DialogScripts` component registered under `SCRIPTS` (the runner and the
placement of scripts on queues, numbers and the public page); without it these routes answer
503.

Desktop (agent role; a run belongs to the agent who started it):

* `POST /api/scripts/contacts/{contact_id}`: the run of the queue's script for one's own
  current contact, started on the first ask and resumed after that (a reload, a second tab);
* `GET /api/scripts/runs/{run_id}`: a run and its current step (supervisors: any run);
* `POST /api/scripts/runs/{run_id}/answer` `{"step", "value"}` and `.../back`.

Supervisors: `GET /api/scripts` (what is loaded and where it runs) and
`GET /api/scripts/{script_id}/stats` (per-step analytics).

Public self-service (no sign-in; only scripts placed as public that run on the `web` channel;
anything else is 404 as if it did not exist): the page `GET /self-service/{script_id}`,
`GET /api/self-service/{script_id}`, `POST .../start`, `.../answer`, `.../back`. The visitor's
run id lives only in an HttpOnly cookie scoped to that script's API path, so a page can reach
its own run and nothing else; state-changing requests carry the double-submit CSRF token
like the sign-in page; every address is rate-limited. Hints (meant for agents) and actions
(what services answered) are never sent to the public page.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from commserver.contacts import Contact
from commserver.keys import SCRIPTS
from monitor.accounts import Role
from monitor.api import SERVICES_APP_KEY
from monitor.auth import Access, add_route, current_session, read_json, text_field
from monitor.context import WEB, WebFrontState, WebFrontUnavailable
from monitor.domain_errors import NoAgentLinked
from monitor.errors import error_response
from monitor.pages import STATIC
from monitor.screen_pop import PopStatus
from scripts_engine import (
    Channel,
    DialogScripts,
    NoSuchRun,
    NoSuchScript,
    Run,
    ScriptError,
    ScriptPlacement,
    ScriptRunner,
)
from scripts_engine.validation import CALL_FIELDS

log = logging.getLogger(__name__)

#: HTTP status of each script-engine error code (the engine knows nothing of HTTP).
STATUS_BY_CODE: dict[str, int] = {
    "invalid-answer": 400,
    "invalid-request": 400,
    "not-current-step": 409,
    "cannot-go-back": 409,
    "script-run-ended": 409,
    "channel-not-supported": 409,
    "script-runtime-error": 409,
    "no-such-script-run": 404,
    "no-such-dialog-script": 404,
    "no-script-for-queue": 404,
    "not-your-contact": 403,
    "too-many-requests": 429,
}

SELF_SERVICE_COOKIE = "caruso_run"
#: Requests of any kind to the public API per address and minute.
PUBLIC_REQUESTS_PER_MINUTE = 120
#: New self-service runs per address within `PUBLIC_START_WINDOW` seconds.
PUBLIC_STARTS = 20
PUBLIC_START_WINDOW = 600.0
#: Addresses remembered by a rate limit (the oldest are forgotten first).
MAX_ADDRESSES = 50_000
#: Answer values larger than this (as text) are refused before the engine sees them.
MAX_ANSWER_CHARS = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ScriptsApiError(Exception):
    """A refusal of this API that is not the engine's: a code and a message."""

    def __init__(self, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, object] = dict(details)


class RateLimit:
    """At most `limit` hits per key within a sliding `window` of seconds (pure: clock in)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> float:
        """Count a hit; 0 if allowed, else the seconds until the key may try again."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        self._hits.move_to_end(key)
        if len(hits) >= self.limit:
            return self.window - (now - hits[0]) if hits else self.window
        hits.append(now)
        while len(self._hits) > MAX_ADDRESSES:
            self._hits.popitem(last=False)
        return 0.0


@dataclass(eq=False)
class SelfServiceLimits:
    """The public page's rate limits per address."""

    requests: RateLimit
    starts: RateLimit

    @classmethod
    def default(cls) -> SelfServiceLimits:
        """The documented limits."""
        return cls(
            RateLimit(PUBLIC_REQUESTS_PER_MINUTE, 60.0),
            RateLimit(PUBLIC_STARTS, PUBLIC_START_WINDOW),
        )


LIMITS = web.AppKey("self-service-limits", SelfServiceLimits)


def _with_errors(handler: Handler) -> Handler:
    """Script-engine errors and this API's refusals as JSON error bodies."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ScriptError, ScriptsApiError) as exc:
            status = STATUS_BY_CODE.get(exc.code, 400)
            response = error_response(status, exc.code, exc.message, exc.details)
            retry = exc.details.get("retry_after")
            if status == 429 and isinstance(retry, int):
                response.headers["Retry-After"] = str(retry)
            return response

    return wrapped


def _scripts(request: web.Request) -> DialogScripts:
    services = request.app[SERVICES_APP_KEY]
    if SCRIPTS not in services:
        raise WebFrontUnavailable("dialog scripts are unavailable: no script engine is running")
    return services.get(SCRIPTS)


def _runner(request: web.Request) -> ScriptRunner:
    return _scripts(request).runner


def _placement(request: web.Request) -> ScriptPlacement:
    return _scripts(request).placement


# -- JSON ---------------------------------------------------------------------------------


def _run_json(run: Run, *, public: bool, since: int = 0) -> dict[str, Any]:
    """A run and its current step; for agents also who and the actions carried out (from
    index `since` of this process's record of them)."""
    state = run.state
    view = run.view().to_json()
    info: dict[str, Any] = {
        "id": run.id,
        "script_id": run.script.id,
        "script_version": run.script.version,
        "title": run.script.title,
        "channel": state.channel.value,
        "status": state.status.value,
        "disposition": state.disposition,
        "path": list(state.path),
        "answers": dict(state.answers),
    }
    if public:
        # Hints are for agents, and what services answered may be anyone's data (an account
        # number typed in): neither reaches the public page.
        view.pop("hint", None)
        view.pop("phone_text", None)
        return {"run": info, "view": view}
    info.update(
        agent=state.agent,
        customer_id=state.customer_id,
        contact_id=state.call.get("contact_id") or None,
    )
    actions = [
        {"name": name, "result": result.to_json()} for name, result in run.actions[since:]
    ]
    return {"run": info, "view": view, "actions": actions}


def _answer_body(body: dict[str, Any]) -> tuple[str, object]:
    step = text_field(body, "step")
    value = body.get("value")
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ScriptsApiError("invalid-request", "'value' must be a string, number or boolean")
    if isinstance(value, str) and len(value) > MAX_ANSWER_CHARS:
        raise ScriptsApiError(
            "invalid-request", f"'value' must be at most {MAX_ANSWER_CHARS} characters"
        )
    return step, value


# -- the desktop pane ---------------------------------------------------------------------


def _own_agent(request: web.Request) -> str:
    agent_id = current_session(request).principal.agent_id
    if agent_id is None:
        raise NoAgentLinked("this account is not linked to an agent; ask an admin")
    return agent_id


def _call_data(contact: Contact, now: datetime) -> dict[str, object]:
    """What `call.` expressions see of a live contact."""
    waited_until = contact.answered_at or now
    wait = (waited_until - contact.queued_at).total_seconds() if contact.queued_at else 0.0
    data: dict[str, object] = {
        "caller": contact.caller,
        "called": contact.dialed,
        "queue": contact.queue or "",
        "wait_seconds": max(int(wait), 0),
    }
    return {k: v for k, v in data.items() if k in CALL_FIELDS}


def _customer_of(state: WebFrontState, contact: Contact) -> str | None:
    """The customer of a contact: as the IVR identified it, else as the screen pop found it."""
    if contact.customer_id:
        return contact.customer_id
    pop = state.feed.pops.get(contact.id)
    if pop is None or pop.status is not PopStatus.FOUND or not pop.customer:
        return None
    key = pop.customer.get("id")
    return str(key) if key is not None and str(key) else None


@_with_errors
async def contact_run(request: web.Request) -> web.Response:
    """POST /api/scripts/contacts/{contact_id}: the queue's script for one's current contact."""
    state: WebFrontState = request.app[WEB]
    agent_id = _own_agent(request)
    contact_id = request.match_info["contact_id"]
    if state.floor.agent(agent_id).contact_id != contact_id:
        raise ScriptsApiError(
            "not-your-contact", "this contact is not yours (any more)", contact_id=contact_id
        )
    contact = state.floor.contact(contact_id)
    if contact is None:
        raise ScriptsApiError("not-your-contact", "this contact has ended", contact_id=contact_id)
    script_id = _placement(request).for_queue(contact.queue)
    if script_id is None:
        raise ScriptsApiError(
            "no-script-for-queue",
            f"queue {contact.queue or '(none)'} has no dialog script",
            queue=contact.queue,
        )
    run, created = await _runner(request).for_contact(
        script_id,
        Channel.AGENT,
        contact_id,
        agent=agent_id,
        customer=_customer_of(state, contact),
        call=_call_data(contact, datetime.now(UTC)),
    )
    if created:
        log.info("agent %s started script %s (run %s) for a contact", agent_id, script_id, run.id)
    elif run.state.agent != agent_id:
        # The contact moved to this agent (a transfer, a re-offer): the run stays the other
        # agent's; this agent gets to see it read-only through a supervisor, not here.
        raise ScriptsApiError(
            "not-your-contact", "this contact's script was started by another agent"
        )
    return web.json_response(_run_json(run, public=False), dumps=_dumps)


async def _agent_run(request: web.Request, *, write: bool) -> Run:
    """The run named in the path, if the signed-in user may see (or change) it."""
    session = current_session(request)
    run_id = request.match_info["run_id"]
    runner = _runner(request)
    try:
        run = await runner.resume(run_id)
    except NoSuchScript:
        raise NoSuchRun(f"no run {run_id!r} (its script is no longer loaded)") from None
    mine = run.state.agent is not None and run.state.agent == session.principal.agent_id
    supervisor = session.principal.role.includes(Role.SUPERVISOR)
    if not mine and (write or not supervisor):
        # Others' runs do not exist for an agent (no hint that the id is valid).
        raise NoSuchRun(f"no run {run_id!r}", run=run_id)
    return run


@_with_errors
async def get_run(request: web.Request) -> web.Response:
    """GET /api/scripts/runs/{run_id}: a run and its current step."""
    run = await _agent_run(request, write=False)
    return web.json_response(_run_json(run, public=False), dumps=_dumps)


@_with_errors
async def answer_run(request: web.Request) -> web.Response:
    """POST /api/scripts/runs/{run_id}/answer {"step", "value"}: answer the current step."""
    step, value = _answer_body(await read_json(request))
    run = await _agent_run(request, write=True)
    before = len(run.actions)
    await run.answer(step, value)
    return web.json_response(_run_json(run, public=False, since=before), dumps=_dumps)


@_with_errors
async def back_run(request: web.Request) -> web.Response:
    """POST /api/scripts/runs/{run_id}/back: return to the previous step."""
    run = await _agent_run(request, write=True)
    await run.back()
    return web.json_response(_run_json(run, public=False, since=len(run.actions)), dumps=_dumps)


# -- supervisors ----------------------------------------------------------------------------


@_with_errors
async def list_scripts(request: web.Request) -> web.Response:
    """GET /api/scripts: the loaded scripts and where each one runs."""
    placement = _placement(request)
    scripts = []
    for script in sorted(_runner(request).catalog, key=lambda s: s.id):
        scripts.append(
            {
                "id": script.id,
                "version": script.version,
                "title": script.title,
                "channels": sorted(c.value for c in script.channels),
                "queues": sorted(q for q, s in placement.queues.items() if s == script.id),
                "numbers": sorted(n for n, s in placement.numbers.items() if s == script.id),
                "public": placement.is_public(script.id),
                "steps": len(script.steps),
            }
        )
    return web.json_response({"scripts": scripts})


def _day_param(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        raise ScriptsApiError(
            "invalid-request", f"'{name}' must be a date (YYYY-MM-DD), not {raw!r}"
        ) from None


@_with_errors
async def script_stats(request: web.Request) -> web.Response:
    """GET /api/scripts/{script_id}/stats[?since&until&version]: per-step analytics."""
    runner = _runner(request)
    script_id = request.match_info["script_id"]
    version = request.query.get("version") or None
    script = runner.catalog.get(script_id, version)
    since = _day_param(request, "since")
    until = _day_param(request, "until")
    if since is not None and until is not None and until <= since:
        raise ScriptsApiError("invalid-request", "'until' must be after 'since'")
    rows = await runner.step_stats(script_id, version=version, since=since, until=until)
    steps = []
    for row in rows:
        entry = row.to_json()
        known = script.steps.get(row.step_id)
        entry["title"] = known.title if known is not None else None
        entry["kind"] = known.kind.value if known is not None else None
        steps.append(entry)
    return web.json_response(
        {
            "script": script_id,
            "version": version,
            "since": since.date().isoformat() if since else None,
            "until": until.date().isoformat() if until else None,
            "steps": steps,
        }
    )


# -- the public self-service page -------------------------------------------------------------


def _public_script(request: web.Request) -> str:
    """The script of the path, if it is public and runs on the web; else 404."""
    script_id = request.match_info["script_id"]
    runner = _runner(request)
    if _placement(request).is_public(script_id):
        try:
            if Channel.WEB in runner.catalog.get(script_id).channels:
                return script_id
        except NoSuchScript:
            pass
    # Not public and unknown look the same: nobody learns which private scripts exist.
    raise NoSuchScript(f"no public dialog script {script_id!r}", script=script_id)


def _limit(request: web.Request, *, start: bool = False) -> None:
    limits = request.app[LIMITS]
    address = request.remote or "unknown"
    wait = limits.requests.hit(address)
    if start and not wait:
        wait = limits.starts.hit(address)
    if wait:
        log.warning("self-service requests from %s throttled", address)
        retry = math.ceil(wait)
        raise ScriptsApiError(
            "too-many-requests",
            f"too many requests from your address; try again in {retry} s",
            retry_after=retry,
        )


def _cookie_path(script_id: str) -> str:
    return f"/api/self-service/{script_id}"


async def _visitor_run(request: web.Request, script_id: str) -> Run | None:
    """The run the visitor's cookie names, if it is a web run of this script."""
    run_id = request.cookies.get(SELF_SERVICE_COOKIE)
    if not run_id or len(run_id) > 64 or not run_id.isalnum():
        return None
    try:
        run = await _runner(request).resume(run_id)
    except (NoSuchRun, NoSuchScript):
        return None
    if run.state.channel is not Channel.WEB or run.script.id != script_id:
        return None
    return run


def _public_json(script_id: str, runner: ScriptRunner, run: Run | None) -> Any:
    script = runner.catalog.get(script_id)
    body: dict[str, Any] = {"script": {"id": script.id, "title": script.title}}
    if run is None:
        body.update(run=None, view=None)
    else:
        body.update(_run_json(run, public=True))
    return body


@_with_errors
async def self_service_page(request: web.Request) -> web.StreamResponse:
    """GET /self-service/{script_id}: the page, for public web scripts only."""
    try:
        _public_script(request)
    except NoSuchScript:
        return web.Response(status=404, text="404: no such self-service page\n")
    return web.FileResponse(STATIC / "selfservice.html", headers={"Cache-Control": "no-cache"})


@_with_errors
async def self_service_state(request: web.Request) -> web.Response:
    """GET /api/self-service/{script_id}: the script and the visitor's run, if any."""
    _limit(request)
    script_id = _public_script(request)
    run = await _visitor_run(request, script_id)
    return web.json_response(_public_json(script_id, _runner(request), run), dumps=_dumps)


@_with_errors
async def self_service_start(request: web.Request) -> web.Response:
    """POST /api/self-service/{script_id}/start: a new run for this visitor."""
    _limit(request, start=True)
    script_id = _public_script(request)
    runner = _runner(request)
    previous = await _visitor_run(request, script_id)
    if previous is not None and previous.status.active:
        await previous.abandon()  # starting over leaves the old run, unfinished
    run = await runner.start(script_id, Channel.WEB)
    response = web.json_response(_public_json(script_id, runner, run), dumps=_dumps)
    response.set_cookie(
        SELF_SERVICE_COOKIE,
        run.id,
        path=_cookie_path(script_id),
        httponly=True,
        samesite="Strict",
        secure=request.secure or None,
    )
    return response


async def _required_visitor_run(request: web.Request, script_id: str) -> Run:
    run = await _visitor_run(request, script_id)
    if run is None:
        raise NoSuchRun("no run on this page yet: start the script first")
    return run


@_with_errors
async def self_service_answer(request: web.Request) -> web.Response:
    """POST /api/self-service/{script_id}/answer {"step", "value"}."""
    _limit(request)
    script_id = _public_script(request)
    step, value = _answer_body(await read_json(request))
    run = await _required_visitor_run(request, script_id)
    await run.answer(step, value)
    return web.json_response(_public_json(script_id, _runner(request), run), dumps=_dumps)


@_with_errors
async def self_service_back(request: web.Request) -> web.Response:
    """POST /api/self-service/{script_id}/back."""
    _limit(request)
    script_id = _public_script(request)
    run = await _required_visitor_run(request, script_id)
    await run.back()
    return web.json_response(_public_json(script_id, _runner(request), run), dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def setup_script_routes(app: web.Application, *, limits: SelfServiceLimits | None = None) -> None:
    """Mount the script pane's, the supervisors' and the self-service routes."""
    app[LIMITS] = limits or SelfServiceLimits.default()
    # Fixed paths before the {script_id} ones, so that "runs" is never read as a script id.
    add_route(app, "POST", "/api/scripts/contacts/{contact_id}", contact_run, Access.AGENT)
    add_route(app, "GET", "/api/scripts/runs/{run_id}", get_run, Access.AGENT)
    add_route(app, "POST", "/api/scripts/runs/{run_id}/answer", answer_run, Access.AGENT)
    add_route(app, "POST", "/api/scripts/runs/{run_id}/back", back_run, Access.AGENT)
    add_route(app, "GET", "/api/scripts", list_scripts, Access.SUPERVISOR)
    add_route(app, "GET", "/api/scripts/{script_id}/stats", script_stats, Access.SUPERVISOR)
    add_route(app, "GET", "/self-service/{script_id}", self_service_page, Access.PUBLIC)
    add_route(app, "GET", "/api/self-service/{script_id}", self_service_state, Access.PUBLIC)
    add_route(
        app, "POST", "/api/self-service/{script_id}/start", self_service_start, Access.PUBLIC
    )
    add_route(
        app, "POST", "/api/self-service/{script_id}/answer", self_service_answer, Access.PUBLIC
    )
    add_route(app, "POST", "/api/self-service/{script_id}/back", self_service_back, Access.PUBLIC)
