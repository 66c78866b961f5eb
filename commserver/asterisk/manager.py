"""The AMI controller: connect, log in, keep alive, reconnect, and resync on every login.

    manager = AmiManager(AmiSettings(host=..., username=..., secret=...), handler)
    await manager.connect()        # first login, or AmiAuthenticationFailed / AmiUnavailable
    response = await manager.send(AmiAction.of("Ping"))
    await manager.close()

After each successful login the manager awaits `handler.ami_ready(manager)` (where the
telephony backend lists channels and bridges) while it holds incoming events back; once that
returns, the held events are delivered in order and live delivery resumes. Events are thus
never applied to a snapshot older than themselves. A Ping every `ping_interval` seconds must
be answered within `action_timeout`, or the connection is taken as dead (a hung or overloaded
Asterisk) and replaced. Reconnection backs off from `reconnect_min` to `reconnect_max`.

Unlike panoramisk, actions are never re-sent after a reconnect (a stale Originate would ring an
agent the server already gave up on): they fail with `AmiUnavailable`, and the owner rebuilds
its state from the resync instead. The secret is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from commserver.tasks import TaskSet

from .errors import AmiAuthenticationFailed, AmiError, AmiUnavailable
from .message import DEFAULT_LIMITS, AmiAction, AmiMessage, ParseLimits
from .protocol import AmiConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """Where the manager is, who we are, and how patient to be."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    connect_timeout: float = 10.0
    action_timeout: float = 5.0
    ping_interval: float = 5.0
    reconnect_min: float = 0.2
    reconnect_max: float = 2.0
    junk_budget: int = 100
    max_held_events: int = 100_000
    limits: ParseLimits = DEFAULT_LIMITS

    @property
    def address(self) -> str:
        """host:port, for messages."""
        return f"{self.host}:{self.port}"


class ManagerState(enum.Enum):
    """Where the controller is in its life."""

    IDLE = "idle"
    CONNECTING = "connecting"
    SYNCING = "syncing"
    READY = "ready"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class AmiHandler(Protocol):
    """What the owner of a manager implements."""

    async def ami_ready(self, manager: AmiManager) -> None:
        """Logged in (again): rebuild state. Events are held until this returns."""

    def ami_event(self, message: AmiMessage) -> None:
        """One event, in arrival order. Must not block."""

    def ami_lost(self, reason: str) -> None:
        """The logged-in connection is gone; a reconnection is under way."""


class AmiManager:
    """Owns the manager connection for its whole life (see the module docstring)."""

    def __init__(
        self,
        settings: AmiSettings,
        handler: AmiHandler,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.clock = clock
        self.state = ManagerState.IDLE
        self.logins = 0
        self.last_error = ""
        self.connected_since: float | None = None
        self._connection: AmiConnection | None = None
        self._held: list[AmiMessage] | None = None
        self._tasks = TaskSet("ami-manager")
        self._first_login: asyncio.Future[None] | None = None
        self._closing = False
        self._ready = asyncio.Event()
        # ActionIDs and CommandIDs must not collide with another Caruso's on the same server.
        self.id_prefix = f"caruso-{secrets.token_hex(4)}"

    # -- lifecycle -----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Start the connection loop; return after the first login and resync.

        Raises `AmiAuthenticationFailed` at once when Asterisk refuses the login, and
        `AmiUnavailable` when no login succeeded within `connect_timeout`.
        """
        if self._first_login is not None:
            raise AmiError("the manager was already started")
        self._first_login = asyncio.get_running_loop().create_future()
        self._tasks.spawn(self._run(), name="ami-connection-loop")
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await asyncio.shield(self._first_login)
        except TimeoutError:
            await self.close()
            why = self.last_error or "no answer"
            raise AmiUnavailable(
                f"cannot log in to the Asterisk manager at {self.settings.address} within "
                f"{self.settings.connect_timeout:g} s: {why}",
                address=self.settings.address,
            ) from None
        except AmiError:
            await self.close()
            raise

    async def close(self) -> None:
        """Log off (briefly, best effort), close the connection and stop reconnecting."""
        self._closing = True
        connection = self._connection
        if connection is not None and self.state is ManagerState.READY:
            with contextlib.suppress(AmiError):
                await connection.send(AmiAction.of("Logoff"), timeout=0.5, check=False)
        if connection is not None:
            connection.close("closed by Caruso")
        self.state = ManagerState.CLOSED
        self._ready.clear()
        await self._tasks.cancel_all()
        if self._first_login is not None and not self._first_login.done():
            self._first_login.cancel()

    @property
    def ready(self) -> bool:
        """Logged in and resynced."""
        return self.state is ManagerState.READY

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until logged in and resynced; False if that did not happen in time."""
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    # -- actions -------------------------------------------------------------------------------

    def _usable(self, action: AmiAction) -> AmiConnection:
        connection = self._connection
        if connection is None or self.state not in (ManagerState.READY, ManagerState.SYNCING):
            raise AmiUnavailable(
                f"no manager connection to {self.settings.address} for {action.name}",
                action=action.name,
            )
        return connection

    async def send(
        self, action: AmiAction, *, timeout: float | None = None, check: bool = True
    ) -> AmiMessage:
        """Send an action on the live connection; its response (see `AmiConnection.send`)."""
        connection = self._usable(action)
        return await connection.send(
            action, timeout=timeout or self.settings.action_timeout, check=check
        )

    async def send_list(
        self, action: AmiAction, *, timeout: float | None = None
    ) -> list[AmiMessage]:
        """Send a list action; its events."""
        connection = self._usable(action)
        return await connection.send_list(action, timeout=timeout or self.settings.action_timeout)

    def new_action_id(self) -> str:
        """An ActionID to choose before sending (to recognise a later event by it)."""
        return f"{self.id_prefix}-x{secrets.token_hex(6)}"

    async def send_with_id(
        self, action: AmiAction, action_id: str, *, timeout: float | None = None
    ) -> AmiMessage:
        """Send with a chosen ActionID (Originate: its `OriginateResponse` echoes it)."""
        connection = self._usable(action)
        return await connection.send_with_id(
            action, action_id, timeout=timeout or self.settings.action_timeout
        )

    # -- the connection loop ------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.settings.reconnect_min
        failures = 0
        while not self._closing:
            self.state = ManagerState.CONNECTING if self.logins == 0 else ManagerState.RECONNECTING
            try:
                connection = await self._open()
            except AmiAuthenticationFailed as exc:
                self.last_error = exc.message
                if self._fail_first(exc):
                    return
                log.error("%s; retrying in %.1f s", exc.message, self.settings.reconnect_max)
                await asyncio.sleep(self.settings.reconnect_max)
                continue
            except (OSError, AmiError, TimeoutError) as exc:
                self.last_error = _describe(exc)
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    log.warning(
                        "Asterisk manager at %s unreachable (%s); retrying",
                        self.settings.address,
                        self.last_error,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.reconnect_max)
                continue
            failures = 0
            delay = self.settings.reconnect_min
            if not await self._synchronize(connection):
                continue
            reason = await self._serve(connection)
            self._ready.clear()
            self.connected_since = None
            if not self._closing:
                self.state = ManagerState.RECONNECTING
                log.warning("Asterisk manager connection lost: %s; reconnecting", reason)
                try:
                    self.handler.ami_lost(reason)
                except Exception:
                    log.exception("AMI handler failed on connection loss")

    def _fail_first(self, exc: AmiError) -> bool:
        """Report a failure to `connect()` if the first login is still awaited."""
        if self._first_login is not None and not self._first_login.done():
            self._first_login.set_exception(exc)
            return True
        return False

    async def _open(self) -> AmiConnection:
        settings = self.settings
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(settings.connect_timeout):
            _, connection = await loop.create_connection(
                lambda: AmiConnection(
                    on_event=self._on_event,
                    limits=settings.limits,
                    junk_budget=settings.junk_budget,
                    id_prefix=self.id_prefix,
                ),
                settings.host,
                settings.port,
            )
        try:
            async with asyncio.timeout(settings.action_timeout):
                version = await connection.banner
            login = AmiAction.of(
                "Login", Username=settings.username, Secret=settings.secret, Events="on"
            )
            response = await connection.send(login, timeout=settings.action_timeout, check=False)
        except BaseException:
            connection.close("login did not complete")
            raise
        if response.response.lower() != "success":
            connection.close("login refused")
            reason = response.get("Message") or "login refused"
            raise AmiAuthenticationFailed(
                f"Asterisk at {settings.address} refused the manager login of user "
                f"'{settings.username}': {reason} (check [telephony.asterisk] username and "
                "secret against manager.conf, and its permit/deny lines)",
                username=settings.username,
                reason=reason,
            )
        log.info(
            "logged in to the Asterisk manager at %s (AMI %s) as %s",
            settings.address,
            version,
            settings.username,
        )
        return connection

    async def _synchronize(self, connection: AmiConnection) -> bool:
        """Let the handler resync while events are held; then release them in order."""
        self._connection = connection
        self._held = []
        self.state = ManagerState.SYNCING
        try:
            await self.handler.ami_ready(self)
        except Exception as exc:
            if isinstance(exc, AmiError | OSError):
                log.warning("resync after login failed (%s); reconnecting", _describe(exc))
            else:
                log.exception("resync after login failed; reconnecting")
            self._held = None
            connection.close("resync failed")
            await asyncio.sleep(self.settings.reconnect_min)
            return False
        held, self._held = self._held, None
        if connection.closed.done():
            return False
        self.logins += 1
        self.connected_since = self.clock()
        self.state = ManagerState.READY
        self._ready.set()
        for message in held or ():
            self._deliver(message)
        if self._first_login is not None and not self._first_login.done():
            self._first_login.set_result(None)
        return True

    async def _serve(self, connection: AmiConnection) -> str:
        """Keep the connection alive until it closes; returns why it did."""
        pinger = self._tasks.spawn(self._keepalive(connection), name="ami-keepalive")
        try:
            return await asyncio.shield(connection.closed)
        finally:
            pinger.cancel()
            self._connection = None

    async def _keepalive(self, connection: AmiConnection) -> None:
        while not connection.closed.done():
            await asyncio.sleep(self.settings.ping_interval)
            try:
                await connection.send(
                    AmiAction.of("Ping"), timeout=self.settings.action_timeout, check=False
                )
            except AmiError as exc:
                if not connection.closed.done():
                    log.warning("Asterisk manager keepalive failed (%s)", exc.message)
                    connection.close(f"keepalive failed: {exc.message}")
                return

    def _on_event(self, message: AmiMessage) -> None:
        if self._held is not None:
            if len(self._held) >= self.settings.max_held_events:
                # A resync so slow that events pile up: start again rather than grow forever.
                if self._connection is not None:
                    self._connection.close("too many events during resync")
                return
            self._held.append(message)
            return
        self._deliver(message)

    def _deliver(self, message: AmiMessage) -> None:
        try:
            self.handler.ami_event(message)
        except Exception:
            log.exception("AMI handler failed on %s", message.event)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AmiError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
