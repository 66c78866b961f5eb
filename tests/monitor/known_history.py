"""A known morning of stored history (call records, contact events, agent state changes) whose
every figure is worked out by hand below, for the report tests.

Monday 2024-05-06, UTC. Queue `support` (T = 20 s), queue `sales` (T = 60 s); agents a1, a2.

| contact | queue | what happened | wait |
|---|---|---|---|
| c1 | support | rung at a1 09:00:05, answered 09:00:10, talk 120 s, wrap-up 30 s | 10 |
| c2 | support | a1 let it ring 15 s, a2 answered 09:10:40, talk 60 s, agent hung up | 40 |
| c3 | support | abandoned after 15 s (a short abandon) | 15 |
| c4 | support | abandoned after 60 s | 60 |
| c5 | support | to voicemail after 90 s | 90 |
| c6 | support | a1 answered 10:05:05, talk 30 s, wrap-up 10 s, transferred | 5 |
| c7 | sales | a2 answered 10:30:50, talk 100 s | 50 |
| c8 | (none) | hung up in the IVR: in no queue | - |
| c9 | support | queued 08:59:59, before the period | 1 |
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from commserver.contacts import CallRecord
from monitor.figures import Trail
from monitor.history import AgentStateLog, ContactEvent

DAY = datetime(2024, 5, 6, tzinfo=UTC)
START = DAY.replace(hour=9)
END = DAY.replace(hour=11)
NOW = DAY.replace(hour=12)
THRESHOLDS = {"support": 20.0, "sales": 60.0}


def at(clock: str) -> datetime:
    """09:10:40 on the known day."""
    h, m, s = (int(x) for x in clock.split(":"))
    return DAY.replace(hour=h, minute=m, second=s)


def record(
    contact: str, queue: str | None, queued: str | None, *, outcome: str, ended: str,
    answered: str | None = None, agent: str | None = None, cause: str = "caller-hangup",
) -> CallRecord:
    queued_at = at(queued) if queued else None
    answered_at = at(answered) if answered else None
    ended_at = at(ended)
    wait_until = answered_at or ended_at
    return CallRecord(
        id=None, contact_id=contact, channel="voice", caller=f"+4930{contact[1:]}",
        dialed="100", customer_id=None, queue=queue, agent_id=agent, outcome=outcome,
        hangup_cause=cause, arrived_at=(queued_at or ended_at) - timedelta(seconds=5),
        queued_at=queued_at, answered_at=answered_at, ended_at=ended_at,
        wait_seconds=(wait_until - queued_at).total_seconds() if queued_at else 0.0,
        talk_seconds=(ended_at - answered_at).total_seconds() if answered_at else 0.0,
    )


RECORDS = [
    record("c1", "support", "09:00:00", answered="09:00:10", ended="09:02:10", agent="a1",
           outcome="answered"),
    record("c2", "support", "09:10:00", answered="09:10:40", ended="09:11:40", agent="a2",
           outcome="answered", cause="agent-hangup"),
    record("c3", "support", "09:20:00", ended="09:20:15", outcome="abandoned"),
    record("c4", "support", "09:30:00", ended="09:31:00", outcome="abandoned"),
    record("c5", "support", "09:40:00", ended="09:41:30", outcome="voicemail", cause="normal"),
    record("c6", "support", "10:05:00", answered="10:05:05", ended="10:05:35", agent="a1",
           outcome="transferred"),
    record("c7", "sales", "10:30:00", answered="10:30:50", ended="10:32:30", agent="a2",
           outcome="answered"),
    record("c8", None, None, ended="09:50:00", outcome="abandoned"),
    record("c9", "support", "08:59:59", answered="09:00:00", ended="09:01:00", agent="a2",
           outcome="answered"),
]


def _events(contact: str, queue: str | None, *steps: tuple[str, str, str, str | None]) -> list[
    ContactEvent
]:
    return [
        ContactEvent(None, contact, at(clock), old, new, queue, agent, None)
        for clock, old, new, agent in steps
    ]


EVENTS = [
    *_events("c1", "support", ("09:00:00", "ivr", "queued", None),
             ("09:00:05", "queued", "offered", "a1"), ("09:00:10", "offered", "connected", "a1"),
             ("09:02:10", "connected", "wrap-up", "a1"), ("09:02:40", "wrap-up", "ended", "a1")),
    *_events("c2", "support", ("09:10:00", "ivr", "queued", None),
             ("09:10:05", "queued", "offered", "a1"), ("09:10:20", "offered", "queued", None),
             ("09:10:25", "queued", "offered", "a2"), ("09:10:40", "offered", "connected", "a2"),
             ("09:11:40", "connected", "ended", "a2")),
    *_events("c3", "support", ("09:20:00", "ivr", "queued", None),
             ("09:20:15", "queued", "abandoned", None)),
    *_events("c4", "support", ("09:30:00", "ivr", "queued", None),
             ("09:31:00", "queued", "abandoned", None)),
    *_events("c5", "support", ("09:40:00", "ivr", "queued", None),
             ("09:40:30", "queued", "voicemail", None), ("09:41:30", "voicemail", "ended", None)),
    *_events("c6", "support", ("10:05:00", "ivr", "queued", None),
             ("10:05:00", "queued", "offered", "a1"), ("10:05:05", "offered", "connected", "a1"),
             ("10:05:35", "connected", "wrap-up", "a1"), ("10:05:45", "wrap-up", "ended", "a1")),
    *_events("c7", "sales", ("10:30:00", "ivr", "queued", None),
             ("10:30:45", "queued", "offered", "a2"), ("10:30:50", "offered", "connected", "a2"),
             ("10:32:30", "connected", "ended", "a2")),
]


def trails() -> dict[str, Trail]:
    """The contacts' trails, as the report loader builds them from EVENTS."""
    built: dict[str, Trail] = {}
    for event in EVENTS:
        built.setdefault(event.contact_id, Trail()).step(
            event.old_state, event.new_state, event.agent_id, event.at
        )
    return built


def _states(agent: str, *steps: tuple[datetime, str, str]) -> list[AgentStateLog]:
    return [AgentStateLog(None, agent, state, reason, when) for when, state, reason in steps]


# a1 logs in at 09:00 and out at 10:30, with lunch 09:30-10:00.
A1 = _states(
    "a1", (at("09:00:00"), "ready", ""), (at("09:00:05"), "reserved", ""),
    (at("09:00:10"), "busy", ""), (at("09:02:10"), "wrap-up", ""), (at("09:02:40"), "ready", ""),
    (at("09:10:05"), "reserved", ""), (at("09:10:20"), "ready", ""),
    (at("09:30:00"), "paused", "Lunch"), (at("10:00:00"), "ready", ""),
    (at("10:05:00"), "reserved", ""), (at("10:05:05"), "busy", ""),
    (at("10:05:35"), "wrap-up", ""), (at("10:05:45"), "ready", ""),
    (at("10:30:00"), "logged-out", ""),
)
# a2 has been ready since 08:00 and never logs out.
A2 = _states(
    "a2", (at("08:00:00"), "ready", ""), (at("09:10:25"), "reserved", ""),
    (at("09:10:40"), "busy", ""), (at("09:11:40"), "ready", ""),
    (at("10:30:45"), "reserved", ""), (at("10:30:50"), "busy", ""),
    (at("10:32:30"), "ready", ""),
)
AGENT_STATES = [*A1, *A2]

# Worked out by hand from the table above.
SUPPORT_TOTAL = {
    "offered": 6, "answered": 3, "answered_within": 2, "abandoned": 2, "short_abandoned": 1,
    "overflowed": 1, "voicemail": 1, "transferred": 1, "missed": 1,
}
SUPPORT_ASA = (10 + 40 + 5) / 3
SUPPORT_AHT = ((120 + 30) + 60 + (30 + 10)) / 3
A1_STAFFED = 5400.0  # 09:00-10:30
A1_PAUSED = 1800.0
A1_BUSY, A1_WRAP, A1_RESERVED = 150.0, 40.0, 25.0
A2_STAFFED = 7200.0  # the whole period
A2_BUSY, A2_RESERVED = 160.0, 20.0
