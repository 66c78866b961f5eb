"""Server-side web sessions: an opaque random id in a cookie, everything else in memory.

A session carries the principal and its own CSRF token. It ends on logout, after
`idle_timeout` without a request, or `max_age` after sign-in, whichever comes first.
Sessions live in this process only: a restart signs everyone out, which is the safe way round.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.accounts import Principal

IDLE_TIMEOUT = 2 * 3600.0
MAX_AGE = 12 * 3600.0
MAX_SESSIONS = 10_000


def new_token() -> str:
    """An unguessable token (256 bits), URL- and cookie-safe."""
    return secrets.token_urlsafe(32)


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the real one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(eq=False)
class Session:
    """One signed-in browser."""

    id: str
    principal: Principal
    csrf_token: str
    created: float
    last_seen: float
    ended: bool = field(default=False)


class SessionStore:
    """The live sessions of this process, bounded in number (oldest evicted first)."""

    def __init__(
        self,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_age: float = MAX_AGE,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, principal: Principal) -> Session:
        """A fresh session (never a reused id: no session fixation)."""
        now = self._clock()
        session = Session(new_token(), principal, new_token(), now, now)
        self._sessions[session.id] = session
        while len(self._sessions) > self.max_sessions:
            _, evicted = self._sessions.popitem(last=False)
            evicted.ended = True
        return session

    def alive(self, session: Session) -> bool:
        """Whether the session may still be used now."""
        now = self._clock()
        return (
            not session.ended
            and now - session.last_seen < self.idle_timeout
            and now - session.created < self.max_age
        )

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, refreshed; None if unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if not self.alive(session):
            self.end(session)
            return None
        session.last_seen = self._clock()
        return session

    def end(self, session: Session) -> None:
        """Sign out: the id stops working at once, open event streams close."""
        session.ended = True
        self._sessions.pop(session.id, None)

    def end_user(self, user_id: int) -> int:
        """End every session of one user (password change, account disabled)."""
        doomed = [s for s in self._sessions.values() if s.principal.user_id == user_id]
        for session in doomed:
            self.end(session)
        return len(doomed)

    def sweep(self) -> int:
        """Forget expired sessions; returns how many went."""
        doomed = [s for s in self._sessions.values() if not self.alive(s)]
        for session in doomed:
            self.end(session)
        return len(doomed)
