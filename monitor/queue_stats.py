"""Today's figures per queue (offered, answered, abandoned, service level...), kept from events.

The definitions are those of docs/metrics.md and of the reports: the same `ContactFacts` and
`Tally` (`monitor/figures.py`) count a contact here, as it happens, and in a report, from its
stored call record. A contact counts on the local day it entered the queue, once it has left
the queue: answered (counted when connected), abandoned, or overflowed out (counted when the
contact ends, so the fate counted is the one its record will carry). Its wait runs from
entering the queue until answered or until it ended; answered within T and short abandons use
the queue's own `service_level_seconds`; the service level follows the configured formula
(`acd.metrics.service_level`).

Pure: `QueueDayStats.apply` takes `ContactStateChanged` events; `report_data.load_today` seeds
the counts from the stored records (with the reports' own code) once at start-up, so a
restart does not zero the day. "Today" is the server's local calendar day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo

from acd.model import ServiceLevelFormula
from commserver.contacts import ContactState, ContactStateChanged, Outcome
from monitor.figures import ContactFacts, Fate, Tally, Trail

SERVICE_LEVEL_SECONDS = 20.0

#: One queue's counts for one day (the reports' tally).
QueueDay = Tally


@dataclass(slots=True)
class _InQueue:
    """A contact that entered a queue and has not left it yet."""

    queue: str
    queued_at: datetime
    trail: Trail = field(default_factory=Trail)


class QueueDayStats:
    """Counts per queue for the current local day, fed by contact events."""

    def __init__(
        self,
        *,
        today: date,
        sl_seconds: float = SERVICE_LEVEL_SECONDS,
        formula: ServiceLevelFormula = ServiceLevelFormula.OFFERED,
        tz: tzinfo | None = None,
    ) -> None:
        self.default_threshold = sl_seconds
        self.thresholds: dict[str, float] = {}
        self.formula = formula
        self.day = today
        self.tz = tz
        self._queues: dict[str, Tally] = {}
        self._waiting: dict[str, _InQueue] = {}
        #: Counts since the server started, whatever the day (Prometheus counters).
        self.lifetime: dict[str, Tally] = {}

    def configure(self, thresholds: Mapping[str, float], formula: ServiceLevelFormula) -> None:
        """Each queue's service-level threshold T and the site's formula."""
        self.thresholds = dict(thresholds)
        self.formula = formula

    def threshold(self, queue: str) -> float:
        """A queue's T in seconds."""
        return self.thresholds.get(queue, self.default_threshold)

    def local_date(self, at: datetime) -> date:
        """The calendar day `at` falls on where the server runs."""
        return at.astimezone(self.tz).date()

    def figures(self, queue: str) -> Tally:
        """A queue's counts (zero for a queue with no traffic yet)."""
        return self._queues.setdefault(queue, Tally())

    def service_level(self, queue: str) -> float | None:
        """Today's service level of a queue by the configured formula; None when undefined."""
        return self.figures(queue).service_level(self.formula)

    def seed(self, queue: str, counters: Tally) -> None:
        """Start a queue's day from stored records."""
        self._queues[queue] = counters

    def apply(self, event: ContactStateChanged) -> bool:
        """Count one contact event; True if a count changed."""
        day = self.local_date(event.at)
        if day > self.day:
            self.day = day
            self._queues = {}
        tracked = self._waiting.get(event.contact_id)
        if tracked is None:
            if event.new is ContactState.QUEUED and event.queue is not None:
                tracked = _InQueue(event.queue, event.at)
                self._waiting[event.contact_id] = tracked
                tracked.trail.step(event.old.value, event.new.value, event.agent_id, event.at)
            return False
        tracked.trail.step(event.old.value, event.new.value, event.agent_id, event.at)
        if event.queue is not None:
            tracked.queue = event.queue  # moved by a rule or an overflow: counted where it ends
        if event.new is ContactState.CONNECTED:
            fate = Fate.ANSWERED
        elif event.new is ContactState.ABANDONED:
            fate = Fate.ABANDONED
        elif event.new is ContactState.ENDED:
            fate = Fate.OVERFLOWED
        else:
            return False  # offered, back in the queue, or on its way out (voicemail, transfer)
        del self._waiting[event.contact_id]
        trail = tracked.trail
        facts = ContactFacts(
            contact_id=event.contact_id,
            queue=tracked.queue,
            agent_id=event.agent_id,
            fate=fate,
            wait=(event.at - tracked.queued_at).total_seconds(),
            voicemail=event.outcome is Outcome.VOICEMAIL,
            offered_to=trail.offered_to,
            missed_by=trail.missed_by,
        )
        threshold = self.threshold(tracked.queue)
        self.lifetime.setdefault(tracked.queue, Tally()).add(facts, threshold)
        if self.local_date(tracked.queued_at) != self.day:
            return False  # queued on an earlier day: it belongs to that day's figures
        self.figures(tracked.queue).add(facts, threshold)
        return True


def day_start(day: date, tz: tzinfo | None = None) -> datetime:
    """Local midnight starting `day`, as an aware datetime."""
    midnight = datetime.combine(day, time.min)
    return midnight.astimezone(tz) if tz is None else midnight.replace(tzinfo=tz)
