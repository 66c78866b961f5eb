"""What the engine core asks the outside world to do, and what it hears back.

The core never sends mail or calls services itself: it returns an `Effect` with every
expression already evaluated, the edge (`scripts_engine.actions`) carries it out, and the
`ActionResult` goes back into the core. Callbacks and transfers are effects too: the
server acts on them (`ScriptOutcome`s for the contact model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import ClassVar

from scripts_engine.values import json_value, plain


@dataclass(frozen=True, slots=True)
class EmailEffect:
    """Send one e-mail; subject and body are rendered, `to` is the evaluated address."""

    kind: ClassVar[str] = "send-email"
    template: str
    to: str
    subject: str
    body: str
    html: bool

    @property
    def label(self) -> str:
        """How the action reads in reports: its kind and what it acts on."""
        return f"send-email {self.template}"


@dataclass(frozen=True, slots=True)
class ServiceCallEffect:
    """Call `service.method(args)` through the service manager within `timeout` seconds."""

    kind: ClassVar[str] = "call-service"
    service: str
    method: str
    args: Mapping[str, object]
    timeout: float

    @property
    def label(self) -> str:
        """How the action reads in reports: its kind and what it acts on."""
        return f"call-service {self.service}.{self.method}"


@dataclass(frozen=True, slots=True)
class FieldUpdateEffect:
    """Set one field of the customer's business object in storage."""

    kind: ClassVar[str] = "set-field"
    object_name: str
    customer_id: str | None
    field: str
    value: object

    @property
    def label(self) -> str:
        """How the action reads in reports: its kind and what it acts on."""
        return f"set-field customer.{self.field}"


@dataclass(frozen=True, slots=True)
class CallbackEffect:
    """Ask the server to call the customer back (a typed outcome for the contact model)."""

    kind: ClassVar[str] = "schedule-callback"
    customer_id: str | None
    number: str | None
    at: datetime | None
    queue: str | None
    note: str

    @property
    def label(self) -> str:
        """How the action reads in reports: its kind and what it acts on."""
        return "schedule-callback" + (f" {self.queue}" if self.queue else "")


@dataclass(frozen=True, slots=True)
class TransferEffect:
    """Ask the server to transfer the contact to a queue (a typed outcome)."""

    kind: ClassVar[str] = "transfer"
    queue: str
    note: str

    @property
    def label(self) -> str:
        """How the action reads in reports: its kind and what it acts on."""
        return f"transfer {self.queue}"


Effect = EmailEffect | ServiceCallEffect | FieldUpdateEffect | CallbackEffect | TransferEffect


def effect_to_json(effect: Effect) -> dict[str, object]:
    """A JSON-able description of an effect, as stored with the run."""
    data: dict[str, object] = {"kind": effect.kind}
    for name in effect.__dataclass_fields__:
        value = getattr(effect, name)
        data[name] = value.isoformat() if isinstance(value, datetime) else plain(value)
    return data


def effect_from_json(data: Mapping[str, object]) -> Effect:
    """The effect `effect_to_json` described (used when a run resumes mid-action)."""
    kind = data.get("kind")
    values = {k: v for k, v in data.items() if k != "kind"}
    if kind == EmailEffect.kind:
        return EmailEffect(**values)  # type: ignore[arg-type]
    if kind == ServiceCallEffect.kind:
        return ServiceCallEffect(**values)  # type: ignore[arg-type]
    if kind == FieldUpdateEffect.kind:
        return FieldUpdateEffect(**values)  # type: ignore[arg-type]
    if kind == CallbackEffect.kind:
        at = values.get("at")
        values["at"] = datetime.fromisoformat(at) if isinstance(at, str) else None
        return CallbackEffect(**values)  # type: ignore[arg-type]
    if kind == TransferEffect.kind:
        return TransferEffect(**values)  # type: ignore[arg-type]
    raise ValueError(f"unknown effect kind {kind!r}")


class ResultStatus(Enum):
    """How an action went: done, failed (the error branch may follow), or not carried out."""

    OK = "ok"
    FAILED = "failed"
    #: Not carried out because nothing is configured to do it (a headless run without SMTP).
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of one effect, fed back into the engine core."""

    status: ResultStatus
    value: object = None
    code: str | None = None
    message: str | None = None

    @classmethod
    def ok(cls, value: object = None) -> ActionResult:
        """A successful result carrying `value`."""
        return cls(ResultStatus.OK, plain(value))

    @classmethod
    def failed(cls, code: str, message: str) -> ActionResult:
        """A failure with a stable error code and a message for the agent."""
        return cls(ResultStatus.FAILED, None, code, message)

    @classmethod
    def skipped(cls, reason: str) -> ActionResult:
        """An action nothing was configured to carry out."""
        return cls(ResultStatus.SKIPPED, None, "not-configured", reason)

    def to_json(self) -> dict[str, object]:
        """The result as reported by `caruso script run` and stored with the run."""
        data: dict[str, object] = {"status": self.status.value}
        if self.status is ResultStatus.OK:
            data["value"] = json_value(self.value)
        else:
            data["code"] = self.code
            data["message"] = self.message
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ActionResult:
        """The result `to_json` described."""
        status = ResultStatus(str(data.get("status")))
        code = data.get("code")
        message = data.get("message")
        return cls(
            status,
            data.get("value"),
            str(code) if code is not None else None,
            str(message) if message is not None else None,
        )


@dataclass(frozen=True, slots=True)
class CallbackRequested:
    """A script asked for the customer to be called back: the server schedules it."""

    run_id: str
    customer_id: str | None
    number: str | None
    at: datetime | None
    queue: str | None
    note: str


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """A script asked for the contact to be transferred to a queue."""

    run_id: str
    queue: str
    note: str


ScriptOutcome = CallbackRequested | TransferRequested
