"""What the web front reads and changes on the contact-center floor: the one data-access module.

Everything the monitor and the desktop know about agents, waiting contacts and queues comes
through `Floor`, which today reads the call controller (`CALLS`) found in the service manager.
When the ACD (`acd/`) takes over agents and queues, this module is the one to change: the
views below are what the rest of the web front relies on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from acd import AcdError
from acd.states import Presence
from commserver.agents import Agent, AgentState
from commserver.calls import CallController
from commserver.contacts import Contact, ContactState, Direction
from commserver.errors import NoSuchContact, NoSuchSpySession
from commserver.keys import CALLS
from commserver.supervision import SpySession
from commserver.telephony.base import AgentEndpoint, BackendCapability, SpyMode
from monitor.domain_errors import InvalidRequest, NoSuchAgent
from monitor.queue_stats import QueueDayStats
from service_manager import ServiceManager

WAITING_STATES = frozenset({ContactState.QUEUED, ContactState.OFFERED})
#: States a supervisor or the agent may move an agent to from the web front; the ACD decides
#: whether the move is allowed now (a pause while talking applies after the call; a logout
#: while talking is refused).
SETTABLE_STATES = frozenset({AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT})
MAX_REASON = 60
MAX_SKILLS = 50
SKILL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class SpyView:
    """A supervisor listening to, whispering to or barging into an agent's call."""

    id: str
    agent_id: str
    supervisor: str
    mode: SpyMode
    started_at: datetime

    @classmethod
    def of(cls, session: SpySession) -> SpyView:
        """The view of a running session."""
        return cls(session.id, session.agent_id, session.supervisor, session.mode,
                   session.started_at)


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent as the monitor shows them."""

    id: str
    name: str
    state: AgentState
    since: datetime
    pause_reason: str
    skills: dict[str, int]
    calls_taken: int
    contact_id: str | None
    contact_caller: str | None
    contact_queue: str | None
    spies: tuple[SpyView, ...] = ()  # supervisors on the agent's call now


@dataclass(frozen=True, slots=True)
class ContactView:
    """One live contact as the monitor and the desktop show it."""

    id: str
    channel: str
    caller: str
    queue: str | None
    state: ContactState
    priority: int
    arrived_at: datetime
    queued_at: datetime | None
    answered_at: datetime | None
    agent_id: str | None
    position: int | None = None
    estimated_wait: float | None = None
    direction: str = "inbound"  # "outbound": an agent's own call (caller = the dialled number)

    @classmethod
    def of(
        cls,
        contact: Contact,
        position: int | None = None,
        estimated_wait: float | None = None,
        priority: int | None = None,
    ) -> ContactView:
        """The view of a live contact (the ACD's position, wait estimate and priority)."""
        return cls(
            id=contact.id,
            channel=contact.channel.value,
            caller=contact.caller,
            queue=contact.queue,
            state=contact.state,
            priority=contact.priority if priority is None else priority,
            arrived_at=contact.arrived_at,
            queued_at=contact.queued_at,
            answered_at=contact.answered_at,
            agent_id=contact.agent_id,
            position=position,
            estimated_wait=None if estimated_wait is None else round(estimated_wait, 1),
            direction=contact.direction.value,
        )


@dataclass(frozen=True, slots=True)
class QueueView:
    """One queue's live and today's figures."""

    name: str
    waiting: int
    oldest_queued_at: datetime | None
    agents_logged_in: int
    agents_ready: int
    offered_today: int
    answered_today: int
    answered_within_today: int
    abandoned_today: int
    service_level_today: float | None
    service_level_seconds: float
    service_level_formula: str


def check_skills(skills: Mapping[str, object]) -> dict[str, int]:
    """A skill map from a request: 1-64 character names, whole levels 1-100, at most 50."""
    if len(skills) > MAX_SKILLS:
        raise InvalidRequest(f"an agent has at most {MAX_SKILLS} skills", field="skills")
    checked: dict[str, int] = {}
    for name, level in skills.items():
        if not isinstance(name, str) or not SKILL_NAME.match(name):
            raise InvalidRequest(
                f"skill name {name!r} must be 1-64 letters, digits, '_', '-' or '.'",
                field="skills",
            )
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 100:
            raise InvalidRequest(f"skill {name!r}: the level must be a whole number 1-100",
                                 field="skills")
        checked[name] = level
    return checked


def check_reason(new: AgentState, reason: str) -> str:
    """A pause reason, trimmed; only pauses carry one."""
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise InvalidRequest(f"a pause reason has at most {MAX_REASON} characters", field="reason")
    if new is not AgentState.PAUSED:
        return ""
    if not reason:
        raise InvalidRequest("a pause needs a reason", field="reason")
    return reason


class Floor:
    """Read and act on agents, contacts and queues (through the call controller for now)."""

    def __init__(self, services: ServiceManager, stats: QueueDayStats) -> None:
        self._services = services
        self.stats = stats

    @property
    def available(self) -> bool:
        """Whether a call controller is registered (a bare web front has none)."""
        return CALLS in self._services

    @property
    def _calls(self) -> CallController:
        return self._services.get(CALLS)

    def queue_names(self) -> list[str]:
        """The configured queues, in configuration order."""
        return list(self._calls.queues) if self.available else []

    def configure_stats(self) -> None:
        """Give today's figures each queue's threshold and the site's formula (at start)."""
        if self.available:
            calls = self._calls
            self.stats.configure(
                {name: q.service_level_seconds for name, q in calls.queues.items()},
                calls.acd.settings.service_level_formula,
            )

    def _agent(self, agent_id: str) -> Agent:
        agent = self._calls.agents.get(agent_id) if self.available else None
        if agent is None:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id)
        return agent

    def contact(self, contact_id: str | None) -> Contact | None:
        """A live contact, or None once it has gone."""
        if contact_id is None or not self.available:
            return None
        try:
            return self._calls.contact(contact_id)
        except NoSuchContact:
            return None

    def _agent_view(self, agent: Agent) -> AgentView:
        contact = self.contact(agent.contact_id)
        return AgentView(
            id=agent.id,
            name=agent.name,
            state=agent.state,
            since=agent.state_since,
            pause_reason=agent.pause_reason,
            skills=dict(agent.skills),
            calls_taken=agent.calls_taken,
            contact_id=agent.contact_id,
            contact_caller=contact.caller if contact else None,
            contact_queue=contact.queue if contact else None,
            spies=tuple(SpyView.of(s) for s in self._calls.supervision.of_agent(agent.id)),
        )

    def agent(self, agent_id: str) -> AgentView:
        """One agent; `NoSuchAgent` if unknown."""
        return self._agent_view(self._agent(agent_id))

    def agents(self) -> list[AgentView]:
        """Every agent, by id."""
        if not self.available:
            return []
        return [self._agent_view(a) for a in sorted(self._calls.agents.values(), key=_by_id)]

    def waiting(self) -> list[ContactView]:
        """Contacts queued or being offered, longest waiting first."""
        if not self.available:
            return []
        acd = self._calls.acd
        known = set(acd.contact_ids())
        views = []
        for contact in self._calls.live_contacts:
            if contact.state not in WAITING_STATES or contact.direction is Direction.OUTBOUND:
                continue  # an agent's own call shows on their row, it waits for nobody
            if contact.id not in known:
                views.append(ContactView.of(contact))
                continue
            # The ACD's priority is the effective one (queue + customer + escalation rules).
            routed = acd.contact(contact.id)
            views.append(
                ContactView.of(contact, routed.position, routed.estimated_wait, routed.priority)
            )
        return views

    def queues(self) -> list[QueueView]:
        """Every configured queue with its live and today's figures."""
        if not self.available:
            return []
        calls = self._calls
        waiting = [c for c in calls.live_contacts if c.state in WAITING_STATES]
        agents = list(calls.agents.values())
        views = []
        for name, settings in calls.queues.items():
            here = [c for c in waiting if c.queue == name]
            skilled = [
                a for a in agents if a.state is not AgentState.LOGGED_OUT
                and a.has_skills(dict(settings.skills))
            ]
            oldest = min((c.queued_at for c in here if c.queued_at), default=None)
            day = self.stats.figures(name)
            views.append(
                QueueView(
                    name=name,
                    waiting=len(here),
                    oldest_queued_at=oldest,
                    agents_logged_in=len(skilled),
                    agents_ready=sum(a.state is AgentState.READY for a in skilled),
                    offered_today=day.offered,
                    answered_today=day.answered,
                    answered_within_today=day.answered_within,
                    abandoned_today=day.abandoned,
                    service_level_today=self.stats.service_level(name),
                    service_level_seconds=self.stats.threshold(name),
                    service_level_formula=self.stats.formula.value,
                )
            )
        return views

    def set_agent_state(self, agent_id: str, new: AgentState, reason: str = "") -> AgentView:
        """Ready, pause (with a reason) or log out an agent, as the ACD allows.

        "Ready" from wrap-up also ends the wrap-up: the agent says they are done.
        """
        agent = self._agent(agent_id)
        if new not in SETTABLE_STATES:
            raise InvalidRequest(
                f"agents can be set to {', '.join(sorted(s.value for s in SETTABLE_STATES))}"
                f" from here, not {new.value}",
                field="state",
            )
        reason = check_reason(new, reason)
        calls = self._calls
        if new is AgentState.READY and self._presence(agent_id) is Presence.READY:
            if agent.state is AgentState.WRAP_UP:
                calls.end_wrap_up(agent_id)
            return self._agent_view(agent)
        if new is AgentState.LOGGED_OUT and agent.state is AgentState.LOGGED_OUT:
            return self._agent_view(agent)
        calls.set_agent_state(agent_id, new, reason)
        if new is AgentState.READY and agent.state is AgentState.WRAP_UP:
            calls.end_wrap_up(agent_id)
        return self._agent_view(agent)

    def agent_ids(self) -> list[str]:
        """Every configured agent's id, sorted."""
        return sorted(self._calls.agents) if self.available else []

    def set_skills(self, agent_id: str, skills: Mapping[str, int]) -> AgentView:
        """Change an agent's skills live (the ACD routes with them from now on)."""
        agent = self._agent(agent_id)
        self._calls.set_agent_skills(agent_id, check_skills(skills))
        return self._agent_view(agent)

    def end_wrap_up(self, agent_id: str) -> AgentView:
        """The agent is done wrapping up (then ready, or paused if a pause was asked for)."""
        agent = self._agent(agent_id)
        if agent.state is AgentState.WRAP_UP:
            self._calls.end_wrap_up(agent_id)
        return self._agent_view(agent)

    def spy_modes(self) -> list[SpyMode]:
        """What supervisors can do on agents' calls with the running backend."""
        return list(self._calls.supervision.modes) if self.available else []

    def spy_phone(self, agent_id: str | None) -> AgentEndpoint | None:
        """The phone of the agent a supervisor's account is linked to (None: none known)."""
        agent = self._calls.agents.get(agent_id or "") if self.available else None
        return agent.endpoint if agent is not None else None

    async def spy(
        self, agent_id: str, mode: SpyMode, *, supervisor: str, phone: AgentEndpoint
    ) -> SpyView:
        """Ring a supervisor's phone into an agent's call; returns once they answered."""
        self._agent(agent_id)
        session = await self._calls.spy_on_agent(
            agent_id, mode, supervisor=supervisor, phone=phone
        )
        return SpyView.of(session)

    def spy_sessions(self) -> list[SpyView]:
        """Every running spy session, oldest first."""
        return [SpyView.of(s) for s in self._calls.supervision.sessions] if self.available else []

    def spy_session(self, session_id: str) -> SpyView:
        """A running spy session; `NoSuchSpySession` if it is not running."""
        if not self.available:
            raise NoSuchSpySession(f"no spy session {session_id!r}", session_id=session_id)
        return SpyView.of(self._calls.supervision.get(session_id))

    async def stop_spy(self, session_id: str, *, by: str) -> SpyView:
        """End a spy session (the call goes on)."""
        self.spy_session(session_id)
        return SpyView.of(await self._calls.stop_spy(session_id, by=by))

    # -- the desktop: the agent's phone and their own calls (`monitor/desktop_api.py`) ---------

    def phone(self, agent_id: str) -> tuple[AgentEndpoint, AgentEndpoint]:
        """Where an agent's calls ring now, and the phone configured for them."""
        agent = self._agent(agent_id)
        return agent.endpoint, self._calls.configured_phone(agent_id)

    def set_phone(
        self, agent_id: str, *, extension: str | None, external_number: str | None
    ) -> AgentEndpoint:
        """Choose the agent's phone (neither given: the configured one)."""
        self._agent(agent_id)
        return self._calls.set_agent_phone(
            agent_id, extension=extension, external_number=external_number
        )

    def capabilities(self) -> frozenset[BackendCapability]:
        """What the running telephony backend can do."""
        return self._calls.backend.capabilities if self.available else frozenset()

    def dial(self, agent_id: str, number: str) -> Contact:
        """The agent's click-to-dial call to `number`."""
        self._agent(agent_id)
        return self._calls.dial(agent_id, number)

    def hang_up(self, agent_id: str) -> AgentView:
        """End the agent's outbound call."""
        agent = self._agent(agent_id)
        self._calls.hang_up_outbound(agent_id)
        return self._agent_view(agent)

    def voicemail_root(self) -> Path | None:
        """Where the call controller records voicemail."""
        return self._calls.data_dir / "voicemail" if self.available else None

    def boxes_of(self, agent_id: str) -> frozenset[str]:
        """The voicemail boxes an agent may hear: their own and those of queues they serve."""
        agent = self._agent(agent_id)
        queues = {
            name for name, q in self._calls.queues.items() if agent.has_skills(dict(q.skills))
        }
        return frozenset({agent_id, *queues})

    def _presence(self, agent_id: str) -> Presence:
        try:
            return self._calls.acd.agent(agent_id).presence
        except AcdError:
            raise NoSuchAgent(f"no agent {agent_id!r}", agent_id=agent_id) from None


def _by_id(agent: Agent) -> str:
    return agent.id
