"""Business hours and holidays as a calendar: open, closed, and when it next changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.hours import HoursError, parse_hours

BERLIN = "Europe/Berlin"
HOURS = parse_hours(
    dict.fromkeys(("mon", "tue", "wed", "thu", "fri"), "08:00-18:00") | {"sat": "09:00-12:00"},
    ["2026-12-25"],
    BERLIN,
)


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HOURS.zone)


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        ("2026-11-23 07:59", False),  # Monday before opening
        ("2026-11-23 08:00", True),
        ("2026-11-23 17:59", True),
        ("2026-11-23 18:00", False),
        ("2026-11-28 10:00", True),  # Saturday morning
        ("2026-11-29 10:00", False),  # Sunday
        ("2026-12-25 10:00", False),  # a holiday on a Friday
    ],
)
def test_open_and_closed(when: str, open_: bool) -> None:
    assert HOURS.is_open(berlin(when)) is open_


def test_times_in_other_zones_are_read_in_the_site_zone() -> None:
    # 07:30 UTC on a Monday in winter is 08:30 in Berlin.
    assert HOURS.is_open(datetime(2026, 11, 23, 7, 30, tzinfo=UTC))


def test_next_change_skips_the_weekend_and_holidays() -> None:
    assert HOURS.next_change(berlin("2026-11-23 12:00")) == berlin("2026-11-23 18:00")
    assert HOURS.next_change(berlin("2026-11-28 12:30")) == berlin("2026-11-30 08:00")
    # Friday the 25th is a holiday; Saturday the 26th opens at 09:00.
    assert HOURS.next_change(berlin("2026-12-24 18:30")) == berlin("2026-12-26 09:00")


def test_no_weekly_hours_means_always_open_except_holidays() -> None:
    hours = parse_hours({}, ["2026-01-01"], BERLIN)
    assert hours.is_open(berlin("2026-01-02 03:00"))
    assert not hours.is_open(berlin("2026-01-01 12:00"))
    assert hours.next_change(berlin("2026-01-01 12:00")) == berlin("2026-01-02 00:00")


@pytest.mark.parametrize(
    ("weekly", "holidays", "zone", "message"),
    [
        ({"monday": "08:00-18:00"}, [], BERLIN, "not a day"),
        ({"mon": "8-18"}, [], BERLIN, "not a span"),
        ({"mon": "18:00-08:00"}, [], BERLIN, "ends before it starts"),
        ({"mon": "25:00-26:00"}, [], BERLIN, "not a valid time"),
        ({}, ["25.12.2026"], BERLIN, "not a date"),
        ({}, [], "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_settings_say_what_is_wrong(
    weekly: dict[str, str], holidays: list[str], zone: str, message: str
) -> None:
    with pytest.raises(HoursError, match=message):
        parse_hours(weekly, holidays, zone)
