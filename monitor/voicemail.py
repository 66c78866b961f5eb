"""The web front's view of voicemail: who may hear which box, over `VoicemailService`.

The voicemail service (`ivr/voicemail.py`) is the one store of messages, their files and
their "heard" marks; this adapter adds only the web front's rules. Supervisors hear every
box. An agent hears the boxes the voicemail configuration gives them (`agent = ...`), the
boxes of the queues they serve, and the message behind the voicemail callback they are on.
A message outside one's boxes is answered exactly like a message that does not exist, so
names of other boxes and messages do not leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ivr.voicemail import (
    BOX_NAME,
    MAX_PAGE,
    InvalidVoicemailRequest,
    NoSuchMessage,
    VoicemailMessage,
    VoicemailService,
)
from monitor.domain_errors import InvalidRequest, NoSuchVoicemail

MAX_OFFSET = 10_000
"""Deepest page one may ask for: each of an agent's boxes is read up to offset + limit."""
MAX_REPORT = 10_000
"""Most messages one voicemail report reads (newest first)."""
_MESSAGE_ID = re.compile(r"[1-9][0-9]{0,17}\Z")
_CALLBACK_REFERENCE = re.compile(r"voicemail:([1-9][0-9]{0,17})\Z")


@dataclass(frozen=True, slots=True)
class Listener:
    """Who asks: their name (for the "heard" mark), their boxes (None: every box) and the
    message of the voicemail callback they are on, if any."""

    name: str
    boxes: frozenset[str] | None
    callback_message: int | None = None

    def may_hear(self, message: VoicemailMessage) -> bool:
        """Whether the message is in one's boxes or is the one being called back."""
        if self.boxes is None or message.box in self.boxes:
            return True
        return message.id is not None and message.id == self.callback_message


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of a listener's messages, newest first, with totals over all their boxes."""

    boxes: list[str]
    messages: list[VoicemailMessage]
    total: int
    unheard: int


def message_id(text: str) -> int:
    """A message id from a URL; `NoSuchVoicemail` for anything but a plain positive number."""
    if not _MESSAGE_ID.match(text):
        raise NoSuchVoicemail("no such voicemail message", id=text[:40])
    return int(text)


def callback_message_of(dialed: str | None) -> int | None:
    """The message a voicemail callback contact is about (`dialed` is ``voicemail:<id>``)."""
    if dialed is None:
        return None
    found = _CALLBACK_REFERENCE.match(dialed)
    return int(found.group(1)) if found else None


def _newest_first(message: VoicemailMessage) -> tuple[datetime, int]:
    return message.recorded_at, message.id or 0


class VoicemailDesk:
    """The voicemail service as the web front's users see it: their boxes, their marks."""

    def __init__(self, service: VoicemailService) -> None:
        self.service = service

    def boxes_of_agent(self, agent_id: str, queues: Iterable[str]) -> frozenset[str]:
        """The boxes configured for the agent (`agent = ...`) and those of `queues` they serve."""
        owned = {box.name for box in self.service.boxes.values() if box.agent == agent_id}
        return frozenset({*owned, *queues})

    def all_boxes(self, queues: Iterable[str]) -> frozenset[str]:
        """Every box one can name: the configured ones and every queue's."""
        return frozenset({*self.service.boxes, *queues})

    async def page(
        self,
        listener: Listener,
        *,
        box: str | None = None,
        unheard_only: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> MessagePage:
        """A page of the listener's messages (of one of their boxes when `box` is given)."""
        if box is not None and not BOX_NAME.match(box):
            raise InvalidRequest("'box' is not a voicemail box name", field="box")
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise InvalidRequest(
                f"'limit' must be 1-{MAX_PAGE} and 'offset' 0-{MAX_OFFSET}", field="limit"
            )
        if listener.boxes is None:
            # Supervisors: one query over every box (or the one asked for).
            messages = await self._list(box, unheard_only, limit, offset)
            total = await self.service.count(box, unheard_only=unheard_only)
            unheard = await self.service.count(box, unheard_only=True)
            return MessagePage(sorted({m.box for m in messages}), messages, total, unheard)
        boxes = sorted(listener.boxes if box is None else listener.boxes & {box})
        # The service pages one box at a time: read each box's newest offset + limit messages
        # and merge them, which keeps the service's order across boxes.
        merged: list[VoicemailMessage] = []
        total = unheard = 0
        for name in boxes:
            merged += await self._newest(name, unheard_only, offset + limit)
            total += await self.service.count(name, unheard_only=unheard_only)
            unheard += await self.service.count(name, unheard_only=True)
        merged.sort(key=_newest_first, reverse=True)
        return MessagePage(boxes, merged[offset : offset + limit], total, unheard)

    async def _list(
        self, box: str | None, unheard_only: bool, limit: int, offset: int
    ) -> list[VoicemailMessage]:
        try:
            return await self.service.list(
                box, unheard_only=unheard_only, limit=limit, offset=offset
            )
        except InvalidVoicemailRequest as exc:
            raise InvalidRequest(exc.message, **exc.details) from None

    async def _newest(self, box: str, unheard_only: bool, wanted: int) -> list[VoicemailMessage]:
        """The newest `wanted` messages of one box, read a service page at a time."""
        found: list[VoicemailMessage] = []
        while len(found) < wanted:
            size = min(MAX_PAGE, wanted - len(found))
            chunk = await self._list(box, unheard_only, size, len(found))
            found += chunk
            if len(chunk) < size:
                break
        return found

    async def message(self, listener: Listener, text_id: str) -> VoicemailMessage:
        """One message the listener may hear; `NoSuchVoicemail` otherwise (or if there is none)."""
        wanted = message_id(text_id)
        try:
            message = await self.service.get(wanted)
        except NoSuchMessage:
            raise NoSuchVoicemail("no such voicemail message", id=wanted) from None
        if not listener.may_hear(message):
            raise NoSuchVoicemail("no such voicemail message", id=wanted)
        return message

    async def recording(self, listener: Listener, text_id: str) -> tuple[VoicemailMessage, Path]:
        """A message and its WAV file, confined to the voicemail folder by the service."""
        message = await self.message(listener, text_id)
        try:
            return message, self.service.wav_path(message)
        except NoSuchMessage:
            raise NoSuchVoicemail("no such voicemail message", id=message.id) from None

    async def mark_heard(self, listener: Listener, text_id: str) -> VoicemailMessage:
        """Mark a message heard by the listener (the first listener is kept).

        The service withdraws the callback the message would otherwise become.
        """
        message = await self.message(listener, text_id)
        assert message.id is not None  # stored rows have ids
        try:
            return await self.service.mark_heard(message.id, listener.name)
        except NoSuchMessage:
            raise NoSuchVoicemail("no such voicemail message", id=message.id) from None

    async def left_between(self, start: datetime, end: datetime) -> list[VoicemailMessage]:
        """Messages recorded in [start, end), newest first (at most `MAX_REPORT` are read)."""
        found: list[VoicemailMessage] = []
        offset = 0
        while offset < MAX_REPORT:
            chunk = await self.service.list(None, limit=MAX_PAGE, offset=offset)
            found += [m for m in chunk if start <= m.recorded_at < end]
            # Newest first: once a page reaches before `start`, nothing older can match.
            if len(chunk) < MAX_PAGE or chunk[-1].recorded_at < start:
                break
            offset += MAX_PAGE
        return found
