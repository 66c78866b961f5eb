"""The edge that carries out a script's actions: e-mail, service calls, field updates, outcomes.

The engine core hands over an `Effect` with every value already evaluated; `ActionExecutor`
does the I/O and always answers with an `ActionResult` (it never raises for a failed
action: a failure is data that sends the run down its error branch).
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

import aiosmtplib

from scripts_engine.effects import (
    ActionResult,
    CallbackEffect,
    CallbackRequested,
    Effect,
    EmailEffect,
    FieldUpdateEffect,
    ScriptOutcome,
    ServiceCallEffect,
    TransferRequested,
)

log = logging.getLogger(__name__)

#: A single plain address: no display name, no list, nothing that could smuggle a header.
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\Z"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
#: Longest subject sent; a rendered template may be longer through customer data.
MAX_SUBJECT = 200


class ServiceCaller(Protocol):
    """Dynamic service calls, as `ServiceManager.call` offers them.

    Failures raise an exception with a kebab-case `code` attribute (no-such-service,
    service-unavailable, service-timeout, ...); the script takes its error branch.
    """

    async def call(
        self, name: str, method: str, args: Mapping[str, object], *, timeout: float
    ) -> object:
        """Call `method` of the service registered as `name` and return its result."""
        ...


class BusinessObjects(Protocol):
    """Reading and updating a customer's business object (`StorageBusinessObjects` is one)."""

    async def load(self, object_name: str, key: str) -> Mapping[str, object] | None:
        """The object's attributes by name, or None when no object has this key."""
        ...

    async def update(self, object_name: str, key: str, values: Mapping[str, object]) -> None:
        """Set attributes of the object with this key (an error if there is none)."""
        ...


class Mailer(Protocol):
    """Something that sends an `EmailMessage` (`SmtpMailer` is the real one)."""

    async def send(self, message: EmailMessage) -> None:
        """Hand the message over for delivery; raise when it is refused."""
        ...


OutcomeHandler = Callable[[ScriptOutcome], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how script e-mails are sent."""

    host: str
    port: int
    sender: str
    timeout: float = 10.0
    starttls: bool = False
    use_tls: bool = False
    username: str | None = None
    password: str | None = None


class SmtpMailer:
    """Sends e-mails over SMTP with aiosmtplib (one connection per message)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        """Deliver `message` to the configured SMTP server."""
        s = self.settings
        await aiosmtplib.send(
            message,
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            start_tls=s.starttls,
            use_tls=s.use_tls,
            username=s.username,
            password=s.password,
        )


class InvalidEmail(ValueError):
    """An e-mail cannot be built safely (a bad address)."""


def build_email(effect: EmailEffect, sender: str) -> EmailMessage:
    """The message for `effect`, built so that no rendered value can inject a header.

    The recipient must be one plain address; the subject loses control characters (a
    customer's data could carry CR/LF) and is RFC 2047-encoded when not ASCII; the body
    is UTF-8 text (or HTML, whose placeholders the template already escaped).
    """
    recipient = effect.to.strip()
    if not _ADDRESS.match(recipient):
        raise InvalidEmail(f"{recipient!r} is not a single valid e-mail address")
    if not _ADDRESS.match(sender):
        raise InvalidEmail(f"the sender {sender!r} is not a valid e-mail address")
    subject = _CONTROL.sub(" ", effect.subject).strip()[:MAX_SUBJECT]
    message = EmailMessage(policy=email.policy.SMTP)
    local, domain = recipient.rsplit("@", 1)
    sender_local, sender_domain = sender.rsplit("@", 1)
    message["From"] = Address(addr_spec=f"{sender_local}@{sender_domain}")
    message["To"] = Address(username=local, domain=domain)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender_domain)
    message.set_content(effect.body, subtype="html" if effect.html else "plain", charset="utf-8")
    return message


class ActionExecutor:
    """Carries out effects. A part left as None is "not configured": its actions are skipped."""

    def __init__(
        self,
        *,
        mailer: Mailer | None = None,
        sender: str = "caruso@localhost.localdomain",
        services: ServiceCaller | None = None,
        objects: BusinessObjects | None = None,
        on_outcome: OutcomeHandler | None = None,
    ) -> None:
        self.mailer = mailer
        self.sender = sender
        self.services = services
        self.objects = objects
        self.on_outcome = on_outcome

    async def execute(self, effect: Effect, *, run_id: str) -> ActionResult:
        """Carry out `effect` for run `run_id`; failures come back as a failed result."""
        try:
            if isinstance(effect, EmailEffect):
                return await self._email(effect)
            if isinstance(effect, ServiceCallEffect):
                return await self._service(effect)
            if isinstance(effect, FieldUpdateEffect):
                return await self._field(effect)
            if isinstance(effect, CallbackEffect):
                outcome: ScriptOutcome = CallbackRequested(
                    run_id, effect.customer_id, effect.number, effect.at, effect.queue, effect.note
                )
                return await self._outcome(outcome)
            return await self._outcome(TransferRequested(run_id, effect.queue, effect.note))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken adapter must not take the run (or server) down
            log.exception("script action %s of run %s failed unexpectedly", effect.label, run_id)
            return ActionResult.failed(_code_of(exc, "action-failed"), _message_of(exc))

    async def _email(self, effect: EmailEffect) -> ActionResult:
        if self.mailer is None:
            return ActionResult.skipped("no SMTP server is configured")
        try:
            message = build_email(effect, self.sender)
        except InvalidEmail as exc:
            return ActionResult.failed("invalid-email-address", str(exc))
        try:
            await self.mailer.send(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return ActionResult.failed(
                "email-not-sent", f"the mail server refused or failed: {exc}"
            )
        return ActionResult.ok({"to": effect.to, "message_id": message["Message-ID"]})

    async def _service(self, effect: ServiceCallEffect) -> ActionResult:
        if self.services is None:
            return ActionResult.failed(
                "service-unavailable", f"no service manager: cannot call {effect.service}"
            )
        try:
            # Our own deadline too: an adapter that ignores its timeout must not hang the run.
            async with asyncio.timeout(effect.timeout + 1.0):
                value = await self.services.call(
                    effect.service, effect.method, effect.args, timeout=effect.timeout
                )
        except TimeoutError:
            return ActionResult.failed(
                "service-timeout",
                f"{effect.service}.{effect.method} did not answer within {effect.timeout:g} s",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return ActionResult.failed(_code_of(exc, "service-error"), _message_of(exc))
        return ActionResult.ok(value)

    async def _field(self, effect: FieldUpdateEffect) -> ActionResult:
        if self.objects is None:
            return ActionResult.skipped(
                "no storage is configured: the field is set in the run only"
            )
        if effect.customer_id is None:
            return ActionResult.skipped("the run has no customer: the field is set in the run only")
        await self.objects.update(
            effect.object_name, effect.customer_id, {effect.field: effect.value}
        )
        return ActionResult.ok({effect.field: effect.value})

    async def _outcome(self, outcome: ScriptOutcome) -> ActionResult:
        if self.on_outcome is not None:
            await self.on_outcome(outcome)
        if isinstance(outcome, CallbackRequested):
            return ActionResult.ok(
                {
                    "callback_at": outcome.at.isoformat() if outcome.at else None,
                    "number": outcome.number,
                    "queue": outcome.queue,
                }
            )
        return ActionResult.ok({"queue": outcome.queue})


def _code_of(exc: BaseException, default: str) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else default


def _message_of(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    return str(exc) or type(exc).__name__
