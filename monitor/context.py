"""What the web front's handlers share: accounts, sessions, the throttle, the floor and feed,
and the parts behind reports, dispositions, API tokens and the integrators' stream (voicemail
is the voicemail service's, see `monitor/voicemail.py`).

Built by `build_app`, stored in the application under `WEB`; the parts that need running
services (accounts, tokens and dispositions over storage, the live feed and the
history recorder over the bus) are filled in at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from monitor.accounts import AccountStore
from monitor.domain_errors import MonitorError
from monitor.feed import LiveFeed
from monitor.floor import Floor
from monitor.sessions import Session, SessionStore
from monitor.throttle import LoginThrottle
from monitor.tokens import ApiToken, TokenStore

if TYPE_CHECKING:
    from monitor.dispositions import Dispositions
    from monitor.history import HistoryRecorder
    from monitor.integrations_api import EventStreams
    from storage import StorageManager


class WebFrontUnavailable(MonitorError):
    """A part of the web front is not running (no storage, no call controller)."""

    code = "service-unavailable"


def _missing(what: str) -> WebFrontUnavailable:
    return WebFrontUnavailable(f"{what} unavailable: no storage is registered")


@dataclass(eq=False)
class WebFrontState:
    """The web front's shared parts."""

    sessions: SessionStore
    throttle: LoginThrottle
    floor: Floor
    feed: LiveFeed
    streams: EventStreams
    accounts_store: AccountStore | None = field(default=None)
    tokens_store: TokenStore | None = field(default=None)
    storage_manager: StorageManager | None = field(default=None)
    dispositions_store: Dispositions | None = field(default=None)
    history: HistoryRecorder | None = field(default=None)

    @property
    def accounts(self) -> AccountStore:
        """The account store; 503 when storage is not there."""
        if self.accounts_store is None:
            raise _missing("accounts are")
        return self.accounts_store

    @property
    def tokens(self) -> TokenStore:
        """Integrators' API tokens; 503 without storage."""
        if self.tokens_store is None:
            raise _missing("API tokens are")
        return self.tokens_store

    @property
    def storage(self) -> StorageManager:
        """The storage manager reports read; 503 without one."""
        if self.storage_manager is None:
            raise _missing("reports are")
        return self.storage_manager

    @property
    def dispositions(self) -> Dispositions:
        """Wrap-up dispositions; 503 without storage."""
        if self.dispositions_store is None:
            raise _missing("dispositions are")
        return self.dispositions_store


WEB = web.AppKey("web-front", WebFrontState)
SESSION = web.RequestKey("session", Session)
API_TOKEN = web.RequestKey("api-token", ApiToken)
