"""One TCP connection to an Asterisk manager: framing, ActionID correlation, EventLists.

`AmiConnection` is the asyncio protocol. It frames the byte stream (`FrameParser`), answers
each pending action with the response that echoes its ActionID, collects the events of list
actions (`CoreShowChannels`...) until their `...Complete` event, and hands every other event to
its owner's callback synchronously, in arrival order. It knows nothing of calls.

Bad input is a value, not an exception: junk frames are logged (the first few, then one in a
hundred) and charged to a budget; a peer that overspends it, or that is not an AMI server at
all, is disconnected. An exception raised by the event callback is logged and swallowed so one
bad handler cannot take the connection down.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import AmiActionFailed, AmiProtocolError, AmiTimeout, AmiUnavailable
from .message import (
    DEFAULT_LIMITS,
    AmiAction,
    AmiMessage,
    Banner,
    FrameParser,
    FrameProblem,
    ParseLimits,
)

log = logging.getLogger(__name__)

_LOGGED_PROBLEMS = 5


@dataclass(eq=False)
class _Pending:
    action: AmiAction
    future: asyncio.Future[list[AmiMessage]]
    is_list: bool
    messages: list[AmiMessage] = field(default_factory=list)


class AmiConnection(asyncio.Protocol):
    """The manager protocol over one TCP connection (see the module docstring)."""

    def __init__(
        self,
        *,
        on_event: Callable[[AmiMessage], None],
        on_lost: Callable[[AmiConnection, str], None] | None = None,
        limits: ParseLimits = DEFAULT_LIMITS,
        junk_budget: int = 100,
        id_prefix: str = "caruso",
    ) -> None:
        self._on_event = on_event
        self._on_lost = on_lost
        self._parser = FrameParser(limits)
        self._junk_budget = junk_budget
        self._ids = itertools.count(1)
        self._id_prefix = id_prefix
        self._pending: dict[str, _Pending] = {}
        self._transport: asyncio.Transport | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[str] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.junk_count = 0
        self.messages_received = 0
        self.version = ""

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """Frame what arrived and route each message."""
        for item in self._parser.feed(data):
            if isinstance(item, AmiMessage):
                self.messages_received += 1
                self._route(item)
            elif isinstance(item, Banner):
                self.version = item.version
                if not self.banner.done():
                    self.banner.set_result(item.version)
            else:
                self._problem(item)
            if self._transport is None or self._transport.is_closing():
                return

    def pause_writing(self) -> None:
        """Asterisk reads slower than we write: hold senders."""
        self._writable.clear()

    def resume_writing(self) -> None:
        """The socket drained: let senders go on."""
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every waiting action and tell the owner why the connection ended."""
        reason = self.closed.result() if self.closed.done() else f"connection lost ({exc})"
        if exc is None and not self.closed.done():
            reason = "closed by Asterisk"
        self._finish(reason)

    # -- sending ------------------------------------------------------------------------------

    def next_action_id(self) -> str:
        """A fresh ActionID (unique across processes thanks to the prefix)."""
        return f"{self._id_prefix}-{next(self._ids)}"

    async def send(self, action: AmiAction, *, timeout: float, check: bool = True) -> AmiMessage:
        """Send an action and return its response (`AmiActionFailed` on `Response: Error`)."""
        messages = await self._exchange(action, timeout=timeout, is_list=False)
        response = messages[0]
        if check:
            _check(action, response)
        return response

    async def send_list(
        self, action: AmiAction, *, timeout: float, action_id: str | None = None
    ) -> list[AmiMessage]:
        """Send a list action; return its events (without the response and `...Complete`)."""
        messages = await self._exchange(action, timeout=timeout, is_list=True, action_id=action_id)
        _check(action, messages[0])
        return [m for m in messages[1:] if not m.is_list_end]

    async def _exchange(
        self, action: AmiAction, *, timeout: float, is_list: bool, action_id: str | None = None
    ) -> list[AmiMessage]:
        transport = self._transport
        if transport is None or transport.is_closing() or self.closed.done():
            raise AmiUnavailable("the manager connection is closed", action=action.name)
        action_id = action_id or self.next_action_id()
        future: asyncio.Future[list[AmiMessage]] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(action, future, is_list)
        try:
            async with asyncio.timeout(timeout):
                await self._writable.wait()
                if transport.is_closing():
                    raise AmiUnavailable("the manager connection is closed", action=action.name)
                transport.write(action.encode(action_id))
                return await future
        except TimeoutError:
            raise AmiTimeout(
                f"Asterisk did not answer {action.name} within {timeout:g} s",
                action=action.name,
                timeout=timeout,
            ) from None
        finally:
            self._pending.pop(action_id, None)

    async def send_with_id(
        self, action: AmiAction, action_id: str, *, timeout: float
    ) -> AmiMessage:
        """Like `send`, with an ActionID the caller chose (to match a later event to it)."""
        messages = await self._exchange(action, timeout=timeout, is_list=False, action_id=action_id)
        _check(action, messages[0])
        return messages[0]

    def close(self, reason: str = "closed") -> None:
        """Close the connection (idempotent); pending actions fail with `AmiUnavailable`."""
        if not self.closed.done():
            self.closed.set_result(reason)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # -- receiving ----------------------------------------------------------------------------

    def _route(self, message: AmiMessage) -> None:
        for action_id in message.action_ids:
            pending = self._pending.get(action_id)
            if pending is None:
                continue
            if message.is_response:
                self._answer(pending, message)
                return
            if pending.is_list and pending.messages:
                pending.messages.append(message)
                if message.is_list_end and not pending.future.done():
                    pending.future.set_result(pending.messages)
                return
        if message.is_event:
            try:
                self._on_event(message)
            except Exception:
                log.exception("AMI event handler failed on %s", message.event)
        elif message.is_response and message.response.lower() == "goodbye":
            return  # the answer to a Logoff we no longer wait for
        else:
            log.debug("AMI response for no pending action: %s", message.as_dict())

    def _answer(self, pending: _Pending, response: AmiMessage) -> None:
        if pending.future.done():
            return
        pending.messages.append(response)
        failed = response.response.lower() in ("error", "failure", "fail")
        if not pending.is_list or failed:
            pending.future.set_result(pending.messages)

    def _problem(self, problem: FrameProblem) -> None:
        self.junk_count += 1
        if problem.fatal:
            log.error("AMI peer refused: %s (%r)", problem.reason, problem.excerpt)
            if not self.banner.done():
                self.banner.set_exception(
                    AmiProtocolError(f"not an Asterisk manager: {problem.reason}")
                )
            self.close(f"protocol error: {problem.reason}")
            return
        if self.junk_count <= _LOGGED_PROBLEMS or self.junk_count % 100 == 0:
            log.warning(
                "AMI junk #%d ignored: %s (%r)", self.junk_count, problem.reason, problem.excerpt
            )
        if self.junk_count > self._junk_budget:
            log.error("AMI peer sent %d junk frames: reconnecting", self.junk_count)
            self.close("too much junk from the manager")

    def _finish(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if not self.banner.done():
            self.banner.set_exception(AmiUnavailable(f"no banner: {reason}"))
            self.banner.exception()  # retrieved: nobody may be waiting any more
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(
                    AmiUnavailable(
                        f"manager connection lost during {pending.action.name}: {reason}",
                        action=pending.action.name,
                    )
                )
        self._pending.clear()
        if self._on_lost is not None:
            self._on_lost(self, reason)


def _check(action: AmiAction, response: AmiMessage) -> None:
    if response.response.lower() in ("error", "failure", "fail"):
        reason = response.get("Message") or "no reason given"
        raise AmiActionFailed(
            f"Asterisk refused {action.name}: {reason}", action=action.name, reason=reason
        )
