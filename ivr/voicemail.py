"""Voicemail boxes: messages kept durably with their metadata, e-mailed, listed, called back.

The call controller records a caller to `<data_dir>/voicemail/<box>/<contact>.wav` and hands
the file to `VoicemailService.deposit`, which makes it durable (file and folder synced, row
committed) before it returns. Everything slow happens afterwards in the service's own tasks,
so nothing blocks a call:

* the e-mail worker sends each recipient of the box the WAV as an attachment over SMTP (the
  script engine's `Mailer` and header-safe `build_email`), retrying with doubling delays up
  to `email_attempts` times; each failure is logged and kept with the message, which is
  never dropped, and pending e-mails survive a restart (the schedule is in storage);
* the callback worker turns a message nobody has heard within `callback_after` seconds into
  a callback contact that the ACD routes to an agent of the box's queue. No backend dials
  out, so the agent calls the customer back from their own phone (see docs/voicemail.md).

The web front lists messages (`list`), reads one (`get`, `wav_path`) and marks it heard
(`mark_heard`). At start, recordings left without a row (a crash between recording and
storing) are adopted, and callbacks that died with the previous process are routed again.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import re
import wave
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar, Protocol

from scripts_engine import Mailer, build_email
from scripts_engine.actions import InvalidEmail
from scripts_engine.effects import EmailEffect
from storage import Condition, Conflict, StorageError, StorageManager

log = logging.getLogger(__name__)

MODEL_FILE = Path(__file__).with_name("model.xml")
"""The business-object model of voicemail messages (`VoicemailMessage`)."""

BOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
"""A box name: it is a folder name, so nothing that could climb out of the voicemail folder."""

MAX_PAGE = 500
_DIALABLE = re.compile(r"\+?[0-9*#]{2,32}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ORPHAN_FILES = 10_000
_IN_CHUNK = 500
_SCAN_PAGE = 100
_WORKER_BACKOFF = 5.0
_IDLE_POLL = 300.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class VoicemailError(Exception):
    """Base of voicemail errors: a stable kebab-case `code` and structured `details`."""

    code: ClassVar[str] = "voicemail-error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details)


class NoSuchMessage(VoicemailError):
    """No voicemail message has this id (or its recording is gone)."""

    code: ClassVar[str] = "no-such-voicemail-message"


class InvalidVoicemailRequest(VoicemailError):
    """A bad box name, page size or offset."""

    code: ClassVar[str] = "invalid-voicemail-request"


@dataclass(frozen=True, slots=True)
class Box:
    """A configured box: who gets its messages by e-mail, whose it is, where callbacks go.

    `callback_queue` None means the queue of the same name, if there is one; `callbacks`
    False keeps this box's messages out of the callback routing altogether.
    """

    name: str
    emails: tuple[str, ...] = ()
    agent: str | None = None
    callback_queue: str | None = None
    callbacks: bool = True


@dataclass(frozen=True, slots=True)
class VoicemailPolicy:
    """How hard e-mail is tried, and when an unheard message becomes a callback."""

    email_attempts: int = 8
    email_retry: float = 60.0
    email_retry_max: float = 3600.0
    callback_after: float = 0.0
    callback_work_limit: float = 600.0


@dataclass(frozen=True, slots=True)
class VoicemailMessage:
    """One stored message (business object `VoicemailMessage`, see ivr/model.xml)."""

    id: int | None
    box: str
    contact_id: str
    caller: str
    customer_id: str | None
    queue: str | None
    recorded_at: datetime
    seconds: float
    file: str
    heard: bool
    heard_at: datetime | None
    heard_by: str | None
    emailed_at: datetime | None
    email_attempts: int
    email_next_at: datetime | None
    email_error: str | None
    mailed_to: list[str] | None
    callback_contact_id: str | None
    called_back_at: datetime | None
    called_back_by: str | None


class DepositedContact(Protocol):
    """What deposit reads of the contact that left a message (a `commserver` Contact)."""

    @property
    def id(self) -> str:
        """The contact's id."""
        ...

    @property
    def caller(self) -> str:
        """The caller's number as the network gave it."""
        ...

    @property
    def customer_id(self) -> str | None:
        """The identified customer, if any."""
        ...

    @property
    def queue(self) -> str | None:
        """The queue the caller waited in, if any."""
        ...


CallbackEnded = Callable[[str, str | None], Awaitable[None]]
"""`on_end(contact_id, agent_id)`: a callback is over; agent None when nobody took it."""


class CallbackRouter(Protocol):
    """Routes callback contacts to agents (the call controller is one)."""

    def request_callback(
        self,
        *,
        queue: str,
        number: str,
        customer_id: str | None,
        reference: str,
        work_limit: float,
        on_end: CallbackEnded,
    ) -> str:
        """Queue a callback to `number` in `queue`; returns the callback contact's id."""
        ...

    def end_callback(self, contact_id: str, *, unless_taken: bool = False) -> bool:
        """End a callback (with `unless_taken`: only while no agent has it); True if ended."""
        ...


def build_voicemail_email(
    message: VoicemailMessage, recipient: str, sender: str, wav: bytes | None
) -> EmailMessage:
    """The e-mail announcing `message` to `recipient`, with the WAV attached when readable.

    Headers come from the script engine's `build_email`: one plain recipient address, and a
    subject stripped of control characters, so a caller id cannot inject a header.
    """
    caller = _printable(message.caller) or "an unknown caller"
    subject = f"Voicemail from {caller} in box {message.box} ({message.seconds:.0f} s)"
    lines = [
        f"A caller left a message in voicemail box {message.box}.",
        "",
        f"From:      {caller}",
        f"Customer:  {_printable(message.customer_id or '') or '-'}",
        f"Queue:     {_printable(message.queue or '') or '-'}",
        f"Recorded:  {message.recorded_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"Length:    {message.seconds:.1f} s",
        f"Message:   {message.id}",
        "",
        "The recording is attached (WAV, 8 kHz mono)."
        if wav is not None
        else "The recording could not be read; listen to it in Caruso's web front.",
    ]
    effect = EmailEffect(
        template="voicemail", to=recipient, subject=subject, body="\n".join(lines), html=False
    )
    mail = build_email(effect, sender)
    if wav is not None:
        filename = f"voicemail-{message.box}-{message.id}.wav"
        mail.add_attachment(wav, maintype="audio", subtype="wav", filename=filename)
    return mail


class VoicemailService:
    """Voicemail boxes: durable deposit, background e-mail, listing, marks, callbacks."""

    def __init__(
        self,
        storage: StorageManager,
        *,
        root: Path,
        boxes: Iterable[Box] = (),
        queues: Collection[str] = (),
        mailer: Mailer | None = None,
        sender: str = "caruso@localhost.localdomain",
        policy: VoicemailPolicy | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        storage.bind(VoicemailMessage, "VoicemailMessage")
        self.storage = storage
        self.root = root
        self.boxes = {box.name: box for box in boxes}
        self.queues = frozenset(queues)
        self.mailer = mailer
        self.sender = sender
        self.policy = policy or VoicemailPolicy()
        self.now = now
        self._router: CallbackRouter | None = None
        self._started = False
        # Every read-modify-write of a row holds this: the mail and callback workers and the
        # web front update different fields of the same message.
        self._lock = asyncio.Lock()
        self._mail_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._undialable: set[int] = set()
        # Messages whose callback was refused or withdrawn unheard (a closed queue...): asked
        # again after `callback_after`, not at every scan.
        self._not_before: dict[int, datetime] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def route_callbacks_through(self, router: CallbackRouter) -> None:
        """Where unheard messages go as callbacks (the call controller); set before `start`."""
        self._router = router

    async def start(self) -> None:
        """Adopt orphaned recordings, re-arm lost callbacks, start the e-mail/callback workers.

        The service manager calls this when the service is registered (and `aclose` at the end).
        """
        if self._started:
            return
        self._started = True
        await self._adopt_orphans()
        await self._forget_lost_callbacks()
        self._spawn(self._mail_worker(), "voicemail-email")
        if self._router is not None and self.policy.callback_after > 0:
            self._spawn(self._callback_worker(), "voicemail-callbacks")

    async def aclose(self) -> None:
        """Stop the workers; pending e-mails stay scheduled in storage for the next start."""
        tasks = set(self._tasks)
        while tasks:
            for task in tasks:
                task.cancel()
            # Python 3.11's wait_for (inside aiosmtplib) can lose a cancellation that races a
            # finishing connect; cancel again until every worker has unwound.
            _, tasks = await asyncio.wait(tasks, timeout=1.0)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("voicemail task %s failed", task.get_name(), exc_info=exc)

    # -- deposit -----------------------------------------------------------------------------

    async def deposit(
        self, box: str, contact: DepositedContact, recording: Path, seconds: float
    ) -> None:
        """Keep a message durably (file synced, row committed); e-mail follows in the background."""
        if not BOX_NAME.match(box):
            raise InvalidVoicemailRequest(f"{box!r} is not a voicemail box name", box=box)
        present = await asyncio.to_thread(_sync_to_disk, recording)
        if not present:
            # Stored anyway: the caller did leave a message, and the row says so.
            log.error("voicemail of %s: the recording %s is missing", contact.id, recording)
        now = self.now()
        message = VoicemailMessage(
            id=None,
            box=box,
            contact_id=contact.id[:120],
            caller=_printable(contact.caller)[:120],
            customer_id=contact.customer_id[:64] if contact.customer_id else None,
            queue=contact.queue[:64] if contact.queue else None,
            recorded_at=now,
            seconds=round(max(seconds, 0.0), 3),
            file=self._relative(recording),
            heard=False,
            heard_at=None,
            heard_by=None,
            emailed_at=None,
            email_attempts=0,
            email_next_at=now if self._mails_for(box) else None,
            email_error=None,
            mailed_to=None,
            callback_contact_id=None,
            called_back_at=None,
            called_back_by=None,
        )
        try:
            stored = await self.storage.insert(message)
        except Conflict:
            log.info("voicemail of %s is already stored", contact.id)
            return
        log.info(
            "voicemail %s: %.1f s from %s in box %s", stored.id, stored.seconds, stored.caller, box
        )
        if stored.email_next_at is not None:
            self._mail_wake.set()

    def _mails_for(self, box: str) -> tuple[str, ...]:
        """The box's e-mail recipients, when there is a mail server to send through."""
        configured = self.boxes.get(box)
        if configured is None or self.mailer is None:
            return ()
        return configured.emails

    def _relative(self, recording: Path) -> str:
        try:
            return recording.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(recording.resolve())

    # -- the web front's API -----------------------------------------------------------------

    async def list(
        self,
        box: str | None,
        *,
        unheard_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[VoicemailMessage]:
        """Messages of `box` (every box when None), newest first, a page at a time."""
        if box is not None and not BOX_NAME.match(box):
            raise InvalidVoicemailRequest(f"{box!r} is not a voicemail box name", box=box)
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise InvalidVoicemailRequest(
                f"limit must be 1-{MAX_PAGE} and offset not negative", limit=limit, offset=offset
            )
        where: dict[str, object] = {}
        if box is not None:
            where["box"] = box
        if unheard_only:
            where["heard"] = False
        return await self.storage.query(
            VoicemailMessage,
            where=where,
            order_by=["-recorded_at", "-id"],
            limit=limit,
            offset=offset,
        )

    async def count(self, box: str | None, *, unheard_only: bool = False) -> int:
        """How many messages `box` holds (every box when None)."""
        where: dict[str, object] = {} if box is None else {"box": box}
        if unheard_only:
            where["heard"] = False
        return await self.storage.count(VoicemailMessage, where=where)

    async def get(self, message_id: int) -> VoicemailMessage:
        """One message by id; `NoSuchMessage` if there is none."""
        if isinstance(message_id, bool) or not isinstance(message_id, int):
            raise NoSuchMessage(f"no voicemail message {message_id!r}", id=message_id)
        message = await self.storage.get(VoicemailMessage, message_id)
        if message is None:
            raise NoSuchMessage(f"no voicemail message {message_id}", id=message_id)
        return message

    def wav_path(self, message: VoicemailMessage) -> Path:
        """The message's WAV file; `NoSuchMessage` if it is not a plain file in the box folder."""
        root = self.root.resolve()
        path = (root / message.file).resolve()
        # Rows are ours, but a symlink or a moved data folder must not hand out other files.
        if not path.is_relative_to(root) or not path.is_file():
            raise NoSuchMessage(
                f"the recording of voicemail message {message.id} is gone", id=message.id
            )
        return path

    async def mark_heard(self, message_id: int, by: str) -> VoicemailMessage:
        """Remember that `by` listened to the message (the first listener is kept).

        A callback for it that no agent has taken yet is withdrawn: someone has heard it.
        """
        async with self._lock:
            message = await self.get(message_id)
            if message.heard:
                return message
            message = replace(message, heard=True, heard_at=self.now(), heard_by=by[:64])
            await self.storage.update(message)
        log.info("voicemail %s heard by %s", message_id, by)
        waiting = message.callback_contact_id
        if waiting and message.called_back_at is None and self._router is not None:
            self._router.end_callback(waiting, unless_taken=True)
        return message

    # -- e-mail ------------------------------------------------------------------------------

    async def _mail_worker(self) -> None:
        """Send what is due; sleep until the next attempt is due or a deposit wakes us."""
        while True:
            self._mail_wake.clear()
            try:
                next_due = await self._send_due()
            except (StorageError, OSError) as exc:
                log.warning("voicemail e-mail: storage failed (%s); trying again soon", exc)
                next_due = self.now() + timedelta(seconds=_WORKER_BACKOFF)
            except Exception:  # a bug must not end e-mail for good: log it, go on later
                log.exception("voicemail e-mail worker failed; trying again soon")
                next_due = self.now() + timedelta(seconds=_WORKER_BACKOFF)
            delay = _IDLE_POLL
            if next_due is not None:
                delay = min(max((next_due - self.now()).total_seconds(), 0.0), _IDLE_POLL)
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self._mail_wake.wait()
                except TimeoutError:
                    pass

    async def _send_due(self) -> datetime | None:
        """Try every message whose attempt is due; returns when the next one falls due."""
        while True:
            due = await self.storage.query(
                VoicemailMessage,
                where={"emailed_at": None},
                filters=[Condition("email_next_at", "<=", self.now())],
                order_by=["email_next_at"],
                limit=20,
            )
            for message in due:
                await self._mail(message)
            if len(due) < 20:
                break
        upcoming = await self.storage.query(
            VoicemailMessage,
            filters=[Condition("email_next_at", "!=", None)],
            order_by=["email_next_at"],
            limit=1,
        )
        return upcoming[0].email_next_at if upcoming else None

    async def _mail(self, message: VoicemailMessage) -> None:
        """One attempt at every recipient still missing the mail; the outcome is stored."""
        mailer = self.mailer
        recipients = self._mails_for(message.box)
        if not recipients:
            await self._unschedule(message)
            return
        done = set(message.mailed_to or ())
        wav = await asyncio.to_thread(_read_file, self.root / message.file)
        failures: builtins.list[str] = []
        for recipient in recipients:
            if recipient in done or mailer is None:
                continue
            try:
                mail = build_voicemail_email(message, recipient, self.sender, wav)
            except InvalidEmail as exc:
                # Cannot get better by retrying: counted as done, and said loudly.
                log.error("voicemail %s: not e-mailed to %r: %s", message.id, recipient, exc)
                done.add(recipient)
                continue
            try:
                await mailer.send(mail)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # SMTP refusals, refused connections, timeouts, TLS...
                failures.append(f"{recipient}: {_printable(str(exc)) or type(exc).__name__}")
                continue
            done.add(recipient)
            log.info("voicemail %s e-mailed to %s", message.id, recipient)
        await self._record_attempt(message, done, failures)

    async def _unschedule(self, message: VoicemailMessage) -> None:
        """The box lost its recipients (or the mail server) since: nothing to send any more."""
        assert message.id is not None
        async with self._lock:
            current = await self.storage.get(VoicemailMessage, message.id)
            if current is not None:
                await self.storage.update(replace(current, email_next_at=None))
        log.info("voicemail %s: box %s has no e-mail recipients now", message.id, message.box)

    async def _record_attempt(
        self, message: VoicemailMessage, done: set[str], failures: builtins.list[str]
    ) -> None:
        assert message.id is not None
        attempts = message.email_attempts + 1
        now = self.now()
        async with self._lock:
            current = await self.storage.get(VoicemailMessage, message.id)
            if current is None:
                return
            sent = sorted(done)
            if not failures:
                updated = replace(
                    current,
                    emailed_at=now,
                    email_next_at=None,
                    email_error=None,
                    email_attempts=attempts,
                    mailed_to=sent,
                )
            else:
                error = "; ".join(failures)[:500]
                if attempts >= self.policy.email_attempts:
                    next_at = None
                    log.error(
                        "voicemail %s: giving up e-mailing after %d attempts (the message is "
                        "kept): %s",
                        message.id,
                        attempts,
                        error,
                    )
                else:
                    delay = min(
                        self.policy.email_retry * 2 ** (attempts - 1), self.policy.email_retry_max
                    )
                    next_at = now + timedelta(seconds=delay)
                    log.warning(
                        "voicemail %s: e-mail attempt %d failed, retrying in %.0f s: %s",
                        message.id,
                        attempts,
                        delay,
                        error,
                    )
                updated = replace(
                    current,
                    email_next_at=next_at,
                    email_error=error,
                    email_attempts=attempts,
                    mailed_to=sent,
                )
            await self.storage.update(updated)

    # -- callbacks ---------------------------------------------------------------------------

    def callback_queue(self, box: str) -> str | None:
        """The queue whose agents call back this box's unheard messages (None: nobody)."""
        configured = self.boxes.get(box)
        if configured is not None:
            if not configured.callbacks:
                return None
            if configured.callback_queue is not None:
                return configured.callback_queue
        return box if box in self.queues else None

    async def _callback_worker(self) -> None:
        interval = max(min(self.policy.callback_after / 2, 30.0), 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._route_callbacks()
            except (StorageError, OSError) as exc:
                log.warning("voicemail callbacks: storage failed (%s); trying again soon", exc)
            except Exception:  # a bug must not end callbacks for good: log it, go on later
                log.exception("voicemail callback worker failed; trying again soon")

    async def _route_callbacks(self) -> None:
        """Every message unheard for `callback_after` seconds becomes a callback contact."""
        boxes = [name for name in {*self.boxes, *self.queues} if self.callback_queue(name)]
        if not boxes or self._router is None:
            return
        cutoff = self.now() - timedelta(seconds=self.policy.callback_after)
        after = 0
        while True:
            page = await self.storage.query(
                VoicemailMessage,
                where={"heard": False, "callback_contact_id": None, "called_back_at": None},
                filters=[
                    Condition("recorded_at", "<=", cutoff),
                    Condition("box", "in", boxes),
                    Condition("id", ">", after),
                ],
                order_by=["id"],
                limit=_SCAN_PAGE,
            )
            for message in page:
                await self._request_callback(message)
            if len(page) < _SCAN_PAGE:
                return
            after = page[-1].id or after

    async def _request_callback(self, message: VoicemailMessage) -> None:
        router, queue, message_id = self._router, self.callback_queue(message.box), message.id
        assert router is not None
        assert message_id is not None
        if queue is None or message_id in self._undialable:
            return
        if (not_before := self._not_before.get(message_id)) is not None:
            if self.now() < not_before:
                return
            del self._not_before[message_id]
        if not _DIALABLE.match(message.caller):
            self._undialable.add(message_id)
            log.info("voicemail %s: caller %r cannot be called back", message_id, message.caller)
            return
        async with self._lock:
            current = await self.storage.get(VoicemailMessage, message_id)
            if current is None or current.heard or current.callback_contact_id:
                return
            try:
                contact_id = router.request_callback(
                    queue=queue,
                    number=current.caller,
                    customer_id=current.customer_id,
                    reference=f"voicemail:{message_id}",
                    work_limit=self.policy.callback_work_limit,
                    on_end=self._callback_ended,
                )
            except Exception as exc:  # a router refusal must not stop the other messages
                self._later(message_id)
                log.info("voicemail %s: callback refused for now: %s", message_id, exc)
                return
            await self.storage.update(replace(current, callback_contact_id=contact_id))
        log.info("voicemail %s: callback %s queued in %s", message_id, contact_id, queue)

    async def _callback_ended(self, contact_id: str, agent_id: str | None) -> None:
        """A callback is over: called back by `agent_id`, or (None) to be routed again."""
        async with self._lock:
            rows = await self.storage.query(
                VoicemailMessage, where={"callback_contact_id": contact_id}, limit=1
            )
            if not rows:
                return
            message = rows[0]
            if agent_id is not None:
                updated = replace(message, called_back_at=self.now(), called_back_by=agent_id)
                log.info("voicemail %s: called back by %s", message.id, agent_id)
            else:
                updated = replace(message, callback_contact_id=None)
                if not message.heard and message.id is not None:
                    self._later(message.id)
            await self.storage.update(updated)

    def _later(self, message_id: int) -> None:
        delay = timedelta(seconds=self.policy.callback_after)
        self._not_before[message_id] = self.now() + delay

    async def _forget_lost_callbacks(self) -> None:
        """Callbacks live in the ACD's memory: after a restart, those not done are re-routed."""
        lost = await self.storage.query(
            VoicemailMessage,
            where={"called_back_at": None},
            filters=[Condition("callback_contact_id", "!=", None)],
        )
        for message in lost:
            await self.storage.update(replace(message, callback_contact_id=None))
        if lost:
            log.info("voicemail: %d callbacks of the previous run will be routed again", len(lost))

    # -- recovery ----------------------------------------------------------------------------

    async def _adopt_orphans(self) -> None:
        """Recordings on disk without a row (a crash between the two) become messages."""
        files = await asyncio.to_thread(_scan_recordings, self.root)
        if not files:
            return
        # Matched by file, not by contact id: a file name is the id made safe for the disk.
        known: set[str] = set()
        names = [self._relative(path) for _, _, path, _ in files]
        for first in range(0, len(names), _IN_CHUNK):
            chunk = names[first : first + _IN_CHUNK]
            rows = await self.storage.query(
                VoicemailMessage, filters=[Condition("file", "in", chunk)]
            )
            known.update(row.file for row in rows)
        adopted = 0
        for box, contact_id, path, (seconds, modified) in files:
            if self._relative(path) in known:
                continue
            message = VoicemailMessage(
                id=None,
                box=box,
                contact_id=contact_id,
                caller="",
                customer_id=None,
                queue=None,
                recorded_at=modified,
                seconds=round(seconds, 3),
                file=self._relative(path),
                heard=False,
                heard_at=None,
                heard_by=None,
                emailed_at=None,
                email_attempts=0,
                email_next_at=self.now() if self._mails_for(box) else None,
                email_error=None,
                mailed_to=None,
                callback_contact_id=None,
                called_back_at=None,
                called_back_by=None,
            )
            try:
                await self.storage.insert(message)
            except Conflict:
                continue
            adopted += 1
        if adopted:
            log.warning("voicemail: adopted %d recordings that had no stored message", adopted)


def _printable(text: str) -> str:
    """`text` without control characters (CR/LF, NUL...), trimmed."""
    return _CONTROL.sub(" ", text).strip()


def _sync_to_disk(path: Path) -> bool:
    """fsync the recording and its folder (backends differ in how durably they write)."""
    try:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    except FileNotFoundError:
        return False
    try:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:  # some filesystems refuse fsync on a folder; the file is synced
        log.debug("cannot sync folder %s: %s", path.parent, exc)
    return True


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _wav_facts(path: Path) -> tuple[float, datetime]:
    """Length in seconds (0 if unreadable) and modification time of a recording."""
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    try:
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            return (wav.getnframes() / rate if rate else 0.0), modified
    except (OSError, wave.Error, EOFError):
        return 0.0, modified


def _scan_recordings(root: Path) -> builtins.list[tuple[str, str, Path, tuple[float, datetime]]]:
    """(box, contact id, path, facts) of the WAV files under `root`; blocking, bounded."""
    found: builtins.list[tuple[str, str, Path, tuple[float, datetime]]] = []
    try:
        folders = [e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return found
    for folder in folders:
        if not BOX_NAME.match(folder.name):
            continue
        try:
            entries = builtins.list(os.scandir(folder.path))
        except OSError:
            continue
        for entry in entries:
            stem, dot, suffix = entry.name.rpartition(".")
            if not dot or suffix != "wav" or not stem or len(stem) > 120:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            path = Path(entry.path)
            try:
                facts = _wav_facts(path)
            except OSError:
                continue
            found.append((folder.name, stem, path, facts))
            if len(found) >= _ORPHAN_FILES:
                return found
    return found


__all__ = [
    "BOX_NAME",
    "MODEL_FILE",
    "Box",
    "CallbackEnded",
    "CallbackRouter",
    "DepositedContact",
    "InvalidVoicemailRequest",
    "NoSuchMessage",
    "VoicemailError",
    "VoicemailMessage",
    "VoicemailPolicy",
    "VoicemailService",
    "build_voicemail_email",
]
