"""Reports built from a known morning (tests/monitor/known_history.py): every figure per queue
and agent, per interval, drill-down equal to the figures, periods and intervals on the local
clock, CSV and the Asterisk queue_log lines. No server; one test loads the morning from every
database (SQLite, and PostgreSQL/MariaDB when they run) and must find the same figures."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from acd.model import ServiceLevelFormula
from commserver.contacts.records import MODEL_FILE as CONTACTS_MODEL
from monitor.accounts import MODEL_FILE as WEB_MODEL
from monitor.domain_errors import InvalidRequest
from monitor.figures import COUNTS, ContactFacts, Fate, Tally, counted_in
from monitor.periods import Interval, IntervalIndex, Period
from monitor.queue_log import queue_log
from monitor.report_data import bind_reports, load_history
from monitor.reports import By, History, Report, ReportSettings, build_report, contacts_behind
from storage import StorageManager, load_model
from tests.monitor import known_history as known

SETTINGS = ReportSettings(
    formula=ServiceLevelFormula.OFFERED,
    thresholds=known.THRESHOLDS,
    queues=("support", "sales"),
    agents=("a1", "a2"),
)


def history() -> History:
    # As the loader does: changes in the period, and a2's state when it began.
    return History(
        records=known.RECORDS,
        trails=known.trails(),
        agent_states={"a1": known.A1, "a2": [c for c in known.A2 if c.at >= known.START]},
        now=known.NOW,
        agent_leads={"a2": "ready"},
    )


def period(interval: Interval = Interval.MIN60) -> Period:
    return Period(known.START, known.END, interval, UTC)


def report(
    by: By = By.QUEUE, interval: Interval = Interval.MIN60,
    formula: ServiceLevelFormula = ServiceLevelFormula.OFFERED,
) -> Report:
    return build_report(by, period(interval), history(), replace(SETTINGS, formula=formula))


def total(rep: Report, key: str) -> dict[str, object]:
    return next(rep.row_json(r) for r in rep.totals if r.key == key)


def test_the_queue_totals_are_the_hand_worked_figures() -> None:
    row = total(report(), "support")
    assert {name: row[name] for name in COUNTS} == known.SUPPORT_TOTAL
    assert row["service_level"] == pytest.approx(2 / 6)
    assert row["asa"] == pytest.approx(known.SUPPORT_ASA)
    assert row["aht"] == pytest.approx(known.SUPPORT_AHT)
    assert row["abandon_rate"] == pytest.approx(2 / 6)
    assert row["service_level_seconds"] == 20.0
    # The queue's share of every agent's staffed time: its talk and wrap-up over 12,600 s.
    assert row["occupancy"] == pytest.approx(250 / (known.A1_STAFFED + known.A2_STAFFED))


@pytest.mark.parametrize(
    ("formula", "level"),
    [
        (ServiceLevelFormula.OFFERED, 2 / 6),
        (ServiceLevelFormula.OFFERED_EXCLUDING_SHORT_ABANDONS, 2 / 5),
        (ServiceLevelFormula.ANSWERED, 2 / 3),
    ],
)
def test_the_service_level_follows_the_formula(formula: ServiceLevelFormula, level: float) -> None:
    assert total(report(formula=formula), "support")["service_level"] == pytest.approx(level)


def test_each_queue_uses_its_own_threshold() -> None:
    sales = total(report(), "sales")
    assert (sales["offered"], sales["answered"], sales["answered_within"]) == (1, 1, 1)
    assert sales["service_level_seconds"] == 60.0


def test_contacts_outside_the_period_or_in_no_queue_are_not_counted() -> None:
    overall = report().row_json(report().overall)
    assert overall["offered"] == 7  # c1-c7: not c8 (no queue), not c9 (queued at 08:59:59)


def test_intervals_split_the_figures_and_add_up_to_the_totals() -> None:
    rep = report(interval=Interval.MIN60)
    rows = [rep.row_json(r) for r in rep.rows]
    assert [(r["start"], r["queue"], r["offered"]) for r in rows] == [
        ("2024-05-06T09:00:00+00:00", "support", 5),
        ("2024-05-06T09:00:00+00:00", "sales", 0),
        ("2024-05-06T10:00:00+00:00", "support", 1),
        ("2024-05-06T10:00:00+00:00", "sales", 1),
    ]
    quarter = report(interval=Interval.MIN15)
    assert len(quarter.rows) == 8 * 2
    for name in COUNTS:
        assert sum(quarter.row_json(r)[name] for r in quarter.rows) == sum(
            rep.row_json(r)[name] for r in rep.totals
        )


def test_agent_figures_come_from_offers_answers_and_state_changes() -> None:
    rep = report(By.AGENT)
    a1, a2 = total(rep, "a1"), total(rep, "a2")
    assert (a1["offered"], a1["answered"], a1["answered_within"], a1["missed"],
            a1["transferred"]) == (3, 2, 2, 1, 1)
    assert a1["asa"] == pytest.approx(7.5)
    assert a1["staffed_seconds"] == pytest.approx(known.A1_STAFFED)
    assert a1["paused_seconds"] == pytest.approx(known.A1_PAUSED)
    assert a1["busy_seconds"] == pytest.approx(known.A1_BUSY)
    assert a1["wrap_up_seconds"] == pytest.approx(known.A1_WRAP)
    assert a1["reserved_seconds"] == pytest.approx(known.A1_RESERVED)
    assert a1["availability"] == pytest.approx(2 / 3)
    assert a1["occupancy"] == pytest.approx((known.A1_BUSY + known.A1_WRAP) / known.A1_STAFFED)
    assert (a2["offered"], a2["answered"], a2["answered_within"], a2["missed"]) == (2, 2, 1, 0)
    assert a2["staffed_seconds"] == pytest.approx(known.A2_STAFFED)
    assert a2["occupancy"] == pytest.approx(known.A2_BUSY / known.A2_STAFFED)


def test_agent_time_is_spread_over_the_intervals_it_covers() -> None:
    rep = report(By.AGENT)
    a1 = {r.start.hour: r.cell.time for r in rep.rows if r.key == "a1"}
    assert a1[9].staffed == pytest.approx(3600)
    assert a1[9].paused == pytest.approx(1800)
    assert a1[10].staffed == pytest.approx(1800)  # logged out at 10:30
    assert a1[10].paused == 0


@pytest.mark.parametrize("by", [By.QUEUE, By.AGENT])
def test_every_figure_drills_down_to_exactly_the_contacts_it_counted(by: By) -> None:
    for interval in (Interval.MIN15, Interval.MIN60):
        rep = report(by, interval)
        for row in [*rep.rows, *rep.totals]:
            values = rep.row_json(row)
            start = row.start if row in rep.rows else None
            for name in COUNTS:
                behind = contacts_behind(by, period(interval), history(), SETTINGS,
                                         figure=name, key=row.key, interval_start=start)
                assert len(behind) == values[name], (row.key, row.start, name)


def test_the_drill_down_names_the_contacts() -> None:
    def ids(figure: str, key: str = "support") -> list[str]:
        found = contacts_behind(By.QUEUE, period(), history(), SETTINGS, figure=figure,
                                key=key)
        return sorted(r.contact_id for r in found)

    assert ids("answered_within") == ["c1", "c6"]
    assert ids("short_abandoned") == ["c3"]
    assert ids("voicemail") == ["c5"]
    assert ids("missed") == ["c2"]
    found = contacts_behind(By.AGENT, period(), history(), SETTINGS, figure="missed", key="a1")
    assert [r.contact_id for r in found] == ["c2"]


def test_the_csv_has_a_row_per_interval_and_key_then_the_totals() -> None:
    rep = report()
    rows = list(csv.DictReader(io.StringIO(rep.to_csv())))
    assert [r["row"] for r in rows] == ["interval"] * 4 + ["total"] * 3
    support = next(r for r in rows if r["row"] == "total" and r["queue"] == "support")
    assert support["offered"] == "6"
    assert float(support["service_level"]) == pytest.approx(2 / 6, abs=1e-4)
    assert rows[-1]["queue"] == ""  # every queue together
    assert rows[-1]["offered"] == "7"


def test_the_queue_log_maps_every_event_asterisk_style() -> None:
    lines = list(queue_log(known.RECORDS, known.trails(), {"a1": known.A1}))
    c2 = [line.split("|") for line in lines if line.split("|")[1] == "c2"]
    assert [fields[4:] for fields in c2] == [
        ["ENTERQUEUE", "", "+49302"],
        ["RINGNOANSWER", "15000"],
        ["CONNECT", "40", "c2", "15"],
        ["COMPLETEAGENT", "40", "60", "0"],
    ]
    assert c2[0][:4] == [str(int(known.at("09:10:00").timestamp())), "c2", "support", "NONE"]
    assert c2[1][3] == "Agent/a1"
    events: dict[str, list[str]] = {line.split("|")[1]: [] for line in lines}
    for line in lines:
        fields = line.split("|")
        events[fields[1]].append(fields[4])
    assert events["c1"][-1] == "COMPLETECALLER"
    assert events["c3"] == ["ENTERQUEUE", "ABANDON"]
    assert events["c5"] == ["ENTERQUEUE", "EXITWITHTIMEOUT"]
    assert events["c6"][-1] == "TRANSFER"
    assert "c8" not in events
    agent = [line.split("|")[4:] for line in lines if line.split("|")[3] == "Agent/a1"
             and line.split("|")[1] == "NONE"]
    assert agent == [["AGENTLOGIN", "Agent/a1"], ["PAUSEALL", "Lunch"], ["UNPAUSEALL"],
                     ["AGENTLOGOFF", "Agent/a1", "5400"]]
    stamps = [int(line.split("|")[0]) for line in lines]
    assert stamps == sorted(stamps)


def test_an_agent_logged_in_before_the_period_gets_no_login_line() -> None:
    lines = list(queue_log([], {}, {"a2": known.A2[1:]}, {"a2": "ready"}))
    assert not any("AGENTLOGIN" in line for line in lines)


def test_a_field_never_carries_the_separator_or_a_line_break() -> None:
    odd = replace(known.RECORDS[0], caller="+49|30\n55")
    line = next(queue_log([odd], {}, {}))
    assert line.count("|") == 6
    assert "\n" not in line


def test_a_period_is_rounded_out_to_whole_intervals_in_its_time_zone() -> None:
    now = datetime(2024, 5, 6, 12, tzinfo=UTC)
    berlin = Period.parse("2024-05-06T09:07:00", "2024-05-06T10:01:00", "15", "Europe/Berlin",
                          now=now)
    assert berlin.start == datetime(2024, 5, 6, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert berlin.end == datetime(2024, 5, 6, 10, 15, tzinfo=ZoneInfo("Europe/Berlin"))
    assert len(berlin.intervals()) == 5
    days = Period.parse("2024-05-01", "2024-05-31", None, "UTC", now=now)
    assert days.interval is Interval.DAY
    assert len(days.intervals()) == 31
    today = Period.parse(None, None, None, "UTC", now=now)
    assert (today.start, today.end - today.start) == (known.DAY, timedelta(days=1))


def test_a_day_across_a_clock_change_is_23_hours_and_quarters_stay_15_minutes() -> None:
    zone = ZoneInfo("Europe/Berlin")
    now = datetime(2024, 4, 1, tzinfo=UTC)
    spring = Period.parse("2024-03-31", "2024-03-31", "day", "Europe/Berlin", now=now)
    (start, end), = spring.intervals()
    assert end.timestamp() - start.timestamp() == 23 * 3600
    quarters = Period.parse("2024-03-31", "2024-03-31", "15", "Europe/Berlin", now=now)
    assert len(quarters.intervals()) == 23 * 4
    assert all(b.timestamp() - a.timestamp() == 900 for a, b in quarters.intervals())
    assert quarters.start.astimezone(zone).hour == 0


@pytest.mark.parametrize(
    ("start", "end", "interval", "tz"),
    [
        ("2024-05-06", "2024-05-05", None, "UTC"),
        ("yesterday", None, None, "UTC"),
        ("2024-01-01", "2025-12-31", None, "UTC"),
        ("2024-01-01", "2024-03-31", "15", "UTC"),
        ("2024-05-06", None, "7", "UTC"),
        ("2024-05-06", None, None, "Mars/Olympus"),
    ],
)
def test_bad_periods_are_refused_with_the_field_named(
    start: str, end: str | None, interval: str | None, tz: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Period.parse(start, end, interval, tz, now=known.NOW)
    assert caught.value.details.get("field") in ("from", "to", "interval", "tz")


def test_spans_spread_over_intervals_and_are_clipped_to_the_period() -> None:
    index = IntervalIndex(period(Interval.MIN60))
    assert index.spread(known.at("08:30:00"), known.at("09:30:00")) == [(0, 1800.0)]
    assert index.spread(known.at("09:45:00"), known.at("10:15:00")) == [(0, 900.0), (1, 900.0)]
    assert index.spread(known.at("11:00:00"), known.at("11:30:00")) == []
    assert index.index(known.at("10:59:59")) == 1
    assert index.index(known.at("11:00:00")) is None


def test_an_agent_sees_a_contact_they_missed_as_offered_and_missed_only() -> None:
    facts = ContactFacts("c", "q", "a2", Fate.ANSWERED, 5.0, offered_to=frozenset({"a1", "a2"}),
                         missed_by=frozenset({"a1"}))
    seen = facts.for_agent("a1")
    assert seen is not None
    assert counted_in(seen, 20.0) == {"offered", "missed"}
    assert counted_in(facts.for_agent("a2") or facts, 20.0) == {"offered", "answered",
                                                               "answered_within"}
    assert facts.for_agent("a3") is None
    tally = Tally()
    tally.add(seen, 20.0)
    assert (tally.asa, tally.aht, tally.abandon_rate) == (None, None, 0.0)


async def test_the_known_morning_loads_from_every_database_with_the_same_figures(
    db_url: str,
) -> None:
    models = [load_model(CONTACTS_MODEL), load_model(WEB_MODEL)]
    async with await StorageManager.open(db_url, models=models) as storage:
        bind_reports(storage)
        await storage.insert_many(known.RECORDS)
        await storage.insert_many(known.EVENTS)
        await storage.insert_many(known.AGENT_STATES)
        loaded = await load_history(storage, period(), now=known.NOW, agents=["a1", "a2"])
    assert loaded.agent_leads == {"a2": "ready"}
    for by in (By.QUEUE, By.AGENT):
        from_db = build_report(by, period(), loaded, SETTINGS)
        in_memory = build_report(by, period(), history(), SETTINGS)
        assert [from_db.row_json(r) for r in from_db.totals] == [
            in_memory.row_json(r) for r in in_memory.totals
        ]
