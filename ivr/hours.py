"""Business hours and holidays: when the contact center answers, as a pure calendar.

`OpeningHours.is_open(at)` and `next_change(after)` are all the server needs: it opens and
closes the ACD's queues at each change, and a queue's `on_closed` action (or the closed
announcement) serves callers outside the hours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Span = tuple[time, time]


class HoursError(ValueError):
    """A malformed opening-hours setting; the message names the day or date."""


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Weekly opening spans (local time) and closed days; no spans at all means always open."""

    zone: ZoneInfo
    weekly: Mapping[int, tuple[Span, ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @property
    def always_open(self) -> bool:
        """True when no weekly hours are configured (holidays then close whole days)."""
        return not self.weekly

    def is_open(self, at: datetime) -> bool:
        """Whether callers are served at this instant."""
        local = at.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        if self.always_open:
            return True
        now = local.time()
        return any(start <= now < end for start, end in self.weekly.get(local.weekday(), ()))

    def next_change(self, after: datetime) -> datetime | None:
        """The first instant after `after` when `is_open` flips (None: not within 400 days)."""
        state = self.is_open(after)
        local = after.astimezone(self.zone)
        for day_offset in range(400):
            day = local.date() + timedelta(days=day_offset)
            for moment in self._boundaries(day):
                if moment > after and self.is_open(moment) != state:
                    return moment
        return None

    def _boundaries(self, day: date) -> Iterable[datetime]:
        """Candidate instants where the state may change on `day`, in order."""
        times = {time(0, 0)}
        for start, end in self.weekly.get(day.weekday(), ()):
            times.update((start, end))
        for t in sorted(times):
            yield datetime.combine(day, t, tzinfo=self.zone)


def parse_hours(
    weekly: Mapping[str, str | Sequence[str]],
    holidays: Sequence[str],
    timezone: str,
) -> OpeningHours:
    """Opening hours from configuration: `{"mon": "08:00-18:00", "sat": ["09:00-12:00"]}`."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"timezone: unknown time zone {timezone!r}") from None
    spans: dict[int, tuple[Span, ...]] = {}
    for day, value in weekly.items():
        if day not in DAYS:
            raise HoursError(f"weekly.{day}: not a day (use {', '.join(DAYS)})")
        texts = [value] if isinstance(value, str) else list(value)
        spans[DAYS.index(day)] = tuple(sorted(_span(f"weekly.{day}", t) for t in texts))
    closed: set[date] = set()
    for i, text in enumerate(holidays):
        try:
            closed.add(date.fromisoformat(text))
        except ValueError:
            raise HoursError(f"holidays[{i}]: {text!r} is not a date (YYYY-MM-DD)") from None
    return OpeningHours(zone, spans, frozenset(closed))


def _span(where: str, text: str) -> Span:
    match = _SPAN.match(text)
    if match is None:
        raise HoursError(f"{where}: {text!r} is not a span like '08:00-18:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h2 == 24 and m2 == 0:
        h2, m2 = 23, 59  # "until midnight"
    try:
        start, end = time(h1, m1), time(h2, m2)
    except ValueError:
        raise HoursError(f"{where}: {text!r} is not a valid time of day") from None
    if not start < end:
        raise HoursError(f"{where}: {text!r} ends before it starts")
    return start, end
