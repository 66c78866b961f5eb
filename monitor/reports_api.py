"""HTTP of the reports (supervisor): figures per interval by queue or agent, CSV, drill-down,
the Asterisk-compatible queue_log and the voicemail report.

Every report reads the period's stored call records, contact events and agent state changes
(`monitor/report_data.py`) and counts them with the monitor's own definitions
(`monitor/reports.py`, `monitor/figures.py`); the service-level formula and each queue's T come
from the running configuration unless a report asks for another formula.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from acd.model import ServiceLevelFormula
from commserver.clock import utcnow
from commserver.contacts import CallRecord
from ivr.voicemail import VoicemailMessage
from monitor.api import to_json
from monitor.apidoc import (
    DATE_TIME,
    INTEGER,
    NUMBER,
    STRING,
    Param,
    Schema,
    array,
    nullable,
    obj,
    operation,
)
from monitor.auth import Access, add_route
from monitor.context import WEB, WebFrontState
from monitor.domain_errors import InvalidRequest
from monitor.figures import COUNTS
from monitor.periods import Interval, Period
from monitor.queue_log import queue_log
from monitor.report_data import load_history
from monitor.reports import AGENT_TIMES, By, ReportSettings, build_report, contacts_behind
from monitor.voicemail_api import desk_of

MAX_NAME = 120
MAX_DRILL = 1000

PERIOD = (
    Param("from", STRING, "start: a date (local midnight) or a date-time; default today"),
    Param("to", STRING, "end: a date (inclusive, the whole day) or a date-time (exclusive);"
                        " default the end of the day of 'from'"),
    Param("interval", {"type": "string", "enum": [i.value for i in Interval]},
          "row length: 15, 30, 60 minutes or a day; default 60 up to two days, else day"),
    Param("tz", STRING, "IANA time zone of dates and intervals (default: the server's)"),
)
FORMULA = Param(
    "formula", {"type": "string", "enum": [f.value for f in ServiceLevelFormula]},
    "service-level formula (default: [acd] service_level_formula)",
)
FORMAT = Param("format", {"type": "string", "enum": ["json", "csv"]}, "json (default) or csv")


def _row_schema(by: By) -> Schema:
    props: dict[str, Schema] = {
        "start": DATE_TIME,
        "end": DATE_TIME,
        by.value: nullable(STRING),
        **dict.fromkeys(COUNTS, INTEGER),
        "service_level": nullable(NUMBER),
        "service_level_seconds": nullable(NUMBER),
        "asa": nullable(NUMBER),
        "aht": nullable(NUMBER),
        "abandon_rate": nullable(NUMBER),
        "availability": nullable(NUMBER),
        "occupancy": nullable(NUMBER),
    }
    if by is By.AGENT:
        props.update({f"{name}_seconds": NUMBER for name in AGENT_TIMES})
    return obj(list(props), **props)


def _report_schema(by: By) -> Schema:
    row = _row_schema(by)
    return obj(
        ["by", "from", "to", "interval", "tz", "service_level_formula", "keys", "rows",
         "totals", "overall"],
        by=STRING, to=DATE_TIME, interval=STRING, tz=STRING,
        service_level_formula=STRING, keys=array(STRING), rows=array(row), totals=array(row),
        overall=row, **{"from": DATE_TIME},
    )


def _name(request: web.Request, param: str) -> str | None:
    value = request.query.get(param)
    if value is None or value == "":
        return None
    if len(value) > MAX_NAME:
        raise InvalidRequest(f"'{param}' is at most {MAX_NAME} characters", field=param)
    return value


def _choice(request: web.Request, param: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query.get(param, default) or default
    if value not in allowed:
        raise InvalidRequest(f"'{param}' must be one of {', '.join(allowed)}", field=param)
    return value


def _period(request: web.Request, now: datetime) -> Period:
    query = request.query
    return Period.parse(
        query.get("from") or None, query.get("to") or None, query.get("interval") or None,
        query.get("tz") or None, now=now,
    )


def _settings(request: web.Request) -> ReportSettings:
    state: WebFrontState = request.app[WEB]
    stats = state.floor.stats
    raw = _choice(request, "formula", tuple(f.value for f in ServiceLevelFormula),
                  stats.formula.value)
    return ReportSettings(
        formula=ServiceLevelFormula(raw),
        thresholds=dict(stats.thresholds),
        default_threshold=stats.default_threshold,
        queues=state.floor.queue_names(),
        agents=state.floor.agent_ids(),
    )


def _attachment(period: Period, kind: str, suffix: str) -> str:
    # Named by the local days it covers: the end is exclusive, so its last day ends before it.
    first = period.start.astimezone(period.tz).date().isoformat()
    last = (period.end - timedelta(microseconds=1)).astimezone(period.tz).date().isoformat()
    return f'attachment; filename="caruso-{kind}-{first}-{last}.{suffix}"'


async def _report(request: web.Request, by: By) -> web.Response:
    state: WebFrontState = request.app[WEB]
    now = utcnow()
    period = _period(request, now)
    settings = _settings(request)
    only = _name(request, by.value)
    output = _choice(request, "format", ("json", "csv"), "json")
    history = await load_history(
        state.storage, period, now=now,
        queue=only if by is By.QUEUE else None,
        agents=settings.agents,
    )
    report = build_report(by, period, history, settings, only=only)
    if output == "csv":
        return web.Response(
            text=report.to_csv(), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": _attachment(period, f"{by.value}s", "csv")},
        )
    return web.json_response(report.to_json())


@operation(
    "Figures per interval and queue over a period", tags=("reports",),
    description="Offered, answered, abandoned, transferred, voicemail, service level, ASA,"
                " AHT, abandon rate and occupancy per interval and queue, a total per queue"
                " and an overall total (docs/metrics.md). format=csv downloads it.",
    query=(*PERIOD, Param("queue", STRING, "only this queue"), FORMULA, FORMAT),
    returns=_report_schema(By.QUEUE), produces={"text/csv": STRING},
)
async def queue_report(request: web.Request) -> web.Response:
    """GET /api/reports/queues: a queue report."""
    return await _report(request, By.QUEUE)


@operation(
    "Figures per interval and agent over a period", tags=("reports",),
    description="Contacts offered to (rung at) each agent, answered, missed, abandoned while"
                " ringing, ASA, AHT, and from their state changes staffed, ready, paused and"
                " handling time, availability and occupancy.",
    query=(*PERIOD, Param("agent", STRING, "only this agent"), FORMULA, FORMAT),
    returns=_report_schema(By.AGENT), produces={"text/csv": STRING},
)
async def agent_report(request: web.Request) -> web.Response:
    """GET /api/reports/agents: an agent report."""
    return await _report(request, By.AGENT)


@operation(
    "The contacts behind one figure of a report", tags=("reports",),
    description="Drill-down: the call records a count of /api/reports/queues or"
                " /api/reports/agents counted, for the same period, interval, queue or agent.",
    query=(
        *PERIOD,
        Param("figure", {"type": "string", "enum": list(COUNTS)}, "the count", required=True),
        Param("by", {"type": "string", "enum": ["queue", "agent"]}, "queue (default) or agent"),
        Param("queue", STRING, "the row's queue (by=queue)"),
        Param("agent", STRING, "the row's agent (by=agent)"),
        Param("start", DATE_TIME, "the row's interval start; absent: the whole period"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_DRILL}, "page size"),
        Param("offset", {"type": "integer", "minimum": 0}, "records to skip"),
    ),
    returns=obj(
        ["figure", "by", "key", "start", "total", "limit", "offset", "contacts"],
        figure=STRING, by=STRING, key=nullable(STRING), start=nullable(DATE_TIME),
        total=INTEGER, limit=INTEGER, offset=INTEGER, contacts=array(CallRecord),
    ),
)
async def drill_down(request: web.Request) -> web.Response:
    """GET /api/reports/contacts: the records behind a figure."""
    state: WebFrontState = request.app[WEB]
    now = utcnow()
    period = _period(request, now)
    settings = _settings(request)
    figure = _choice(request, "figure", COUNTS, "")
    by = By(_choice(request, "by", ("queue", "agent"), "queue"))
    key = _name(request, by.value)
    start = _instant(request, "start", period)
    limit = _whole(request, "limit", 200, 1, MAX_DRILL)
    offset = _whole(request, "offset", 0, 0, 10**9)
    history = await load_history(
        state.storage, period, now=now, queue=key if by is By.QUEUE else None,
        with_agent_states=False,
    )
    found = contacts_behind(by, period, history, settings, figure=figure, key=key,
                            interval_start=start)
    found.sort(key=lambda r: (r.queued_at or r.arrived_at, r.contact_id))
    return web.json_response(
        {
            "figure": figure,
            "by": by.value,
            "key": key,
            "start": start.isoformat() if start is not None else None,
            "total": len(found),
            "limit": limit,
            "offset": offset,
            "contacts": [to_json(r) for r in found[offset:offset + limit]],
        }
    )


def _instant(request: web.Request, param: str, period: Period) -> datetime | None:
    raw = request.query.get(param)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"'{param}' must be an ISO 8601 date-time", field=param) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=period.tz)
    if not period.contains(moment):
        raise InvalidRequest(f"'{param}' must fall within the period", field=param)
    return moment


def _whole(request: web.Request, param: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(param)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'{param}' must be a whole number", field=param) from None
    if not low <= value <= high:
        raise InvalidRequest(f"'{param}' must be between {low} and {high}", field=param)
    return value


@operation(
    "The period as an Asterisk queue_log", tags=("reports",),
    description="One line per queue event (ENTERQUEUE, RINGNOANSWER, CONNECT, COMPLETECALLER,"
                " COMPLETEAGENT, TRANSFER, ABANDON, EXITWITHTIMEOUT) and agent event"
                " (AGENTLOGIN, AGENTLOGOFF, PAUSEALL, UNPAUSEALL); see docs/web.md.",
    query=(*PERIOD, Param("queue", STRING, "only this queue's contacts (agent lines kept)")),
    produces={"text/plain": STRING},
)
async def queue_log_export(request: web.Request) -> web.Response:
    """GET /api/reports/queue_log: an Asterisk-compatible queue_log download."""
    state: WebFrontState = request.app[WEB]
    now = utcnow()
    period = _period(request, now)
    queue = _name(request, "queue")
    history = await load_history(state.storage, period, now=now, queue=queue,
                                 agents=state.floor.agent_ids())
    text = "".join(
        f"{line}\n"
        for line in queue_log(history.records, history.trails, history.agent_states,
                              history.agent_leads)
    )
    return web.Response(
        text=text, content_type="text/plain", charset="utf-8",
        headers={"Content-Disposition": _attachment(period, "queue_log", "txt")},
    )


def _box_summary(messages: list[VoicemailMessage]) -> list[dict[str, Any]]:
    boxes: dict[str, dict[str, Any]] = {}
    for m in messages:
        box = boxes.setdefault(
            m.box, {"box": m.box, "messages": 0, "unheard": 0, "seconds": 0.0,
                    "oldest_unheard": None},
        )
        box["messages"] += 1
        box["seconds"] = round(box["seconds"] + m.seconds, 1)
        if m.heard_at is None:
            box["unheard"] += 1
            oldest = box["oldest_unheard"]
            if oldest is None or m.recorded_at.isoformat() < oldest:
                box["oldest_unheard"] = m.recorded_at.isoformat()
    return sorted(boxes.values(), key=lambda b: str(b["box"]))


BOX_SCHEMA = obj(
    ["box", "messages", "unheard", "seconds", "oldest_unheard"],
    box=STRING, messages=INTEGER, unheard=INTEGER, seconds=NUMBER,
    oldest_unheard=nullable(DATE_TIME),
)


@operation(
    "Voicemail left in a period, per box", tags=("reports", "voicemail"),
    query=PERIOD,
    returns=obj(["from", "to", "boxes", "messages"], to=DATE_TIME, boxes=array(BOX_SCHEMA),
                messages=array(VoicemailMessage),
                **{"from": DATE_TIME}),
)
async def voicemail_report(request: web.Request) -> web.Response:
    """GET /api/reports/voicemail: messages per box, heard and unheard."""
    period = _period(request, utcnow())
    messages = await desk_of(request).left_between(period.start, period.end)
    return web.json_response(
        {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "boxes": _box_summary(messages),
            "messages": [to_json(m) for m in messages],
        }
    )


def setup_report_routes(app: web.Application) -> None:
    """The reports' routes (supervisors and admins)."""
    add_route(app, "GET", "/api/reports/queues", queue_report, Access.SUPERVISOR)
    add_route(app, "GET", "/api/reports/agents", agent_report, Access.SUPERVISOR)
    add_route(app, "GET", "/api/reports/contacts", drill_down, Access.SUPERVISOR)
    add_route(app, "GET", "/api/reports/queue_log", queue_log_export, Access.SUPERVISOR)
    add_route(app, "GET", "/api/reports/voicemail", voicemail_report, Access.SUPERVISOR)

