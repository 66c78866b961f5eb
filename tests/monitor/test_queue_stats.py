"""Today's queue figures from contact events, by the definitions of docs/metrics.md: offered
when finished in the queue, answered within T and short abandons by the queue's threshold,
the configured service-level formula, counted on the day the contact queued, a fresh day at
local midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from acd.model import ServiceLevelFormula
from commserver.contacts import ContactState, ContactStateChanged, Outcome
from monitor.queue_stats import QueueDay, QueueDayStats

S = ContactState
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def moved(
    contact: str, new: ContactState, seconds: float, queue: str = "support",
    old: ContactState = S.IVR, agent: str | None = None, outcome: Outcome | None = None,
) -> ContactStateChanged:
    return ContactStateChanged(
        at=T0 + timedelta(seconds=seconds), contact_id=contact, old=old, new=new, queue=queue,
        agent_id=agent, outcome=outcome,
    )


def stats(formula: ServiceLevelFormula = ServiceLevelFormula.OFFERED) -> QueueDayStats:
    day = QueueDayStats(today=date(2024, 5, 6), tz=UTC)
    day.configure({"support": 20.0, "sales": 60.0}, formula)
    return day


def counters(day: QueueDayStats, queue: str = "support") -> tuple[int, ...]:
    f = day.figures(queue)
    return f.offered, f.answered, f.answered_within, f.abandoned, f.short_abandoned


FLOOR = [
    moved("fast", S.QUEUED, 0), moved("fast", S.CONNECTED, 15),
    moved("slow", S.QUEUED, 0), moved("slow", S.CONNECTED, 45),
    moved("gone", S.QUEUED, 0), moved("gone", S.ABANDONED, 30),
    moved("quick", S.QUEUED, 0), moved("quick", S.ABANDONED, 5),
    moved("vm", S.QUEUED, 0), moved("vm", S.VOICEMAIL, 50, outcome=Outcome.VOICEMAIL),
    moved("vm", S.ENDED, 80, outcome=Outcome.VOICEMAIL),
    moved("wait", S.QUEUED, 10),
]


def test_finished_contacts_are_offered_and_waiting_ones_not_yet() -> None:
    day = stats()
    for event in FLOOR:
        day.apply(event)
    assert counters(day) == (5, 2, 1, 2, 1)
    assert (day.figures("support").overflowed, day.figures("support").voicemail) == (1, 1)
    assert day.service_level("support") == 1 / 5


def test_a_contact_on_its_way_to_voicemail_counts_once_it_has_ended() -> None:
    day = stats()
    day.apply(moved("vm", S.QUEUED, 0))
    day.apply(moved("vm", S.VOICEMAIL, 50, outcome=Outcome.VOICEMAIL))
    before = counters(day)
    # The caller hangs up while recording: their record says abandoned, and so do the figures.
    day.apply(moved("vm", S.ABANDONED, 70, old=S.VOICEMAIL, outcome=Outcome.ABANDONED))
    assert before == (0, 0, 0, 0, 0)
    assert counters(day) == (1, 0, 0, 1, 0)


def test_a_contact_moved_to_another_queue_counts_where_it_finished() -> None:
    day = stats()
    day.apply(moved("m", S.QUEUED, 0, "support"))
    day.apply(moved("m", S.QUEUED, 30, "sales", old=S.QUEUED))
    day.apply(moved("m", S.CONNECTED, 50, "sales", old=S.OFFERED))
    assert counters(day, "support") == (0, 0, 0, 0, 0)
    assert counters(day, "sales") == (1, 1, 1, 0, 0)  # waited 50 s of sales' T of 60 s


def test_an_agent_who_let_it_ring_counts_as_a_miss() -> None:
    day = stats()
    for event in [
        moved("c", S.QUEUED, 0), moved("c", S.OFFERED, 1, old=S.QUEUED, agent="a1"),
        moved("c", S.QUEUED, 16, old=S.OFFERED), moved("c", S.OFFERED, 17, old=S.QUEUED,
                                                        agent="a2"),
        moved("c", S.CONNECTED, 18, old=S.OFFERED, agent="a2"),
    ]:
        day.apply(event)
    assert day.figures("support").missed == 1
    assert day.lifetime["support"].answered == 1


def test_the_service_level_follows_the_configured_formula() -> None:
    levels = {}
    for formula in ServiceLevelFormula:
        day = stats(formula)
        for event in FLOOR:
            day.apply(event)
        levels[formula] = day.service_level("support")
    assert levels == {
        ServiceLevelFormula.OFFERED: 1 / 5,
        ServiceLevelFormula.OFFERED_EXCLUDING_SHORT_ABANDONS: 1 / 4,
        ServiceLevelFormula.ANSWERED: 1 / 2,
    }


def test_each_queue_uses_its_own_threshold() -> None:
    day = stats()
    day.apply(moved("a", S.QUEUED, 0, "sales"))
    day.apply(moved("a", S.CONNECTED, 45, "sales"))
    assert counters(day, "sales") == (1, 1, 1, 0, 0)
    assert day.threshold("other") == 20.0


def test_a_missed_offer_that_goes_back_to_the_queue_is_offered_once() -> None:
    day = stats()
    for event in [
        moved("c", S.QUEUED, 0), moved("c", S.OFFERED, 1), moved("c", S.QUEUED, 16),
        moved("c", S.OFFERED, 17), moved("c", S.CONNECTED, 18),
    ]:
        day.apply(event)
    assert counters(day) == (1, 1, 1, 0, 0)


def test_a_contact_ended_outside_a_queue_counts_nowhere() -> None:
    day = stats()
    assert day.apply(moved("ivr-only", S.ENDED, 5)) is False
    assert counters(day) == (0, 0, 0, 0, 0)
    assert day.service_level("support") is None


def test_the_day_rolls_over_at_local_midnight_and_contacts_count_on_their_queued_day() -> None:
    day = stats()
    day.seed("support", QueueDay(offered=7, answered=7, answered_within=7))
    day.apply(moved("night", S.QUEUED, 14 * 3600))  # 23:00
    day.apply(moved("morning", S.QUEUED, 15 * 3600 + 5))  # 00:00:05 the next day
    day.apply(moved("night", S.CONNECTED, 15 * 3600 + 10))
    day.apply(moved("morning", S.CONNECTED, 15 * 3600 + 20))
    assert day.day == date(2024, 5, 7)
    # "night" queued yesterday: it belongs to yesterday's figures (as in the reports).
    assert counters(day) == (1, 1, 1, 0, 0)
    assert day.lifetime["support"].answered == 2
