"""Reading what reports are built from: call records, contact events and agent state changes.

Reports count contacts from their call records (written by the call controller when the call
ends, durable), queried by the time they entered the queue; the contact events stored by the
history recorder add each contact's rings, misses and wrap-up; agent state changes give the
agents' time. Rows are read in pages so a long period never needs one huge result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from commserver.contacts import CallRecord
from monitor.figures import Trail
from monitor.history import AgentStateLog, ContactEvent, bind_history
from monitor.periods import Interval, Period
from monitor.queue_stats import QueueDayStats, day_start
from monitor.reports import By, History, ReportSettings, build_report
from storage import Condition, StorageManager

PAGE = 5000
IN_CHUNK = 500


def bind_reports(storage: StorageManager) -> None:
    """Bind every dataclass reports read (idempotent)."""
    storage.bind(CallRecord, "CallRecord")
    bind_history(storage)


async def _paged(
    storage: StorageManager, cls: type[CallRecord], filters: list[Condition],
    where: dict[str, object] | None = None,
) -> list[CallRecord]:
    rows: list[CallRecord] = []
    while True:
        page = await storage.query(
            cls, where=where, filters=filters, order_by=["id"], limit=PAGE, offset=len(rows)
        )
        rows.extend(page)
        if len(page) < PAGE:
            return rows


async def load_records(
    storage: StorageManager, start: datetime, end: datetime, *, queue: str | None = None
) -> list[CallRecord]:
    """Records of contacts that entered a queue in `[start, end)`."""
    where: dict[str, object] | None = {"queue": queue} if queue is not None else None
    return await _paged(
        storage,
        CallRecord,
        [Condition("queued_at", ">=", start), Condition("queued_at", "<", end)],
        where,
    )


async def load_trails(storage: StorageManager, contact_ids: Iterable[str]) -> dict[str, Trail]:
    """Each contact's trail, from its stored events in the order they happened."""
    ids = list(dict.fromkeys(contact_ids))
    events: list[ContactEvent] = []
    for first in range(0, len(ids), IN_CHUNK):
        chunk = ids[first:first + IN_CHUNK]
        events += await storage.query(
            ContactEvent, filters=[Condition("contact_id", "in", chunk)], order_by=["at", "id"]
        )
    events.sort(key=lambda e: (e.at, e.id or 0))
    trails: dict[str, Trail] = {}
    for event in events:
        trails.setdefault(event.contact_id, Trail()).step(
            event.old_state, event.new_state, event.agent_id, event.at
        )
    return trails


async def load_agent_states(
    storage: StorageManager, start: datetime, end: datetime, agents: Sequence[str]
) -> tuple[dict[str, list[AgentStateLog]], dict[str, str]]:
    """Each agent's state changes in `[start, end)`, and the state each agent who was
    logged in at `start` was in then."""
    changes = await storage.query(
        AgentStateLog,
        filters=[Condition("at", ">=", start), Condition("at", "<", end)],
        order_by=["at", "id"],
    )
    by_agent: dict[str, list[AgentStateLog]] = {}
    for change in changes:
        by_agent.setdefault(change.agent_id, []).append(change)
    leads: dict[str, str] = {}
    for agent_id in dict.fromkeys([*agents, *by_agent]):
        before = await storage.query(
            AgentStateLog,
            where={"agent_id": agent_id},
            filters=[Condition("at", "<", start)],
            order_by=["-at", "-id"],
            limit=1,
        )
        if before and before[0].state != "logged-out":
            leads[agent_id] = before[0].state
    return by_agent, leads


async def load_history(
    storage: StorageManager,
    period: Period,
    *,
    now: datetime,
    queue: str | None = None,
    agents: Sequence[str] = (),
    with_agent_states: bool = True,
) -> History:
    """Everything a report of `period` needs."""
    bind_reports(storage)
    records = await load_records(storage, period.start, period.end, queue=queue)
    trails = await load_trails(storage, (r.contact_id for r in records))
    states: dict[str, list[AgentStateLog]] = {}
    leads: dict[str, str] = {}
    if with_agent_states:
        states, leads = await load_agent_states(
            storage, period.start, min(period.end, now), agents
        )
    return History(records=records, trails=trails, agent_states=states, now=now,
                   agent_leads=leads)


async def load_today(
    storage: StorageManager, stats: QueueDayStats, queues: list[str], *, now: datetime
) -> None:
    """Seed the live day's counts from today's stored contacts (the reports' own counting)."""
    start = day_start(stats.day, stats.tz)
    zone = start.tzinfo
    assert zone is not None  # day_start always answers an aware time
    period = Period(start, max(now, start), Interval.DAY, zone)
    history = await load_history(storage, period, now=now, with_agent_states=False)
    settings = ReportSettings(
        formula=stats.formula,
        thresholds={q: stats.threshold(q) for q in queues},
        default_threshold=stats.default_threshold,
        queues=queues,
    )
    report = build_report(By.QUEUE, period, history, settings)
    for total in report.totals:
        if total.key is not None:
            stats.seed(total.key, total.cell.tally)
