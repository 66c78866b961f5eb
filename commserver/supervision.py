"""Supervisors on agents' calls: listen, whisper and barge sessions, and their events.

A supervisor's phone is rung into an agent's call through the backend's `spy` command
(Asterisk: Originate into ChanSpy; the simulator: a simulated leg). `SpySessions` keeps the
sessions that run, ends them when the supervisor hangs up, is stopped or the call ends, and
publishes `SpyStarted` / `SpyEnded` so the monitor shows who is being listened to. Every start
and end is an audit line naming the supervisor, the agent and the mode, never the caller.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, cast

from commserver.clock import utcnow
from commserver.dialling import mask
from commserver.errors import NoSuchSpySession, NotSupportedByBackend, SpyFailed
from commserver.events import Event, EventBus
from commserver.telephony.base import (
    AgentEndpoint,
    BackendCapability,
    HangupCause,
    SpyMode,
    SupervisionBackend,
    TelephonyBackend,
    TelephonyError,
)

log = logging.getLogger(__name__)
#: Who listened to whom, and how: operators can route this logger to their audit trail.
audit = logging.getLogger("caruso.audit")

CAPABILITY_OF: Mapping[SpyMode, BackendCapability] = {
    SpyMode.LISTEN: BackendCapability.LISTEN,
    SpyMode.WHISPER: BackendCapability.WHISPER,
    SpyMode.BARGE: BackendCapability.BARGE,
}
_DOING: Mapping[SpyMode, str] = {
    SpyMode.LISTEN: "listening to",
    SpyMode.WHISPER: "whispering to",
    SpyMode.BARGE: "barging into",
}
# Spy legs that ended before their session was registered (a hang-up racing the answer).
_EARLY_ENDS = 32


class SpyEndReason(enum.Enum):
    """Why a spy session ended."""

    STOPPED = "stopped"  # a supervisor stopped it from the monitor or the API
    HUNG_UP = "hung-up"  # the supervisor's phone hung up (or the PBX ended the leg)
    CALL_ENDED = "call-ended"  # the call being listened to ended


@dataclass(frozen=True, slots=True)
class SpySession:
    """A supervisor listening to, whispering to or barging into one agent's call."""

    id: str  # the spy leg's id, as the backend named it
    agent_id: str
    contact_id: str
    supervisor: str  # the supervisor's account name
    mode: SpyMode
    phone: str  # the extension or number that was rung for the supervisor
    started_at: datetime
    call_id: str  # the caller's leg (backend id): internal, not shown


@dataclass(frozen=True, slots=True, kw_only=True)
class SpyStarted(Event):
    """A supervisor's phone joined an agent's call (listen, whisper or barge)."""

    kind: ClassVar[str] = "spy-started"
    session_id: str
    agent_id: str
    contact_id: str
    supervisor: str
    mode: SpyMode


@dataclass(frozen=True, slots=True, kw_only=True)
class SpyEnded(Event):
    """A supervisor's spy session on an agent's call ended."""

    kind: ClassVar[str] = "spy-ended"
    session_id: str
    agent_id: str
    supervisor: str
    mode: SpyMode
    reason: SpyEndReason


def phone_of(endpoint: AgentEndpoint) -> str:
    """What is rung for a supervisor: the extension, else the external number ('' for none)."""
    return endpoint.extension or endpoint.external_number or ""


class SpySessions:
    """The spy sessions running now, started and ended through the telephony backend."""

    def __init__(
        self, backend: TelephonyBackend, bus: EventBus, *, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.backend = backend
        self.bus = bus
        self.now = now
        self._sessions: dict[str, SpySession] = {}
        self._ended_early: deque[str] = deque(maxlen=_EARLY_ENDS)
        # Spy legs of calls that are over -> their call id, until they are hung up or gone.
        self._ending: dict[str, str] = {}

    @property
    def modes(self) -> tuple[SpyMode, ...]:
        """The modes the running backend supports (none on the sip backend)."""
        return tuple(m for m in SpyMode if CAPABILITY_OF[m] in self.backend.capabilities)

    @property
    def sessions(self) -> list[SpySession]:
        """Every running session, oldest first."""
        return sorted(self._sessions.values(), key=lambda s: s.started_at)

    def of_agent(self, agent_id: str) -> list[SpySession]:
        """The sessions on one agent's call, oldest first."""
        return [s for s in self.sessions if s.agent_id == agent_id]

    def get(self, session_id: str) -> SpySession:
        """A running session; `NoSuchSpySession` if it is not (or no longer) running."""
        session = self._sessions.get(session_id)
        if session is None:
            raise NoSuchSpySession(f"no spy session {session_id!r}", session_id=session_id)
        return session

    def check_supported(self, mode: SpyMode) -> None:
        """`NotSupportedByBackend` unless the backend can do `mode`."""
        if mode not in self.modes:
            raise NotSupportedByBackend(
                f"the {self.backend.name} backend cannot {mode.value} to calls",
                backend=self.backend.name,
                mode=mode.value,
            )

    async def start(
        self,
        *,
        call_id: str,
        agent_id: str,
        contact_id: str,
        supervisor: str,
        phone: AgentEndpoint,
        mode: SpyMode,
    ) -> SpySession:
        """Ring the supervisor's phone into the agent's call; returns once it answered."""
        self.check_supported(mode)
        # The capability is the backend's promise to implement the supervision commands.
        backend = cast(SupervisionBackend, self.backend)
        try:
            leg_id = await backend.spy(call_id, phone, mode)
        except TelephonyError as exc:
            log.info("spy on agent %s for %s failed: %s", agent_id, supervisor, exc)
            raise SpyFailed(
                f"could not join {agent_id}'s call: {exc}", agent_id=agent_id, mode=mode.value
            ) from exc
        session = SpySession(
            id=leg_id,
            agent_id=agent_id,
            contact_id=contact_id,
            supervisor=supervisor,
            mode=mode,
            phone=phone_of(phone),
            started_at=self.now(),
            call_id=call_id,
        )
        self._sessions[leg_id] = session
        audit.info(
            "supervisor %s is %s agent %s (session %s, phone %s)",
            supervisor, _DOING[mode], agent_id, leg_id,
            phone.extension or mask(session.phone),
        )
        self.bus.publish(
            SpyStarted(
                at=session.started_at,
                session_id=leg_id,
                agent_id=agent_id,
                contact_id=contact_id,
                supervisor=supervisor,
                mode=mode,
            )
        )
        if leg_id in self._ended_early:
            self._end(session, SpyEndReason.HUNG_UP)
        return session

    async def stop(self, session_id: str, *, by: str) -> SpySession:
        """Hang up a session's spy leg (the call goes on)."""
        session = self.get(session_id)
        self._end(session, SpyEndReason.STOPPED, by=by)
        await self.backend.hangup(session.id, HangupCause.NORMAL)
        return session

    def leg_ended(self, leg_id: str) -> bool:
        """The backend says a leg ended: True if it was a spy leg (its session is over)."""
        session = self._sessions.get(leg_id)
        if session is None:
            if self._ending.pop(leg_id, None) is not None:
                return True
            self._ended_early.append(leg_id)
            return False
        self._end(session, SpyEndReason.HUNG_UP)
        return True

    def call_over(self, call_id: str) -> None:
        """The caller or the agent hung up: every session on the call ends now."""
        for session in [s for s in self._sessions.values() if s.call_id == call_id]:
            self._ending[session.id] = call_id
            self._end(session, SpyEndReason.CALL_ENDED)

    async def call_ended(self, call_id: str) -> None:
        """The call is finished: end every session still on it and hang up their legs."""
        self.call_over(call_id)
        for leg_id in [leg for leg, call in self._ending.items() if call == call_id]:
            del self._ending[leg_id]
            await self.backend.hangup(leg_id, HangupCause.NORMAL)

    def _end(self, session: SpySession, reason: SpyEndReason, *, by: str = "") -> None:
        if self._sessions.pop(session.id, None) is None:
            return
        audit.info(
            "supervisor %s no longer %s agent %s (session %s ended: %s%s)",
            session.supervisor, _DOING[session.mode], session.agent_id, session.id,
            reason.value, f" by {by}" if by else "",
        )
        self.bus.publish(
            SpyEnded(
                at=self.now(),
                session_id=session.id,
                agent_id=session.agent_id,
                supervisor=session.supervisor,
                mode=session.mode,
                reason=reason,
            )
        )
