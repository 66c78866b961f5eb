"""The dispatcher: one ACD across all queues, driven by inputs stamped with `now`.

Every input (agent login, contact arrival, offer answered, `tick`...) returns the decisions it
caused, in order. The dispatcher keeps one invariant after every input: no waiting contact
could be taken by a free agent (except an agent it just rang in vain). So when an agent frees
up, only the best contact for *that* agent has to be found, and when a contact arrives only the
best agent for *it* (see docs/acd.md).

Timers (ring timeout, wrap-up, rule thresholds, max wait, retry after a miss, the periodic
self-check) are kept in one heap; `next_deadline()` says when the server must call `tick`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Collection, Mapping
from enum import IntEnum
from types import MappingProxyType

from acd.conditions import Condition, Metric
from acd.decisions import (
    Assign,
    AutoPause,
    CancelOffer,
    CancelReason,
    Criterion,
    Decision,
    Moved,
    Overflow,
    Problem,
    Repair,
    RingAll,
    RuleApplied,
    Trigger,
    Why,
    WrapUpEnded,
)
from acd.errors import (
    AgentHasLiveContacts,
    DuplicateAgent,
    DuplicateContact,
    InvalidAgentTransition,
    InvalidContactTransition,
    NoSuchAgent,
    NoSuchContact,
    NoSuchQueue,
    NotOffered,
)
from acd.estimation import WaitEstimator
from acd.matching import (
    AgentChoice,
    IndexedMatcher,
    LinearScanMatcher,
    Matcher,
    RoutingIndex,
)
from acd.metrics import service_level
from acd.model import (
    CHANNELS,
    AcdConfig,
    ActionKind,
    AgentConfig,
    Channel,
    ContactRequest,
    OverflowAction,
    OverflowReason,
    Rule,
    Strategy,
    frozen_skills,
)
from acd.records import (
    AgentRecord,
    ContactRecord,
    QueueRecord,
    Requirements,
    Session,
    WaitingGroup,
    meets,
)
from acd.states import ContactState, Presence, SessionState
from acd.views import AgentView, ContactView, QueueFigures

_log = logging.getLogger("acd")

AUTO_PAUSE_REASON = "ring-no-answer"


class _Timer(IntEnum):
    RULE = 0
    MAX_WAIT = 1
    RING = 2
    WRAP_UP = 3
    RETRY = 4
    PERIODIC = 5
    AUDIT = 6


_TimerEntry = tuple[float, int, _Timer, object, int, object]
"""(due, seq, kind, target, version the target must still have, extra)."""

_QUEUED = ContactState.QUEUED
_CALLBACK = ContactState.CALLBACK
_OFFERED = ContactState.OFFERED
_CONNECTED = ContactState.CONNECTED
_READY = Presence.READY


class Dispatcher:
    """Routes contacts to agents across every queue; pure, synchronous, clock passed in.

    `linear_scan=True` swaps the indexed matcher for the naive one (same decisions, for
    tests and the benchmark baseline).
    """

    def __init__(self, config: AcdConfig, *, now: float = 0.0, linear_scan: bool = False) -> None:
        self.config = config
        self.settings = config.settings
        self._now = now
        self._index = RoutingIndex()
        self._matcher: Matcher = (
            LinearScanMatcher(self._index) if linear_scan else IndexedMatcher(self._index)
        )
        self._estimator = WaitEstimator(self._index)
        self._queues: dict[str, QueueRecord] = {q.name: QueueRecord(q) for q in config.queues}
        self._contacts: dict[str, ContactRecord] = {}
        self._timers: list[_TimerEntry] = []
        self._timer_seq = itertools.count()
        self._contact_seq = itertools.count()
        self._rng = random.Random(self.settings.seed)
        self._whys: OrderedDict[str, Why] = OrderedDict()
        self._out: list[Decision] = []
        self._req_cache: dict[tuple[str, int], tuple[Requirements, int]] = {}
        for agent in config.agents:
            self.add_agent(agent)
        if self.settings.audit_interval is not None:
            self._push(now + self.settings.audit_interval, _Timer.AUDIT, None, 0)

    # == the matcher (swappable so a benchmark can time it) ===================================

    @property
    def matcher(self) -> Matcher:
        """The matcher in use."""
        return self._matcher

    def use_matcher(self, matcher: Matcher) -> None:
        """Replace the matcher (e.g. by a timing wrapper around the current one)."""
        self._matcher = matcher

    @property
    def index(self) -> RoutingIndex:
        """The routing indexes (read-only use: matchers and invariant checks)."""
        return self._index

    # == agents: administration ===============================================================

    def add_agent(self, agent: AgentConfig) -> None:
        """Create an agent (logged out)."""
        if agent.id in self._index.agents:
            raise DuplicateAgent(f"agent {agent.id!r} already exists", agent_id=agent.id)
        record = AgentRecord(agent, self._index.next_ordinal, self._now)
        self._index.next_ordinal += 1
        self._index.agents[agent.id] = record

    def remove_agent(self, agent_id: str) -> None:
        """Delete a logged-out agent."""
        agent = self._agent(agent_id)
        if agent.presence is not Presence.LOGGED_OUT:
            raise InvalidAgentTransition(
                f"agent {agent_id}: log out before removal", agent_id=agent_id
            )
        del self._index.agents[agent_id]
        self._estimator.staffing_changed()

    # == agents: state inputs =================================================================

    def login(
        self, agent_id: str, now: float, *, pause_reason: str | None = None
    ) -> list[Decision]:
        """The agent logs in, ready, or paused with `pause_reason`."""
        agent = self._agent(agent_id)
        if agent.presence is not Presence.LOGGED_OUT:
            raise InvalidAgentTransition(
                f"agent {agent_id}: already logged in", agent_id=agent_id, state="logged-in"
            )
        out = self._begin(now)
        now = self._now
        agent.move_presence(Presence.PAUSED if pause_reason else Presence.READY)
        agent.pause_reason = pause_reason or None
        agent.logged_in_at = now
        agent.answered = 0
        agent.misses = 0
        agent.work_time = 0.0
        agent.work_since = now
        for channel in CHANNELS:
            agent.idle_since[channel] = now
        self._estimator.staffing_changed()
        self._refresh(agent)
        self._touch(agent)
        self._serve_agent(agent)
        return out

    def logout(self, agent_id: str, now: float) -> list[Decision]:
        """The agent logs out; a contact ringing them goes back to its place."""
        agent = self._agent(agent_id)
        if agent.presence is Presence.LOGGED_OUT:
            raise InvalidAgentTransition(f"agent {agent_id}: not logged in", agent_id=agent_id)
        busy = [s.contact.id for s in agent.sessions.values() if s.state is SessionState.BUSY]
        if busy:
            raise AgentHasLiveContacts(
                f"agent {agent_id} is connected to {', '.join(busy)}; end it first",
                agent_id=agent_id,
                contacts=busy,
            )
        out = self._begin(now)
        agent.move_presence(Presence.LOGGED_OUT)
        agent.pause_reason = None
        self._refresh(agent)
        self._estimator.staffing_changed()
        for session in list(agent.sessions.values()):
            if session.state is SessionState.RESERVED:
                self._withdraw(session, CancelReason.AGENT_LOGGED_OUT, count_miss=False)
            else:  # wrap-up: nothing left to do for it
                self._finish_session(session, idle_reset=False)
        self._touch(agent)
        self._leave_when_empty(agent)
        return out

    def pause(self, agent_id: str, now: float, reason: str) -> list[Decision]:
        """The agent pauses with a reason code (contacts in progress go on)."""
        agent = self._agent(agent_id)
        if agent.presence is Presence.LOGGED_OUT:
            raise InvalidAgentTransition(f"agent {agent_id}: not logged in", agent_id=agent_id)
        if not reason:
            raise InvalidAgentTransition(
                f"agent {agent_id}: a pause needs a reason code", agent_id=agent_id
            )
        out = self._begin(now)
        agent.move_presence(Presence.PAUSED)
        agent.pause_reason = reason
        self._refresh(agent)
        self._estimator.staffing_changed()
        self._touch(agent)
        return out

    def ready(self, agent_id: str, now: float) -> list[Decision]:
        """A paused agent is ready again (and may be offered a contact at once)."""
        agent = self._agent(agent_id)
        if agent.presence is not Presence.PAUSED:
            raise InvalidAgentTransition(
                f"agent {agent_id}: only a paused agent can become ready "
                f"(is {agent.presence.value})",
                agent_id=agent_id,
                state=agent.presence.value,
            )
        out = self._begin(now)
        agent.move_presence(Presence.READY)
        agent.pause_reason = None
        agent.misses = 0
        for channel in CHANNELS:
            if agent.load[channel] == 0:
                agent.idle_since[channel] = self._now
        self._refresh(agent)
        self._estimator.staffing_changed()
        self._touch(agent)
        self._serve_agent(agent)
        return out

    def set_skills(self, agent_id: str, skills: Mapping[str, int], now: float) -> list[Decision]:
        """Change the agent's skills live; contacts in progress are unaffected."""
        agent = self._agent(agent_id)
        checked = frozen_skills(skills, f"agent {agent_id}")
        out = self._begin(now)
        channels = list(agent.available)
        for channel in channels:
            self._index.remove_free(agent, channel)
        agent.skills = dict(checked)
        self._index.skills_changed(agent)
        for channel in channels:
            self._index.add_free(agent, channel)
        self._estimator.staffing_changed()
        self._serve_agent(agent)
        return out

    def set_capacity(
        self, agent_id: str, capacity: Mapping[Channel, int], now: float
    ) -> list[Decision]:
        """Change how many contacts per channel the agent takes at once."""
        agent = self._agent(agent_id)
        checked = AgentConfig(agent.id, skills=agent.skills, capacity=capacity).capacity
        out = self._begin(now)
        agent.capacity = dict(checked)
        self._refresh(agent)
        self._estimator.staffing_changed()
        self._serve_agent(agent)
        return out

    def wrapup_done(
        self, agent_id: str, now: float, *, contact_id: str | None = None
    ) -> list[Decision]:
        """The agent ends wrap-up early (of one contact, or of all)."""
        agent = self._agent(agent_id)
        sessions = [
            s
            for s in agent.sessions.values()
            if s.state is SessionState.WRAP_UP and contact_id in (None, s.contact.id)
        ]
        if not sessions:
            raise InvalidAgentTransition(
                f"agent {agent_id}: not in wrap-up"
                + (f" for contact {contact_id}" if contact_id else ""),
                agent_id=agent_id,
                contact_id=contact_id,
            )
        out = self._begin(now)
        for session in sessions:
            self._finish_session(session, idle_reset=True)
        self._serve_agent(agent)
        return out

    # == contacts =============================================================================

    def contact_arrived(self, request: ContactRequest, now: float) -> list[Decision]:
        """A contact enters `request.queue`: assigned at once, kept waiting, or overflowed."""
        queue = self._queue(request.queue)
        if request.contact_id in self._contacts:
            raise DuplicateContact(
                f"contact {request.contact_id} is already in the ACD",
                contact_id=request.contact_id,
            )
        out = self._begin(now)
        contact = ContactRecord(
            request.contact_id,
            queue,
            request.priority,
            dict(request.skills),
            request.customer,
            self._now,
            next(self._contact_seq),
        )
        if request.callback:
            contact.callback = True
            contact.state = _CALLBACK
        self._contacts[contact.id] = contact
        self._enter_queue(contact, queue, Trigger.CONTACT_ARRIVED)
        return out

    def offer_answered(self, contact_id: str, agent_id: str, now: float) -> list[Decision]:
        """The agent answered: connected (for ring-all, the others stop ringing)."""
        contact = self._contact(contact_id)
        agent = self._agent(agent_id)
        if contact.state is not _OFFERED or agent not in contact.offers:
            raise NotOffered(
                f"contact {contact_id} is not ringing agent {agent_id}",
                contact_id=contact_id,
                agent_id=agent_id,
                state=contact.state.value,
            )
        out = self._begin(now)
        now = self._now
        session = contact.offers.pop(agent)
        others = list(contact.offers.values())
        contact.offers.clear()
        for other in others:
            out.append(CancelOffer(contact.id, other.agent.id, CancelReason.ANSWERED_ELSEWHERE))
            self._finish_session(other, idle_reset=False)
        session.move(SessionState.BUSY)
        session.answered_at = now
        contact.move(_CONNECTED)
        contact.session = session
        agent.misses = 0
        agent.answered += 1
        self._start_work(agent)
        queue = contact.queue
        wait = now - contact.arrived_at
        queue.answered += 1
        queue.wait_total += wait
        if wait <= queue.config.service_level_seconds:
            queue.answered_within += 1
        self._touch(agent)
        for other in others:
            self._serve_agent(other.agent)
        return out

    def offer_missed(self, contact_id: str, agent_id: str, now: float) -> list[Decision]:
        """The agent did not answer (or rejected): a miss; the contact goes back to its place."""
        contact = self._contact(contact_id)
        agent = self._agent(agent_id)
        if contact.state is not _OFFERED or agent not in contact.offers:
            raise NotOffered(
                f"contact {contact_id} is not ringing agent {agent_id}",
                contact_id=contact_id,
                agent_id=agent_id,
                state=contact.state.value,
            )
        out = self._begin(now)
        self._withdraw(contact.offers[agent], None, count_miss=True)
        return out

    def contact_abandoned(self, contact_id: str, now: float) -> list[Decision]:
        """The customer hung up (or cancelled a callback). Connected: same as `contact_ended`."""
        contact = self._contact(contact_id)
        out = self._begin(now)
        if contact.state is _CONNECTED:
            self._end_connected(contact)
        else:
            self._abandon(contact)
        return out

    def contact_ended(self, contact_id: str, now: float) -> list[Decision]:
        """The conversation ended: the agent goes to wrap-up (or is free at once).

        For a contact not yet connected this is an abandonment.
        """
        contact = self._contact(contact_id)
        out = self._begin(now)
        if contact.state is _CONNECTED:
            self._end_connected(contact)
        else:
            self._abandon(contact)
        return out

    def callback_requested(self, contact_id: str, now: float) -> list[Decision]:
        """The caller leaves the line and keeps their place; the callback comes when it is due."""
        contact = self._contact(contact_id)
        if contact.state is not _QUEUED:
            raise InvalidContactTransition(
                f"contact {contact_id}: a callback needs a queued contact "
                f"(is {contact.state.value})",
                contact_id=contact_id,
                state=contact.state.value,
            )
        out = self._begin(now)
        contact.queue.on_line -= 1
        contact.move(_CALLBACK)
        contact.callback = True
        self._schedule_waiting_timers(contact)
        return out

    def transfer_to_queue(self, contact_id: str, queue: str, now: float) -> list[Decision]:
        """The agent transfers a connected contact into `queue` (it waits there afresh)."""
        contact = self._contact(contact_id)
        target = self._queue(queue)
        if contact.state is not _CONNECTED:
            raise InvalidContactTransition(
                f"contact {contact_id}: only a connected contact can be transferred",
                contact_id=contact_id,
                state=contact.state.value,
            )
        if target.config.channel is not contact.channel:
            raise InvalidContactTransition(
                f"contact {contact_id}: queue {queue} is a {target.config.channel.value} queue",
                contact_id=contact_id,
                queue=queue,
            )
        out = self._begin(now)
        contact.queue.transferred += 1
        session = contact.session
        assert session is not None
        contact.session = None
        contact.move(_QUEUED)
        self._after_contact(session)
        contact.arrived_at = self._now
        contact.seq = next(self._contact_seq)
        contact.callback = False
        contact.excluded = None
        self._enter_queue(contact, target, Trigger.CONTACT_ARRIVED)
        return out

    def set_queue_open(self, queue: str, is_open: bool, now: float) -> list[Decision]:
        """Open or close a queue (business hours decided by the server); closed queues apply
        `on_closed` to arrivals, contacts already waiting are still served."""
        record = self._queue(queue)
        out = self._begin(now)
        record.open = is_open
        return out

    # == timers ===============================================================================

    def next_deadline(self) -> float | None:
        """When `tick` must next be called (None: nothing pending)."""
        timers = self._timers
        while timers:
            entry = timers[0]
            if self._timer_valid(entry):
                return entry[0]
            heapq.heappop(timers)
        return None

    def tick(self, now: float) -> list[Decision]:
        """Run every timer due by `now`: ring timeouts, wrap-up ends, rules, limits, audits."""
        out = self._begin(now)
        timers = self._timers
        while timers and timers[0][0] <= self._now:
            entry = heapq.heappop(timers)
            if self._timer_valid(entry):
                self._fire(entry)
        return out

    def audit(self, now: float, live_contact_ids: Collection[str]) -> list[Decision]:
        """Compare with the telephony's live contacts: any contact waiting, ringing or connected
        here that the telephony no longer has is repaired (abandoned or ended)."""
        out = self._begin(now)
        for contact in list(self._contacts.values()):
            if contact.state is _CALLBACK or contact.id in live_contact_ids:
                continue
            agents = [a.id for a in contact.offers]
            if contact.session is not None:
                agents.append(contact.session.agent.id)
            action = "ended" if contact.state is _CONNECTED else "abandoned"
            _log.warning("audit: contact %s is gone from the telephony: %s", contact.id, action)
            out.append(
                Repair(Problem.CONTACT_GONE, agents[0] if agents else None, contact.id, action)
            )
            if contact.state is _CONNECTED:
                self._end_connected(contact)
            else:
                self._abandon(contact)
        return out

    # == queries ==============================================================================

    @property
    def now(self) -> float:
        """The latest time seen."""
        return self._now

    def contact_ids(self) -> list[str]:
        """Every contact the ACD holds (waiting, ringing or connected), in arrival order."""
        return list(self._contacts)

    def queue_names(self) -> list[str]:
        """The queues, in configuration order."""
        return list(self._queues)

    def position(self, contact_id: str) -> int | None:
        """1-based place of a waiting contact in its queue; None once offered."""
        contact = self._contact(contact_id)
        if contact.entry is None:
            return None
        return bisect_left(contact.queue.entries, contact.entry) + 1

    def estimated_wait(self, contact_id: str) -> float | None:
        """Expected remaining wait in seconds (0 once offered; None: nobody could serve it)."""
        return self._estimator.estimate(self._contact(contact_id))

    def why(self, contact_id: str) -> Why | None:
        """Why the contact's latest assignment went the way it did (kept for recent ones)."""
        return self._whys.get(contact_id)

    def contact(self, contact_id: str) -> ContactView:
        """A snapshot of one contact."""
        c = self._contact(contact_id)
        agents = tuple(a.id for a in c.offers)
        if c.session is not None:
            agents = (c.session.agent.id,)
        rule = c.queue.config.rules[c.rule_index].name if c.rule_index >= 0 else None
        customer = c.customer if isinstance(c.customer, Mapping) else {}
        return ContactView(
            contact_id=c.id,
            queue=c.queue.name,
            state=c.state,
            callback=c.callback,
            priority=c.priority,
            requirements=c.requirements,
            rule=rule,
            arrived_at=c.arrived_at,
            entered_queue_at=c.enqueued_at,
            position=self.position(c.id),
            estimated_wait=self._estimator.estimate(c),
            agents=agents,
            customer=customer,
        )

    def waiting(self, queue: str) -> list[ContactView]:
        """The contacts waiting in a queue, best first."""
        return [self.contact(e[3].id) for e in self._queue(queue).entries]

    def agent(self, agent_id: str) -> AgentView:
        """A snapshot of one agent."""
        a = self._agent(agent_id)
        return AgentView(
            agent_id=a.id,
            state=a.state,
            state_since=a.state_since,
            presence=a.presence,
            pause_reason=a.pause_reason,
            skills=MappingProxyType(dict(a.skills)),
            capacity=MappingProxyType(dict(a.capacity)),
            load=MappingProxyType({ch: n for ch, n in a.load.items() if n}),
            contacts=tuple(a.sessions),
            idle_since=MappingProxyType(dict(a.idle_since)),
            answered=a.answered,
            consecutive_misses=a.misses,
            occupancy=a.occupancy(self._now),
        )

    def agents(self) -> list[AgentView]:
        """Snapshots of every agent, in creation order."""
        return [self.agent(a.id) for a in sorted(self._index.agents.values(), key=_ordinal)]

    def queue_figures(self, queue: str) -> QueueFigures:
        """Live figures of a queue."""
        q = self._queue(queue)
        now = self._now
        on_line = [e[3] for e in q.entries if e[3].state is _QUEUED]
        group = self._index.group_for(q.config.channel, self._base_requirements(q))
        staffed, _ = self._estimator.staffed(group)
        free = sum(1 for a in staffed if q.config.channel in a.available)
        offered = q.answered + q.abandoned + q.overflowed
        formula = self.settings.service_level_formula
        return QueueFigures(
            queue=q.name,
            open=q.open,
            waiting=len(on_line),
            callbacks=len(q.entries) - len(on_line),
            longest_wait=max((now - c.enqueued_at for c in on_line), default=0.0),
            staffed=len(staffed),
            free=free,
            offered=offered,
            answered=q.answered,
            answered_within=q.answered_within,
            abandoned=q.abandoned,
            short_abandoned=q.short_abandoned,
            overflowed=q.overflowed,
            transferred=q.transferred,
            service_level=service_level(
                formula,
                offered=offered,
                answered=q.answered,
                answered_within=q.answered_within,
                short_abandoned=q.short_abandoned,
            ),
            service_level_formula=formula,
            asa=q.wait_total / q.answered if q.answered else None,
            aht=q.aht,
        )

    def reset_figures(self) -> None:
        """Start the live counters again (e.g. at midnight)."""
        for q in self._queues.values():
            q.offered = q.answered = q.answered_within = q.abandoned = 0
            q.short_abandoned = q.overflowed = q.transferred = q.handle_count = 0
            q.wait_total = q.handle_total = 0.0

    def check_invariants(self) -> list[str]:
        """Every broken invariant, described (nothing repaired). Slow: for tests and audits."""
        problems = [text for text, _ in self._inspect(repair=False)]
        # The stable-state invariant: no waiting contact could be taken by a free agent.
        for contact in self._index.waiting.values():
            channel = contact.channel
            for agent in self._index.free_all[channel]:
                if meets(agent.skills, contact.requirements) and not (
                    contact.excluded and agent in contact.excluded
                ):
                    problems.append(f"contact {contact.id} waits while {agent.id} is free")
        for agent in self._index.agents.values():
            for channel, cap in agent.capacity.items():
                if agent.load[channel] > cap and channel in agent.available:
                    problems.append(f"agent {agent.id} is over capacity on {channel}")
        return problems

    # == internals: bookkeeping ===============================================================

    def _begin(self, now: float) -> list[Decision]:
        # Time never runs backwards inside the ACD, whatever the caller's clock does.
        if now > self._now:
            self._now = now
        out: list[Decision] = []
        self._out = out
        return out

    def _agent(self, agent_id: str) -> AgentRecord:
        agent = self._index.agents.get(agent_id)
        if agent is None:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id)
        return agent

    def _contact(self, contact_id: str) -> ContactRecord:
        contact = self._contacts.get(contact_id)
        if contact is None:
            raise NoSuchContact(f"no contact {contact_id!r} in the ACD", contact_id=contact_id)
        return contact

    def _queue(self, name: str) -> QueueRecord:
        queue = self._queues.get(name)
        if queue is None:
            raise NoSuchQueue(f"no queue {name!r}", queue=name)
        return queue

    def _touch(self, agent: AgentRecord) -> None:
        state = agent.derived_state()
        if state is not agent.state:
            agent.state = state
            agent.state_since = self._now

    def _refresh(self, agent: AgentRecord) -> None:
        """Bring the agent's free-agent index entries in line with presence and load."""
        ready = agent.presence is _READY
        for channel in CHANNELS:
            should = ready and agent.load[channel] < agent.capacity.get(channel, 0)
            if should != (channel in agent.available):
                if should:
                    self._index.add_free(agent, channel)
                else:
                    self._index.remove_free(agent, channel)

    def _start_work(self, agent: AgentRecord) -> None:
        if agent.working == 0:
            agent.work_since = self._now
        agent.working += 1

    def _push(
        self, due: float, kind: _Timer, target: object, version: int, extra: object = None
    ) -> None:
        heapq.heappush(self._timers, (due, next(self._timer_seq), kind, target, version, extra))

    # == internals: entering, waiting, rules ==================================================

    def _base_requirements(self, queue: QueueRecord) -> Requirements:
        return tuple(sorted(queue.config.skills.items()))

    def _set_requirements(self, contact: ContactRecord) -> None:
        queue = contact.queue
        rule_index = contact.rule_index
        extra = contact.extra_skills
        key = (queue.name, rule_index)
        if not extra:
            cached = self._req_cache.get(key)
            if cached is not None:
                contact.requirements, delta = cached
                contact.priority = queue.config.priority + contact.own_priority + delta
                return
        config = queue.config
        rule: Rule | None = config.rules[rule_index] if rule_index >= 0 else None
        base = dict(rule.skills if rule is not None and rule.skills is not None else config.skills)
        for skill, level in extra.items():
            if level > base.get(skill, 0):
                base[skill] = level
        delta = 0
        if rule is not None:
            base.update(rule.add_skills)
            for skill in rule.drop_skills:
                base.pop(skill, None)
            delta = rule.priority_delta
        requirements = tuple(sorted(base.items()))
        if not extra:
            self._req_cache[key] = (requirements, delta)
        contact.requirements = requirements
        contact.priority = config.priority + contact.own_priority + delta

    def _insert_waiting(self, contact: ContactRecord) -> None:
        group = self._index.group_for(contact.channel, contact.requirements)
        entry = (-contact.priority, contact.arrived_at, contact.seq, contact)
        insort(group.entries, entry)
        insort(contact.queue.entries, entry)
        contact.entry = entry
        contact.group = group
        self._index.waiting[contact.id] = contact
        if contact.state is _QUEUED:
            contact.queue.on_line += 1

    def _remove_waiting(self, contact: ContactRecord) -> None:
        entry = contact.entry
        group = contact.group
        assert entry is not None
        assert group is not None
        entries = group.entries
        del entries[bisect_left(entries, entry)]
        entries = contact.queue.entries
        del entries[bisect_left(entries, entry)]
        contact.entry = None
        contact.group = None
        del self._index.waiting[contact.id]
        if contact.state is _QUEUED:
            contact.queue.on_line -= 1

    def _enter_queue(self, contact: ContactRecord, queue: QueueRecord, trigger: Trigger) -> None:
        """The contact (in no waiting list) enters `queue`: limits first, then placement."""
        contact.queue = queue
        contact.enqueued_at = self._now
        contact.rule_index = -1
        contact.version += 1  # timers of a previous queue no longer apply
        config = queue.config
        if not queue.open and config.on_closed is not None:
            self._overflow(contact, OverflowReason.CLOSED, config.on_closed, trigger)
            return
        if (
            config.max_length is not None
            and config.on_full is not None
            and contact.state is _QUEUED
            and queue.on_line >= config.max_length
        ):
            self._overflow(contact, OverflowReason.QUEUE_FULL, config.on_full, trigger)
            return
        self._place(contact, trigger, check_no_agents=True)

    def _place(self, contact: ContactRecord, trigger: Trigger, *, check_no_agents: bool) -> None:
        """Apply the rule in force, then offer to a free agent or leave the contact waiting."""
        queue = contact.queue
        config = queue.config
        inserted = False
        if config.rules:
            if queue.dynamic_rules:
                # Position, queue length and EWT are measured with the contact in its place.
                self._set_requirements(contact)
                self._insert_waiting(contact)
                inserted = True
            new = self._evaluate_rule(contact)
            if new != contact.rule_index:
                if inserted:
                    self._remove_waiting(contact)
                    inserted = False
                rule = config.rules[new] if new >= 0 else None
                if rule is not None and rule.move_to is not None:
                    self._move_by_rule(contact, rule, trigger)
                    return
                contact.rule_index = new
                self._set_requirements(contact)
                self._out.append(
                    RuleApplied(
                        contact.id,
                        queue.name,
                        rule.name if rule else None,
                        contact.requirements,
                        contact.priority,
                    )
                )
            elif not inserted:
                self._set_requirements(contact)
        else:
            self._set_requirements(contact)
        choice = self._matcher.best_agents_for(contact, self._now, self._rng)
        if choice is not None:
            if inserted:
                self._remove_waiting(contact)
            self._offer(contact, choice, trigger, 0)
            return
        if (
            check_no_agents
            and config.on_no_agents is not None
            and contact.state is _QUEUED
            and self._estimator.logged_in(
                self._index.group_for(contact.channel, contact.requirements)
            )
            == 0
        ):
            if inserted:
                self._remove_waiting(contact)
            self._overflow(contact, OverflowReason.NO_AGENTS, config.on_no_agents, trigger)
            return
        if not inserted:
            self._insert_waiting(contact)
        self._schedule_waiting_timers(contact)

    def _schedule_waiting_timers(self, contact: ContactRecord) -> None:
        queue = contact.queue
        if queue.time_comparisons:
            self._schedule_rule_timer(contact)
        config = queue.config
        if contact.state is _QUEUED and config.max_wait is not None:
            self._push(
                max(contact.enqueued_at + config.max_wait, self._now),
                _Timer.MAX_WAIT,
                contact,
                contact.version,
            )
        if queue.dynamic_rules and not queue.periodic_pending:
            queue.periodic_pending = True
            self._push(self._now + self.settings.rule_interval, _Timer.PERIODIC, queue, 0)

    def _schedule_rule_timer(self, contact: ContactRecord) -> None:
        due = contact.queue.next_rule_change(contact, self._now)
        if due is not None:
            self._push(due, _Timer.RULE, contact, contact.version)

    def _evaluate_rule(self, contact: ContactRecord) -> int:
        """Index of the first rule whose condition holds, -1 for none (base requirements)."""
        for i, rule in enumerate(contact.queue.config.rules):
            if self._holds(rule.when, contact):
                return i
        return -1

    def _holds(self, condition: Condition, contact: ContactRecord) -> bool:
        now = self._now
        for comparison in condition.comparisons:
            metric = comparison.metric
            if metric is Metric.WAIT:
                ok = comparison.holds_since(now, contact.enqueued_at)
            elif metric is Metric.TOTAL_WAIT:
                ok = comparison.holds_since(now, contact.arrived_at)
            elif metric is Metric.EWT:
                ewt = self._estimator.estimate(contact)
                ok = comparison.holds(math.inf if ewt is None else ewt)
            elif metric is Metric.POSITION:
                entry = contact.entry
                position = bisect_left(contact.queue.entries, entry) + 1 if entry else 1
                ok = comparison.holds(float(position))
            else:
                length = len(contact.queue.entries) + (0 if contact.entry else 1)
                ok = comparison.holds(float(length))
            if not ok:
                return False
        return True

    def _reevaluate(self, contact: ContactRecord) -> None:
        """A waiting contact's rule may have changed: apply it and try to place it again."""
        new = self._evaluate_rule(contact)
        if new == contact.rule_index:
            return
        queue = contact.queue
        rule = queue.config.rules[new] if new >= 0 else None
        self._remove_waiting(contact)
        if rule is not None and rule.move_to is not None:
            self._move_by_rule(contact, rule, Trigger.REQUIREMENTS_CHANGED)
            return
        contact.rule_index = new
        self._set_requirements(contact)
        self._out.append(
            RuleApplied(
                contact.id,
                queue.name,
                rule.name if rule else None,
                contact.requirements,
                contact.priority,
            )
        )
        choice = self._matcher.best_agents_for(contact, self._now, self._rng)
        if choice is not None:
            self._offer(contact, choice, Trigger.REQUIREMENTS_CHANGED, 0)
        else:
            self._insert_waiting(contact)

    def _move_by_rule(self, contact: ContactRecord, rule: Rule, trigger: Trigger) -> None:
        assert rule.move_to is not None
        source = contact.queue
        source.overflowed += 1
        contact.moves += 1
        self._out.append(Moved(contact.id, source.name, rule.move_to, rule.name))
        self._enter_queue(contact, self._queues[rule.move_to], trigger)

    def _overflow(
        self,
        contact: ContactRecord,
        reason: OverflowReason,
        action: OverflowAction,
        trigger: Trigger,
    ) -> None:
        """Carry out a limit's action on a contact that is in no waiting list."""
        queue = contact.queue
        self._out.append(Overflow(contact.id, queue.name, reason, action.action, action.target))
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "contact %s in %s: %s -> %s %s",
                contact.id,
                queue.name,
                reason.value,
                action.action.value,
                action.target or "",
            )
        kind = action.action
        if kind is ActionKind.CALLBACK:
            contact.callback = True
            if contact.state is _QUEUED:
                contact.move(_CALLBACK)
            self._place(contact, trigger, check_no_agents=False)
            return
        queue.overflowed += 1
        if kind is ActionKind.QUEUE:
            assert action.target is not None
            contact.moves += 1
            self._enter_queue(contact, self._queues[action.target], trigger)
            return
        self._forget(contact)

    def _forget(self, contact: ContactRecord) -> None:
        contact.move(ContactState.LEFT)
        del self._contacts[contact.id]

    def _leave_when_empty(self, agent: AgentRecord) -> None:
        """After a logout: contacts nobody logged in can serve any more get `on_no_agents`."""
        for channel, capacity in agent.capacity.items():
            if capacity <= 0:
                continue
            for group in list(self._index.groups[channel].values()):
                if not group.entries or not meets(agent.skills, group.requirements):
                    continue
                if self._estimator.logged_in(group) > 0:
                    continue
                for entry in list(group.entries):
                    contact = entry[3]
                    on_no_agents = contact.queue.config.on_no_agents
                    if contact.state is _QUEUED and on_no_agents is not None:
                        self._remove_waiting(contact)
                        self._overflow(
                            contact, OverflowReason.NO_AGENTS, on_no_agents, Trigger.REQUEUED
                        )

    # == internals: offers and sessions =======================================================

    def _offer(
        self, contact: ContactRecord, choice: AgentChoice, trigger: Trigger, groups: int
    ) -> None:
        """Reserve the chosen agent(s) for a contact that is in no waiting list."""
        now = self._now
        queue = contact.queue
        config = queue.config
        channel = contact.channel
        contact.move(_OFFERED)
        for agent in choice.agents:
            session = Session(agent, contact, now)
            agent.sessions[contact.id] = session
            contact.offers[agent] = session
            load = agent.load[channel] + 1
            agent.load[channel] = load
            if load >= agent.capacity.get(channel, 0) and channel in agent.available:
                self._index.remove_free(agent, channel)
            self._touch(agent)
        queue.rr_last = choice.agents[0].ordinal
        rule = config.rules[contact.rule_index].name if contact.rule_index >= 0 else None
        why = Why(
            trigger,
            queue.name,
            rule,
            contact.requirements,
            contact.priority,
            now - contact.arrived_at,
            config.strategy,
            choice.criterion,
            choice.value,
            frozenset([a.id for a in choice.candidates]),
            groups,
        )
        if self.settings.why_history:
            whys = self._whys
            whys[contact.id] = why
            whys.move_to_end(contact.id)
            if len(whys) > self.settings.why_history:
                whys.popitem(last=False)
        self._push(now + config.ring_timeout, _Timer.RING, contact, contact.version)
        if config.strategy is Strategy.RING_ALL:
            ids = tuple(a.id for a in choice.agents)
            self._out.append(RingAll(contact.id, ids, queue.name, contact.callback, why))
        else:
            ids = (choice.agents[0].id,)
            self._out.append(Assign(contact.id, ids[0], queue.name, contact.callback, why))
        if _log.isEnabledFor(logging.INFO):
            _log.info("assign %s -> %s: %s", contact.id, ",".join(ids), why.describe())

    def _serve_agent(self, agent: AgentRecord) -> None:
        """The agent may have room: give them the best waiting contacts they can take."""
        if agent.presence is not _READY:
            return
        for channel in list(agent.available):
            while channel in agent.available:
                found = self._matcher.best_contact_for(agent, channel)
                if found is None:
                    break
                contact, groups = found
                self._remove_waiting(contact)
                choice = AgentChoice(
                    (agent,), Criterion.BEST_CONTACT, self._now - contact.arrived_at, (agent,)
                )
                self._offer(contact, choice, Trigger.AGENT_AVAILABLE, groups)

    def _withdraw(self, session: Session, reason: CancelReason | None, *, count_miss: bool) -> None:
        """An offer failed (missed, timed out, agent gone): release the agent, and when no
        other agent still rings, put the contact back in its place."""
        contact = session.contact
        agent = session.agent
        del contact.offers[agent]
        if reason is not None:
            self._out.append(CancelOffer(contact.id, agent.id, reason))
        self._finish_session(session, idle_reset=False)
        if count_miss:
            agent.misses += 1
            limit = self.settings.auto_pause_after_misses
            if limit and agent.misses >= limit and agent.presence is _READY:
                agent.move_presence(Presence.PAUSED)
                agent.pause_reason = AUTO_PAUSE_REASON
                self._refresh(agent)
                self._estimator.staffing_changed()
                self._touch(agent)
                self._out.append(AutoPause(agent.id, AUTO_PAUSE_REASON, agent.misses))
                _log.warning("agent %s auto-paused after %d missed offers", agent.id, agent.misses)
            if self.settings.ring_retry > 0:
                until = self._now + self.settings.ring_retry
                if contact.excluded is None:
                    contact.excluded = {}
                contact.excluded[agent] = until
                self._push(until, _Timer.RETRY, contact, 0, agent)
        if not contact.offers:
            contact.move(_CALLBACK if contact.callback else _QUEUED)
            self._place(contact, Trigger.REQUEUED, check_no_agents=False)
        self._serve_agent(agent)

    def _finish_session(self, session: Session, *, idle_reset: bool) -> None:
        """The agent is free of this contact (after wrap-up, or an offer that failed)."""
        agent = session.agent
        channel = session.channel
        was = session.state
        session.move(SessionState.FINISHED)
        del agent.sessions[session.contact.id]
        agent.load[channel] -= 1
        now = self._now
        if was is SessionState.BUSY or was is SessionState.WRAP_UP:
            agent.working -= 1
            if agent.working == 0:
                agent.work_time += now - agent.work_since
            assert session.answered_at is not None
            self._handled(session.queue, now - session.answered_at)
        if idle_reset:
            agent.idle_since[channel] = now
        if (
            channel not in agent.available
            and agent.presence is _READY
            and agent.load[channel] < agent.capacity.get(channel, 0)
        ):
            self._index.add_free(agent, channel)
        self._touch(agent)

    def _handled(self, queue: QueueRecord, handle_time: float) -> None:
        alpha = self.settings.handle_time_smoothing
        queue.aht += alpha * (handle_time - queue.aht)
        queue.handle_total += handle_time
        queue.handle_count += 1

    def _end_connected(self, contact: ContactRecord) -> None:
        session = contact.session
        assert session is not None
        contact.session = None
        self._forget(contact)
        self._after_contact(session)

    def _after_contact(self, session: Session) -> None:
        """The conversation is over: wrap-up if the queue has one, else the agent is free."""
        wrap_up = session.queue.config.wrap_up
        agent = session.agent
        if wrap_up > 0:
            session.move(SessionState.WRAP_UP)
            self._push(self._now + wrap_up, _Timer.WRAP_UP, session, session.version)
            self._touch(agent)
        else:
            self._finish_session(session, idle_reset=True)
            self._serve_agent(agent)

    def _abandon(self, contact: ContactRecord) -> None:
        queue = contact.queue
        queue.abandoned += 1
        if self._now - contact.arrived_at <= queue.config.service_level_seconds:
            queue.short_abandoned += 1
        if contact.entry is not None:
            self._remove_waiting(contact)
        released = list(contact.offers.values())
        contact.offers.clear()
        for session in released:
            self._out.append(
                CancelOffer(contact.id, session.agent.id, CancelReason.CONTACT_ABANDONED)
            )
            self._finish_session(session, idle_reset=False)
        self._forget(contact)
        for session in released:
            self._serve_agent(session.agent)

    # == internals: timers ====================================================================

    def _timer_valid(self, entry: _TimerEntry) -> bool:
        due, _, kind, target, version, extra = entry
        if kind is _Timer.RULE:
            assert isinstance(target, ContactRecord)
            return target.version == version and target.waiting
        if kind is _Timer.MAX_WAIT:
            assert isinstance(target, ContactRecord)
            return target.version == version and target.state is _QUEUED
        if kind is _Timer.RING:
            assert isinstance(target, ContactRecord)
            return target.version == version and target.state is _OFFERED
        if kind is _Timer.WRAP_UP:
            assert isinstance(target, Session)
            return target.version == version
        if kind is _Timer.RETRY:
            assert isinstance(target, ContactRecord)
            assert isinstance(extra, AgentRecord)
            excluded = target.excluded
            return excluded is not None and excluded.get(extra) == due
        return True

    def _fire(self, entry: _TimerEntry) -> None:
        _, _, kind, target, _, extra = entry
        if kind is _Timer.RING:
            assert isinstance(target, ContactRecord)
            for session in list(target.offers.values()):
                # A withdrawal can requeue and re-offer the contact: skip stale sessions.
                if target.offers.get(session.agent) is session:
                    self._withdraw(session, CancelReason.RING_TIMEOUT, count_miss=True)
        elif kind is _Timer.WRAP_UP:
            assert isinstance(target, Session)
            self._out.append(WrapUpEnded(target.agent.id, target.contact.id))
            self._finish_session(target, idle_reset=True)
            self._serve_agent(target.agent)
        elif kind is _Timer.RULE:
            assert isinstance(target, ContactRecord)
            self._reevaluate(target)
            if target.waiting:
                self._schedule_rule_timer(target)
        elif kind is _Timer.MAX_WAIT:
            assert isinstance(target, ContactRecord)
            on_max_wait = target.queue.config.on_max_wait
            assert on_max_wait is not None
            self._remove_waiting(target)
            self._overflow(target, OverflowReason.MAX_WAIT, on_max_wait, Trigger.REQUEUED)
        elif kind is _Timer.RETRY:
            assert isinstance(target, ContactRecord)
            assert isinstance(extra, AgentRecord)
            excluded = target.excluded
            assert excluded is not None
            # Every pause that is over ends now (ring-all: all the agents rung together).
            for agent in [a for a, until in excluded.items() if until <= self._now]:
                del excluded[agent]
            if not excluded:
                target.excluded = None
            if target.waiting and target.entry is not None:
                choice = self._matcher.best_agents_for(target, self._now, self._rng)
                if choice is not None:
                    self._remove_waiting(target)
                    self._offer(target, choice, Trigger.RETRY, 0)
        elif kind is _Timer.PERIODIC:
            assert isinstance(target, QueueRecord)
            target.periodic_pending = False
            for entry_ in list(target.entries):
                contact = entry_[3]
                if contact.entry is entry_ and contact.queue is target:
                    self._reevaluate(contact)
            if target.entries and target.dynamic_rules:
                target.periodic_pending = True
                self._push(self._now + self.settings.rule_interval, _Timer.PERIODIC, target, 0)
        elif kind is _Timer.AUDIT:
            self._end_overlong()
            for text, repair in self._inspect(repair=True):
                _log.warning("invariant broken and repaired: %s", text)
                self._out.append(repair)
            assert self.settings.audit_interval is not None
            self._push(self._now + self.settings.audit_interval, _Timer.AUDIT, None, 0)

    def _end_overlong(self) -> None:
        """Busy far longer than any real call: the end of it was lost; end it here.

        Checked at each audit rather than with a timer per call (one heap entry per call
        that almost never fires would cost every call)."""
        limit = self.settings.max_handle_time
        if limit is None:
            return
        for agent in list(self._index.agents.values()):
            for session in list(agent.sessions.values()):
                contact = session.contact
                started = session.answered_at
                if (
                    session.state is SessionState.BUSY
                    and started is not None
                    and self._now - started >= limit
                    and contact.session is session
                ):
                    _log.warning(
                        "agent %s busy with %s for over %.0f s: ending it",
                        agent.id,
                        contact.id,
                        limit,
                    )
                    self._out.append(
                        Repair(Problem.STUCK_BUSY, agent.id, contact.id, "ended (too long)")
                    )
                    self._end_connected(contact)

    # == internals: invariants ================================================================

    def _inspect(self, *, repair: bool) -> list[tuple[str, Repair]]:
        """Check agents, sessions, contacts and indexes against each other."""
        found: list[tuple[str, Repair]] = []
        index = self._index
        for agent in list(index.agents.values()):
            for session in list(agent.sessions.values()):
                contact = session.contact
                live = self._contacts.get(contact.id) is contact
                if session.state is SessionState.RESERVED:
                    ok = live and contact.state is _OFFERED and contact.offers.get(agent) is session
                    problem = Problem.STUCK_RESERVED
                elif session.state is SessionState.BUSY:
                    ok = live and contact.state is _CONNECTED and contact.session is session
                    problem = Problem.STUCK_BUSY
                else:
                    ok = True
                    problem = Problem.STUCK_BUSY
                if not ok:
                    text = (
                        f"agent {agent.id} is {session.state.value} with contact {contact.id}, "
                        f"which is {contact.state.value if live else 'gone'}"
                    )
                    found.append((text, Repair(problem, agent.id, contact.id, "released agent")))
                    if repair:
                        if contact.offers.get(agent) is session:
                            del contact.offers[agent]
                        if contact.session is session:
                            contact.session = None
                        self._finish_session(session, idle_reset=True)
            for channel in CHANNELS:
                load = sum(1 for s in agent.sessions.values() if s.channel is channel)
                if load != agent.load[channel]:
                    text = (
                        f"agent {agent.id} has load {agent.load[channel]} on {channel} "
                        f"but {load} contacts"
                    )
                    found.append((text, Repair(Problem.LOAD_MISMATCH, agent.id, None, "recounted")))
                    if repair:
                        agent.load[channel] = load
                should = agent.presence is _READY and agent.load[channel] < agent.capacity.get(
                    channel, 0
                )
                listed = agent in index.free_all[channel] and all(
                    agent in index.free[channel].get(skill, ()) for skill in agent.skills
                )
                if should != (channel in agent.available) or (channel in agent.available) != listed:
                    text = f"agent {agent.id} free-index entry on {channel} is wrong"
                    found.append(
                        (text, Repair(Problem.INDEX_MISMATCH, agent.id, None, "reindexed"))
                    )
                    if repair:
                        index.remove_free(agent, channel)
                        if should:
                            index.add_free(agent, channel)
            if repair:
                self._touch(agent)
        for contact in list(self._contacts.values()):
            if contact.waiting:
                in_lists = (
                    contact.entry is not None
                    and contact.group is not None
                    and index.waiting.get(contact.id) is contact
                )
                if not in_lists:
                    text = f"contact {contact.id} is {contact.state.value} but not in the lists"
                    found.append(
                        (text, Repair(Problem.INDEX_MISMATCH, None, contact.id, "requeued"))
                    )
                    if repair:
                        index.waiting.pop(contact.id, None)
                        contact.entry = contact.group = None
                        self._place(contact, Trigger.REQUEUED, check_no_agents=False)
            elif contact.state is _OFFERED and not contact.offers:
                text = f"contact {contact.id} is offered to nobody"
                found.append((text, Repair(Problem.STUCK_RESERVED, None, contact.id, "requeued")))
                if repair:
                    contact.move(_CALLBACK if contact.callback else _QUEUED)
                    self._place(contact, Trigger.REQUEUED, check_no_agents=False)
        for contact_id, contact in list(index.waiting.items()):
            if self._contacts.get(contact_id) is not contact or not contact.waiting:
                text = f"contact {contact_id} is listed as waiting but is not"
                found.append((text, Repair(Problem.INDEX_MISMATCH, None, contact_id, "unlisted")))
                if repair and contact.entry is not None:
                    self._remove_waiting(contact)
        if repair:
            for agent in list(index.agents.values()):
                self._serve_agent(agent)
        return found


def _ordinal(agent: AgentRecord) -> int:
    return agent.ordinal


__all__ = ["AUTO_PAUSE_REASON", "Dispatcher", "WaitingGroup"]
