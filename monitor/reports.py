"""Historical reports: figures per interval, per queue or per agent, over any period.

Pure: `build_report` takes what `monitor/report_data.py` loaded (call records, the contact
events' trails, agent state changes) and counts every contact with `monitor/figures.py`, the
code the live monitor counts with. A contact belongs to the interval in which it entered the
queue; agent times (staffed, ready, paused, on contacts) are spread over the intervals they
cover. `contacts_behind` answers a drill-down with exactly the contacts a figure counted.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acd.model import ServiceLevelFormula
from commserver.contacts import CallRecord, Outcome
from monitor.figures import (
    COUNTS,
    AgentTime,
    ContactFacts,
    Fate,
    Tally,
    Trail,
    counted_in,
    fate_of,
)
from monitor.history import AgentStateLog
from monitor.periods import IntervalIndex, Period


class By(enum.Enum):
    """What a report's rows are about."""

    QUEUE = "queue"
    AGENT = "agent"


#: Rates and times a row carries besides the counts.
RATES = ("service_level", "asa", "aht", "abandon_rate", "availability", "occupancy")
AGENT_TIMES = ("staffed", "ready", "reserved", "busy", "wrap_up", "paused")


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """What the site's configuration says about figures: the formula and each queue's T."""

    formula: ServiceLevelFormula
    thresholds: Mapping[str, float]
    default_threshold: float = 20.0
    queues: Sequence[str] = ()
    agents: Sequence[str] = ()

    def threshold(self, queue: str | None) -> float:
        """A queue's service-level threshold T in seconds."""
        return self.thresholds.get(queue or "", self.default_threshold)


@dataclass(frozen=True, slots=True)
class History:
    """What a report is built from (see `report_data.load_history`)."""

    records: Sequence[CallRecord]
    trails: Mapping[str, Trail]
    agent_states: Mapping[str, Sequence[AgentStateLog]]  # changes in the period, by time
    now: datetime
    agent_leads: Mapping[str, str] = field(default_factory=dict)  # state held at the start


def facts_of(record: CallRecord, trail: Trail | None) -> ContactFacts:
    """A stored contact as the figures see it (its trail adds rings, misses and wrap-up)."""
    answered = record.answered_at is not None
    fate = fate_of(record.outcome, answered)
    handle: float | None = None
    if answered:
        wrap: float | None = 0.0
        if trail is not None and trail.wrap_started is not None:
            wrap = trail.wrap_up_seconds  # None while the wrap-up is still running
        handle = None if wrap is None else record.talk_seconds + wrap
    offered_to = trail.offered_to if trail is not None else frozenset()
    if record.agent_id is not None and fate in (Fate.ANSWERED, Fate.ABANDONED):
        offered_to |= {record.agent_id}
    return ContactFacts(
        contact_id=record.contact_id,
        queue=record.queue,
        agent_id=record.agent_id,
        fate=fate,
        wait=record.wait_seconds,
        handle=handle,
        transferred=answered and record.outcome == Outcome.TRANSFERRED.value,
        voicemail=record.outcome == Outcome.VOICEMAIL.value,
        offered_to=offered_to,
        missed_by=trail.missed_by if trail is not None else frozenset(),
    )


def handle_spans(record: CallRecord, trail: Trail | None) -> list[tuple[datetime, datetime]]:
    """When an agent worked on the contact: the talk, then the wrap-up."""
    spans: list[tuple[datetime, datetime]] = []
    if record.answered_at is not None:
        spans.append((record.answered_at, record.ended_at))
    if trail is not None and trail.wrap_started is not None and trail.wrap_ended is not None:
        spans.append((trail.wrap_started, trail.wrap_ended))
    return spans


@dataclass(slots=True)
class Cell:
    """The figures of one key (a queue or an agent) over one interval, or a whole period."""

    tally: Tally = field(default_factory=Tally)
    time: AgentTime = field(default_factory=AgentTime)
    handle_seconds: float = 0.0  # queues: time agents spent on this queue's contacts

    def merge(self, other: Cell) -> None:
        """Add another cell's figures."""
        self.tally.merge(other.tally)
        self.time.merge(other.time)
        self.handle_seconds += other.handle_seconds


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a report."""

    start: datetime
    end: datetime
    key: str | None  # None: every queue or agent together
    cell: Cell
    floor: AgentTime  # every agent's time over the row's span (queue occupancy, availability)
    threshold: float | None


@dataclass(frozen=True, slots=True)
class Report:
    """A whole report: a row per interval and key, a total per key, and an overall total."""

    by: By
    period: Period
    formula: ServiceLevelFormula
    keys: list[str]
    rows: list[Row]
    totals: list[Row]
    overall: Row

    def row_json(self, row: Row) -> dict[str, Any]:
        """A row with its counts, rates and (agents) times, as the API returns it."""
        tally, time = row.cell.tally, row.cell.time
        out: dict[str, Any] = {
            "start": row.start.isoformat(),
            "end": row.end.isoformat(),
            self.by.value: row.key,
        }
        out.update(tally.counts())
        out["service_level"] = tally.service_level(self.formula)
        out["service_level_seconds"] = row.threshold
        out["asa"] = tally.asa
        out["aht"] = tally.aht
        out["abandon_rate"] = tally.abandon_rate
        if self.by is By.AGENT:
            out["availability"] = time.availability
            out["occupancy"] = time.occupancy
            for name in AGENT_TIMES:
                out[f"{name}_seconds"] = getattr(time, name)
        else:
            # A queue's occupancy: its share of every agent's staffed time (docs/metrics.md).
            # Availability is the agents', not a queue's: only the all-queues row has one.
            out["availability"] = row.floor.availability if row.key is None else None
            out["occupancy"] = _share(row.cell.handle_seconds, row.floor.staffed)
        return out

    def to_json(self) -> dict[str, Any]:
        """The report as the API returns it."""
        return {
            "by": self.by.value,
            "from": self.period.start.isoformat(),
            "to": self.period.end.isoformat(),
            "interval": self.period.interval.value,
            "tz": str(self.period.tz),
            "service_level_formula": self.formula.value,
            "keys": self.keys,
            "rows": [self.row_json(r) for r in self.rows],
            "totals": [self.row_json(r) for r in self.totals],
            "overall": self.row_json(self.overall),
        }

    def csv_columns(self) -> list[str]:
        """The CSV header."""
        columns = ["row", "start", "end", self.by.value, *COUNTS, *RATES]
        if self.by is By.QUEUE:
            columns.insert(columns.index("asa"), "service_level_seconds")
        else:
            columns += [f"{name}_seconds" for name in AGENT_TIMES]
        return columns

    def to_csv(self) -> str:
        """Interval rows, then a total per key and the overall total; rates as fractions."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        columns = self.csv_columns()
        writer.writerow(columns)
        for kind, rows in (("interval", self.rows), ("total", [*self.totals, self.overall])):
            for row in rows:
                values = self.row_json(row)
                values["row"] = kind
                writer.writerow([_csv_cell(values.get(c)) for c in columns])
        return buffer.getvalue()


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value % 1 else str(int(value))
    text = str(value)
    # A spreadsheet must never read a cell as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def agent_times(
    states: Sequence[AgentStateLog], index: IntervalIndex, now: datetime,
    lead: str | None = None,
) -> dict[int, AgentTime]:
    """Seconds per state in each interval, from an agent's state changes (sorted by time)
    and `lead`, the state they were in when the period began."""
    times: dict[int, AgentTime] = {}
    stop = min(index.period.end, now)
    spans = [(index.period.start, lead)] if lead is not None else []
    spans += [(change.at, change.state) for change in states]
    for k, (since, state) in enumerate(spans):
        until = spans[k + 1][0] if k + 1 < len(spans) else stop
        for i, seconds in index.spread(since, min(until, stop)):
            times.setdefault(i, AgentTime()).add(state, seconds)
    return times


def _in_period(
    history: History, index: IntervalIndex
) -> Iterator[tuple[int, CallRecord, ContactFacts]]:
    for record in history.records:
        if record.queued_at is None:
            continue
        i = index.index(record.queued_at)
        if i is not None:
            yield i, record, facts_of(record, history.trails.get(record.contact_id))


def _ordered(configured: Sequence[str], seen: set[str], only: str | None) -> list[str]:
    """Configured keys in their order (traffic or not), then any others the data names."""
    keys = [*configured, *sorted(seen - set(configured))]
    return [k for k in keys if only is None or k == only]


def build_report(
    by: By,
    period: Period,
    history: History,
    settings: ReportSettings,
    *,
    only: str | None = None,
) -> Report:
    """Every figure of the period per interval and per queue (or agent)."""
    index = IntervalIndex(period)
    cells: dict[tuple[int, str], Cell] = {}
    floor = [AgentTime() for _ in range(len(index))]
    seen: set[str] = set()

    def cell(i: int, key: str) -> Cell:
        return cells.setdefault((i, key), Cell())

    agents = dict.fromkeys([*history.agent_leads, *history.agent_states])
    for agent_id in agents:
        states = history.agent_states.get(agent_id, ())
        lead = history.agent_leads.get(agent_id)
        for i, time in agent_times(states, index, history.now, lead).items():
            floor[i].merge(time)
            if by is By.AGENT and (only is None or agent_id == only):
                seen.add(agent_id)
                cell(i, agent_id).time.merge(time)

    for i, record, facts in _in_period(history, index):
        if by is By.QUEUE:
            queue = record.queue
            if queue is None or (only is not None and queue != only):
                continue
            seen.add(queue)
            cell(i, queue).tally.add(facts, settings.threshold(queue))
            trail = history.trails.get(record.contact_id)
            for start, end in handle_spans(record, trail):
                for j, seconds in index.spread(start, end):
                    cell(j, queue).handle_seconds += seconds
        else:
            for agent_id in sorted(facts.offered_to | {facts.agent_id or ""} - {""}):
                if only is not None and agent_id != only:
                    continue
                seen_facts = facts.for_agent(agent_id)
                if seen_facts is not None:
                    seen.add(agent_id)
                    cell(i, agent_id).tally.add(seen_facts, settings.threshold(record.queue))

    configured = settings.queues if by is By.QUEUE else settings.agents
    keys = _ordered(configured, seen, only)
    rows: list[Row] = []
    totals = {key: Cell() for key in keys}
    for i, (start, end) in enumerate(index.bounds):
        for key in keys:
            here = cells.get((i, key), Cell())
            totals[key].merge(here)
            rows.append(Row(start, end, key, here, floor[i], _threshold(by, settings, key)))
    overall = Cell()
    for total in totals.values():
        overall.merge(total)
    whole = AgentTime()
    for time in floor:
        whole.merge(time)
    return Report(
        by=by,
        period=period,
        formula=settings.formula,
        keys=keys,
        rows=rows,
        totals=[
            Row(period.start, period.end, key, totals[key], whole, _threshold(by, settings, key))
            for key in keys
        ],
        overall=Row(period.start, period.end, None, overall, whole, None),
    )


def _threshold(by: By, settings: ReportSettings, key: str) -> float | None:
    return settings.threshold(key) if by is By.QUEUE else None


def contacts_behind(
    by: By,
    period: Period,
    history: History,
    settings: ReportSettings,
    *,
    figure: str,
    key: str | None = None,
    interval_start: datetime | None = None,
) -> list[CallRecord]:
    """The contacts a count of a report counted (same interval, key and definition)."""
    index = IntervalIndex(period)
    wanted = index.index(interval_start) if interval_start is not None else None
    found: list[CallRecord] = []
    for i, record, facts in _in_period(history, index):
        if wanted is not None and i != wanted:
            continue
        threshold = settings.threshold(record.queue)
        if by is By.QUEUE:
            if record.queue is None or (key is not None and record.queue != key):
                continue
            if figure in counted_in(facts, threshold):
                found.append(record)
            continue
        agents = sorted(facts.offered_to | {facts.agent_id or ""} - {""})
        for agent_id in agents if key is None else [key]:
            seen_facts = facts.for_agent(agent_id)
            if seen_facts is not None and figure in counted_in(seen_facts, threshold):
                found.append(record)
                break
    return found
