"""A plausible busy day of stored history (seeded, so always the same), for the report page's
browser test and its screenshot: three queues, six agents, calls from 08:00 to 18:00 with a
morning and an afternoon peak."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

from commserver.contacts import CallRecord
from monitor.history import AgentStateLog, ContactEvent

QUEUES = {"support": 1.0, "billing": 0.6, "sales": 0.35}
AGENTS = ["a01", "a02", "a03", "a04", "a05", "a06"]


def _load(hour: float) -> float:
    """Calls per quarter-hour for the busiest queue: peaks at 10:30 and 14:30."""
    return 2.0 + 6.0 * math.exp(-((hour - 10.5) ** 2) / 1.5) + 4.0 * math.exp(
        -((hour - 14.5) ** 2) / 2.0
    )


def busy_day(
    day: date, seed: int = 7
) -> tuple[list[CallRecord], list[ContactEvent], list[AgentStateLog]]:
    """Records, contact events and agent state changes of one day."""
    rng = random.Random(seed)
    start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    records: list[CallRecord] = []
    events: list[ContactEvent] = []
    n = 0
    for slot in range(40):  # 08:00 to 18:00 in quarter-hours
        slot_start = start + timedelta(minutes=15 * slot)
        hour = 8 + slot / 4
        for queue, weight in QUEUES.items():
            for _ in range(round(_load(hour) * weight * rng.uniform(0.7, 1.3))):
                n += 1
                contact = f"d{n:04d}"
                queued = slot_start + timedelta(seconds=rng.uniform(0, 899))
                wait = rng.expovariate(1 / (8 + 25 * (_load(hour) / 8)))
                fate = rng.random()

                def event(
                    at: datetime, old: str, new: str, agent: str | None = None,
                    contact: str = contact, queue: str = queue,
                ) -> None:
                    events.append(ContactEvent(None, contact, at, old, new, queue, agent, None))

                event(queued, "ivr", "queued")
                if fate < 0.86:
                    agent = rng.choice(AGENTS)
                    answered = queued + timedelta(seconds=wait)
                    talk = rng.uniform(60, 300)
                    ended = answered + timedelta(seconds=talk)
                    rung = max(queued, answered - timedelta(seconds=3))
                    event(rung, "queued", "offered", agent)
                    event(answered, "offered", "connected", agent)
                    event(ended, "connected", "wrap-up", agent)
                    event(ended + timedelta(seconds=20), "wrap-up", "ended", agent)
                    outcome, answered_at, agent_id = "answered", answered, agent
                    cause = rng.choice(["caller-hangup", "agent-hangup"])
                elif fate < 0.96:
                    ended = queued + timedelta(seconds=wait)
                    event(ended, "queued", "abandoned")
                    outcome, answered_at, agent_id, talk = "abandoned", None, None, 0.0
                    cause = "caller-hangup"
                else:
                    ended = queued + timedelta(seconds=wait + 40)
                    event(queued + timedelta(seconds=wait), "queued", "voicemail")
                    event(ended, "voicemail", "ended")
                    outcome, answered_at, agent_id, talk = "voicemail", None, None, 0.0
                    cause = "normal"
                records.append(
                    CallRecord(
                        id=None, contact_id=contact, channel="voice",
                        caller=f"+49 30 {rng.randint(1000000, 9999999)}", dialed="100",
                        customer_id=None, queue=queue, agent_id=agent_id, outcome=outcome,
                        hangup_cause=cause, arrived_at=queued - timedelta(seconds=8),
                        queued_at=queued, answered_at=answered_at, ended_at=ended,
                        wait_seconds=wait if answered_at else (ended - queued).total_seconds(),
                        talk_seconds=talk,
                        disposition=rng.choice([None, "Resolved", "Follow-up needed"])
                        if answered_at else None,
                    )
                )
    states: list[AgentStateLog] = []
    for k, agent in enumerate(AGENTS):
        login = start + timedelta(minutes=5 * k)
        lunch = start + timedelta(hours=4, minutes=20 * k)
        states += [
            AgentStateLog(None, agent, "ready", "", login),
            AgentStateLog(None, agent, "paused", "Lunch", lunch),
            AgentStateLog(None, agent, "ready", "", lunch + timedelta(minutes=30)),
            AgentStateLog(
                None, agent, "logged-out", "", start + timedelta(hours=9, minutes=10 * k)
            ),
        ]
    return records, events, states
