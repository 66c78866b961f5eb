"""An Asterisk-compatible `queue_log` of a period, from Caruso's records (docs/web.md lists
the mapping).

Each line is `epoch|callid|queue|agent|event|data1|data2|...` as Asterisk's app_queue writes
it, so tools that read Asterisk queue logs (QueueMetrics, asternic, home-grown parsers) can
read Caruso's history. The call id is Caruso's contact id, the agent `Agent/<agent id>`; queue
positions are not recorded by Caruso and are written as 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from commserver.contacts import CallRecord, Outcome
from monitor.figures import Trail
from monitor.history import AgentStateLog

UNKNOWN_POSITION = "0"


def _clean(value: str) -> str:
    """A field may not hold the separator or a line break."""
    return value.replace("|", "_").replace("\r", " ").replace("\n", " ")


def _line(at: datetime, callid: str, queue: str, agent: str, event: str, *data: object) -> str:
    fields = [str(int(at.timestamp())), callid, queue, agent, event, *(str(d) for d in data)]
    return "|".join(_clean(f) for f in fields)


def _agent(agent_id: str | None) -> str:
    return f"Agent/{agent_id}" if agent_id else "NONE"


def _contact_lines(record: CallRecord, trail: Trail | None) -> Iterator[tuple[datetime, str]]:
    queue = record.queue or "NONE"
    callid = record.contact_id
    assert record.queued_at is not None
    wait = round(record.wait_seconds)
    yield record.queued_at, _line(record.queued_at, callid, queue, "NONE", "ENTERQUEUE", "",
                                  record.caller)
    ring_seconds = 0
    for ring in trail.rings if trail is not None else []:
        seconds = (ring.ended - ring.started).total_seconds()
        if ring.missed:
            yield ring.ended, _line(ring.ended, callid, queue, _agent(ring.agent_id),
                                    "RINGNOANSWER", round(seconds * 1000))
        elif ring.answered:
            ring_seconds = round(seconds)
    ended = record.ended_at
    if record.answered_at is not None:
        agent = _agent(record.agent_id)
        talk = round(record.talk_seconds)
        yield record.answered_at, _line(record.answered_at, callid, queue, agent, "CONNECT",
                                        wait, callid, ring_seconds)
        if record.outcome == Outcome.TRANSFERRED.value:
            yield ended, _line(ended, callid, queue, agent, "TRANSFER", "", "", wait, talk,
                               UNKNOWN_POSITION)
        else:
            event = "COMPLETECALLER" if record.hangup_cause == "caller-hangup" else "COMPLETEAGENT"
            yield ended, _line(ended, callid, queue, agent, event, wait, talk, UNKNOWN_POSITION)
    elif record.outcome == Outcome.ABANDONED.value:
        yield ended, _line(ended, callid, queue, "NONE", "ABANDON", UNKNOWN_POSITION,
                           UNKNOWN_POSITION, wait)
    else:
        # Voicemail, announcement, hang-up by a limit, transfer out, failure: Caruso does not
        # keep which limit sent the caller out, so every exit is a timeout exit.
        yield ended, _line(ended, callid, queue, "NONE", "EXITWITHTIMEOUT", UNKNOWN_POSITION,
                           UNKNOWN_POSITION, wait)


def _agent_lines(
    agent_id: str, changes: Sequence[AgentStateLog], lead: str | None
) -> Iterator[tuple[datetime, str]]:
    previous = lead or "logged-out"  # logged in before the period: no login line, no login time
    login: datetime | None = None
    agent = _agent(agent_id)
    for change in changes:
        state, at = change.state, change.at
        if previous == "logged-out" and state != "logged-out":
            login = at
            yield at, _line(at, "NONE", "NONE", agent, "AGENTLOGIN", agent)
        elif state == "logged-out" and previous != "logged-out":
            logged = round((at - login).total_seconds()) if login is not None else ""
            yield at, _line(at, "NONE", "NONE", agent, "AGENTLOGOFF", agent, logged)
        if state == "paused" and previous != "paused":
            yield at, _line(at, "NONE", "NONE", agent, "PAUSEALL", change.reason)
        elif previous == "paused" and state not in ("paused", "logged-out"):
            yield at, _line(at, "NONE", "NONE", agent, "UNPAUSEALL")
        previous = state


def queue_log(
    records: Sequence[CallRecord],
    trails: Mapping[str, Trail],
    agent_states: Mapping[str, Sequence[AgentStateLog]],
    agent_leads: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """The period's queue_log lines in time order (each without its newline)."""
    lines: list[tuple[datetime, int, str]] = []
    order = 0
    for record in records:
        if record.queued_at is None:
            continue
        for at, line in _contact_lines(record, trails.get(record.contact_id)):
            lines.append((at, order, line))
            order += 1
    for agent_id, changes in agent_states.items():
        for at, line in _agent_lines(agent_id, changes, (agent_leads or {}).get(agent_id)):
            lines.append((at, order, line))
            order += 1
    lines.sort(key=lambda item: (item[0], item[1]))
    for _, _, line in lines:
        yield line
