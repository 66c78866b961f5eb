"""Login throttling: failed sign-ins counted per user name and per source address.

Pure logic over a clock. After `limit` failures inside `window` seconds a key is locked until
the oldest of those failures leaves the window. The check comes before the password is even
looked at, so a locked key learns nothing more. Per-name locking lets someone lock a user out
by guessing on purpose; that is the accepted price of stopping password guessing, and the
per-address limit catches the guesser.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

USER_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW = 15 * 60.0
MAX_KEYS = 50_000


@dataclass(frozen=True, slots=True)
class Lockout:
    """Why a sign-in is refused now, and for how long."""

    key_kind: str
    retry_after: float


class FailureCounter:
    """Failures per key in a sliding window, bounded in the number of keys."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again (0 when it may now)."""
        now = self._clock()
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return self.window - (now - times[-self.limit])

    def fail(self, key: str) -> None:
        """Count one failure."""
        now = self._clock()
        times = self._recent(key, now) or deque(maxlen=self.limit)
        times.append(now)
        self._failures[key] = times
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        """Forget a key's failures (after a successful sign-in)."""
        self._failures.pop(key, None)


class LoginThrottle:
    """Per-user and per-address limits on failed sign-ins."""

    def __init__(
        self,
        *,
        user_limit: int = USER_LIMIT,
        address_limit: int = ADDRESS_LIMIT,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = FailureCounter(user_limit, window, clock)
        self.addresses = FailureCounter(address_limit, window, clock)

    def check(self, user: str, address: str) -> Lockout | None:
        """A lockout if either the name or the address has failed too often lately."""
        wait = self.addresses.retry_after(address)
        if wait > 0:
            return Lockout("address", wait)
        wait = self.users.retry_after(user)
        if wait > 0:
            return Lockout("user", wait)
        return None

    def failed(self, user: str, address: str) -> None:
        """Record a failed sign-in."""
        self.users.fail(user)
        self.addresses.fail(address)

    def succeeded(self, user: str) -> None:
        """A correct password clears that name's count (not the address's)."""
        self.users.clear(user)
