"""Report periods and their intervals (15, 30, 60 minutes or a day), on the local clock.

A period is `[start, end)` in some time zone (the server's unless a report asks for another).
Dates are whole local days and an end date is inclusive ("from 2024-05-01 to 2024-05-31" is
all of May); a date-time is an instant and an end date-time is exclusive. Both ends are rounded
out to whole intervals, so every interval of a report has the same length (days: local
midnight to local midnight, 23 or 25 hours across a daylight-saving change).
"""

from __future__ import annotations

import bisect
import enum
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.domain_errors import InvalidRequest

MAX_DAYS = 400
MAX_INTERVALS = 5000


class Interval(enum.Enum):
    """The length of a report's rows."""

    MIN15 = "15"
    MIN30 = "30"
    MIN60 = "60"
    DAY = "day"

    @property
    def minutes(self) -> int | None:
        """The length in minutes; None for a calendar day."""
        return None if self is Interval.DAY else int(self.value)


def local_zone() -> tzinfo:
    """The server's time zone (`TZ`, else /etc/localtime, else its current UTC offset)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        # /etc/localtime is usually a link into the zone database: its name is the zone's.
        target = os.path.realpath("/etc/localtime")
        _, found, key = target.partition("/zoneinfo/")
        if found and key:
            return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    try:
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or UTC


def zone_named(name: str | None) -> tzinfo:
    """An IANA time zone by name (`Europe/Berlin`, `UTC`), or the server's."""
    if not name:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown time zone {name!r}", field="tz") from None


def _parse_moment(raw: str, field: str, tz: tzinfo, *, end: bool) -> datetime:
    """A date (local midnight; an end date means the midnight after it) or a date-time."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time.min, tzinfo=tz)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(
            f"'{field}' must be a date (2024-05-06) or a date-time (2024-05-06T09:00:00+02:00),"
            f" not {raw!r}",
            field=field,
        ) from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


@dataclass(frozen=True, slots=True)
class Period:
    """A report's time span, cut into intervals."""

    start: datetime
    end: datetime
    interval: Interval
    tz: tzinfo

    @classmethod
    def parse(
        cls,
        start: str | None,
        end: str | None,
        interval: str | None,
        tz: str | None,
        *,
        now: datetime,
    ) -> Period:
        """A period from request parameters; by default today, by hour."""
        zone = zone_named(tz)
        first = _parse_moment(start or now.astimezone(zone).date().isoformat(), "from", zone,
                              end=False)
        if end is not None:
            last = _parse_moment(end, "to", zone, end=True)
        elif start is None or len(start) == 10:
            last = datetime.combine(first.date() + timedelta(days=1), time.min, tzinfo=zone)
        else:
            last = first + timedelta(days=1)
        if last <= first:
            raise InvalidRequest("'to' must be after 'from'", field="to")
        if last - first > timedelta(days=MAX_DAYS):
            raise InvalidRequest(f"a report covers at most {MAX_DAYS} days", field="to")
        try:
            chosen = Interval(interval) if interval else (
                Interval.MIN60 if last - first <= timedelta(days=2) else Interval.DAY
            )
        except ValueError:
            raise InvalidRequest(
                f"'interval' must be one of {', '.join(i.value for i in Interval)}",
                field="interval",
            ) from None
        period = cls(first, last, chosen, zone).rounded()
        if len(period.starts()) > MAX_INTERVALS:
            raise InvalidRequest(
                f"at most {MAX_INTERVALS} intervals: choose a longer interval or a shorter period",
                field="interval",
            )
        return period

    def rounded(self) -> Period:
        """The same period rounded out to whole intervals."""
        start = self._floor(self.start)
        end = self._floor(self.end)
        if end < self.end:
            end = self._next(end)
        return Period(start, end, self.interval, self.tz)

    def _floor(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.tz)
        minutes = self.interval.minutes
        if minutes is None:
            return datetime.combine(local.date(), time.min, tzinfo=self.tz)
        return local.replace(minute=local.minute - local.minute % minutes, second=0,
                             microsecond=0)

    def _next(self, start: datetime) -> datetime:
        minutes = self.interval.minutes
        if minutes is None:
            day = start.astimezone(self.tz).date() + timedelta(days=1)
            return datetime.combine(day, time.min, tzinfo=self.tz)
        # Absolute time: a quarter-hour is 15 real minutes even across a clock change.
        return (start.astimezone(UTC) + timedelta(minutes=minutes)).astimezone(self.tz)

    def starts(self) -> list[datetime]:
        """The start of every interval, in order."""
        starts: list[datetime] = []
        at = self.start
        while at < self.end and len(starts) <= MAX_INTERVALS:
            starts.append(at)
            at = self._next(at)
        return starts

    def intervals(self) -> list[tuple[datetime, datetime]]:
        """Every interval as (start, end)."""
        starts = self.starts()
        return list(zip(starts, [*starts[1:], self.end], strict=True))

    def contains(self, moment: datetime) -> bool:
        """Whether an instant falls in the period."""
        return self.start <= moment < self.end


class IntervalIndex:
    """Which interval of a period an instant falls in, and how spans spread over intervals."""

    def __init__(self, period: Period) -> None:
        self.period = period
        self.bounds = period.intervals()
        self._starts = [start.timestamp() for start, _ in self.bounds]
        self._end = period.end.timestamp()

    def __len__(self) -> int:
        return len(self.bounds)

    def index(self, moment: datetime) -> int | None:
        """The interval holding `moment`, or None outside the period."""
        stamp = moment.timestamp()
        if not self._starts or stamp < self._starts[0] or stamp >= self._end:
            return None
        return bisect.bisect_right(self._starts, stamp) - 1

    def spread(self, start: datetime, end: datetime) -> list[tuple[int, float]]:
        """Seconds of `[start, end)` in each interval it overlaps."""
        lo, hi = max(start.timestamp(), self._starts[0] if self._starts else 0.0), min(
            end.timestamp(), self._end
        )
        if not self._starts or hi <= lo:
            return []
        out: list[tuple[int, float]] = []
        i = bisect.bisect_right(self._starts, lo) - 1
        while i < len(self._starts) and self._starts[i] < hi:
            right = self._starts[i + 1] if i + 1 < len(self._starts) else self._end
            seconds = min(hi, right) - max(lo, self._starts[i])
            if seconds > 0:
                out.append((i, seconds))
            i += 1
        return out
